"""Materialize a corpus (local files, a source archive from the package index, or a
Hugging Face dataset) into one Parquet file of texts."""

from __future__ import annotations

import fnmatch
import glob as globmod
import json
import logging
import os
import tarfile
from pathlib import Path

import pyarrow as pa

from .errors import UserError, first_line
from .fetch import fetch_sdist
from .hub import hub_dataset_error
from .io import write_parquet

log = logging.getLogger(__name__)


def _read_text(p: Path) -> str:
    """A corpus file as text; a binary or non-UTF-8 file is refused by name."""
    data = p.read_bytes()
    if b"\0" in data[:1 << 16]:
        raise UserError(f"corpus file {p} is binary, not text (it holds NUL bytes); remove it "
                        "from the corpus's `files` patterns")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"corpus file {p} is not UTF-8 text (byte {e.start}: {e.reason}); "
                        "convert it to UTF-8 or remove it from the `files` patterns") from None


def _texts_from_files(patterns: list[str], base: Path | None = None) -> list[tuple[str, str]]:
    docs = []
    for pat in patterns:
        pat = str((base / pat) if base and not os.path.isabs(pat) else pat)
        matches = sorted(globmod.glob(pat))
        if not matches:
            raise UserError(f"corpus: no file matches {pat!r}")
        for f in matches:
            p = Path(f)
            try:
                if p.suffix == ".jsonl":
                    for i, line in enumerate(_read_text(p).split("\n")):  # not splitlines:
                        # U+2028 and kin may stand raw inside a JSON string
                        if line.strip():
                            docs.append((f"{p.name}:{i}", json.loads(line)["text"]))
                elif p.suffix == ".parquet":
                    import pyarrow.parquet as pq

                    column = pq.read_table(p, columns=["text"]).column("text").to_pylist()
                    docs += [(f"{p.name}:{i}", t) for i, t in enumerate(column)]
                else:
                    docs.append((p.name, _read_text(p)))
            except (ValueError, KeyError, TypeError, pa.ArrowException) as e:
                raise UserError(f"corpus file {p} cannot be read as "
                                f"{p.suffix.lstrip('.') or 'text'} with a `text` field "
                                f"({first_line(e)})") from None
    return docs


def _texts_from_pypi(spec: dict, downloads: Path) -> list[tuple[str, str]]:
    req = spec["package"]
    archive = fetch_sdist(req, spec["sha256"], downloads / req.split("==")[0])
    include, exclude = spec["include"], spec.get("exclude", [])
    docs = []
    try:
        with tarfile.open(archive) as t:
            for m in sorted(t.getmembers(), key=lambda m: m.name):
                if not m.isfile() or not any(fnmatch.fnmatch(m.name, g) for g in include):
                    continue
                if any(fnmatch.fnmatch(m.name, g) for g in exclude):
                    continue
                text = t.extractfile(m).read().decode("utf-8", errors="replace")
                docs.append((Path(m.name).name, text))
    except tarfile.TarError as e:
        raise UserError(f"corpus archive {archive} is corrupt ({e}); delete it and run again")
    if not docs:
        raise UserError(f"corpus package {req} has no file matching {include}")
    return docs


#: How a joined hub dataset's rows become one document: as Sun et al.'s code does for
#: wikitext-2 ("\\n\\n".join of the lines).
JOIN_SEPARATOR = "\n\n"


def _texts_from_hf(key: str, spec: dict) -> list[tuple[str, str]]:
    import datasets

    field = spec.get("field", "text")
    try:
        ds = datasets.load_dataset(spec["dataset"], spec.get("config"),
                                   split=spec.get("split", "test"))
    except Exception as e:
        raise UserError(hub_dataset_error(key, spec, e)) from e
    if field not in ds.column_names:
        raise UserError(f"corpus '{key}': dataset {spec['dataset']!r} has no column {field!r} "
                        f"(columns: {', '.join(ds.column_names)}); set corpora.{key}.field")
    texts = ds[field]
    if spec.get("join", True):  # wikitext: one document of all lines, as the paper does
        return [(spec["dataset"], JOIN_SEPARATOR.join(texts))]
    return [(f"{i}", t) for i, t in enumerate(texts)]


def materialize_corpus(key: str, spec: dict, out_path, downloads, base: Path | None = None) -> int:
    """Write ``out_path`` (doc_id, name, text); return the number of documents."""
    source = spec["source"]
    if source == "files":
        docs = _texts_from_files(spec["files"], base)
    elif source == "pypi":
        docs = _texts_from_pypi(spec, Path(downloads))
    elif source == "hf":
        docs = _texts_from_hf(key, spec)
    else:
        raise UserError(f"corpus '{key}': unknown source {source!r}")
    empty = [n for n, t in docs if not (t or "").strip()]
    docs = [(n, t) for n, t in docs if (t or "").strip()]
    if not docs:
        what = f": {', '.join(empty[:10])} {'are' if len(empty) > 1 else 'is'} empty" if empty else ""
        raise UserError(f"corpus '{key}' has no text{what}. Point corpora.{key} at files "
                        "that hold text.")
    if empty:
        log.warning("corpus '%s': skipped %d empty documents (%s)", key, len(empty),
                    ", ".join(empty[:10]))
    table = pa.table({
        "doc_id": pa.array(range(len(docs)), pa.int32()),
        "name": pa.array([n for n, _ in docs], pa.string()),
        "text": pa.array([t for _, t in docs], pa.large_string()),
    })
    write_parquet(table, out_path)
    return len(docs)
