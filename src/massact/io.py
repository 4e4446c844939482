"""Atomic, deterministic writers for the workflow's outputs."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from .errors import UserError


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Readers never see a half-written file, and an interrupted job leaves no
    output behind for Snakemake to mistake as complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are shared like any file
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(table: pa.Table, path, sort_by: list[str] | None = None) -> None:
    """Write ``table`` atomically with pyarrow; rows sorted for determinism."""
    if sort_by:
        table = table.sort_by([(c, "ascending") for c in sort_by])
    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)


def read_parquet(path) -> pa.Table:
    """Read a Parquet file; a damaged one (cut short, overwritten) is a UserError that says
    which file it is and that deleting it makes the workflow rebuild it."""
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UserError(f"{path} is not a readable Parquet file ({str(e).splitlines()[0]}): "
                        "it is damaged or was cut short. Delete it and run the same command "
                        "again: the workflow rebuilds it, with the same bytes.") from None


def write_text(text: str, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj, path) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def write_yaml(obj, path) -> None:
    write_text(yaml.safe_dump(obj, sort_keys=False, default_flow_style=None), path)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
