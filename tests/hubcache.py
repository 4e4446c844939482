"""A simulated Hugging Face cache (``HF_HOME``), laid out as huggingface_hub and datasets
write it on a machine with network, for testing the ``hf`` sources offline.

- ``hub/models--openai-community--gpt2``: ``refs/main`` → a commit, ``snapshots/<commit>/``
  with one symlink per file into ``blobs/`` (named by the file's etag: sha256 for the
  LFS-stored weights, the git blob sha1 for the rest), exactly as ``hf download`` leaves
  it. The model has GPT-2 small's shape (12 layers, 12 heads, 768 wide, vocabulary
  50,257) and random weights, *biases and norms included*, saved as GPT-2's own
  ``model.safetensors`` is (the base model's names without a prefix, the tied LM head
  left out, the causal-mask buffers ``h.<i>.attn.bias`` kept). The tokenizer is GPT-2's
  real byte-level BPE: ``vocab.json`` and ``merges.txt`` from the source distribution of
  ``openai-whisper==20230124``, checked against pinned sha256 digests.
- ``hub/datasets--Salesforce--wikitext``: the dataset repository (``README.md`` with its
  configs, ``wikitext-2-raw-v1/{test,train,validation}-00000-of-00001.parquet``) holding
  wikitext-like lines; and ``datasets/Salesforce___wikitext/wikitext-2-raw-v1/0.0.0/<commit>/``,
  the prepared copy that ``datasets`` reads offline, built by its own Parquet builder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

GPT2_REPO = "openai-community/gpt2"
WIKITEXT_REPO = "Salesforce/wikitext"
WIKITEXT_CONFIG = "wikitext-2-raw-v1"

WHISPER = "openai-whisper==20230124"
WHISPER_SDIST = "openai-whisper-20230124.tar.gz"
WHISPER_SHA256 = "31adf9353bf0e3f891b6618896f22c65cf78cd6f845a4d5b7125aa5102187f79"
BPE_FILES = {  # GPT-2's byte-level BPE, as whisper ships it (whisper/assets/gpt2/)
    "vocab.json": "3ba3c3109ff33976c4bd966589c11ee14fcaa1f4c9e5e154c2ed7f99d80709e7",
    "merges.txt": "fe36cab26d4f4421ed725e10a2e9ddb7f799449c603a96e7f29b5a3c82a95862",
}

#: GPT-2 small's config.json as the hub serves it.
GPT2_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768,
    "n_head": 12, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}
GENERATION_CONFIG = {"_from_model_config": True, "bos_token_id": 50256, "eos_token_id": 50256}


# ----------------------------------------------------------------- the tokenizer
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _locate(requirement: str, filename: str) -> str:
    """The address pip's configured index gives for ``filename`` (pip is stopped as soon as
    it has found the link: nothing is built or installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "-vv", "--no-deps", "--no-binary=:all:",
           "--disable-pip-version-check", "-d", os.devnull, requirement]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            m = re.search(r"Found link (\S+/" + re.escape(filename) + r")\b", line)
            if m:
                return m.group(1)
    finally:
        proc.kill()
        proc.wait()
    raise RuntimeError(f"pip's index has no {filename} for {requirement}")


def gpt2_bpe_files(downloads: Path) -> dict[str, bytes]:
    """GPT-2's ``vocab.json`` and ``merges.txt``, from the whisper source distribution
    (downloaded once into ``downloads``), each checked against its pinned sha256."""
    sdist = Path(downloads) / WHISPER_SDIST
    if not sdist.exists() or _sha256(sdist.read_bytes()) != WHISPER_SHA256:
        sdist.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(_locate(WHISPER, WHISPER_SDIST), timeout=120) as r:
            data = r.read()
        if _sha256(data) != WHISPER_SHA256:
            raise RuntimeError(f"{WHISPER_SDIST}: sha256 {_sha256(data)}, expected {WHISPER_SHA256}")
        tmp = sdist.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(sdist)
    out = {}
    with tarfile.open(sdist) as t:
        for name, digest in BPE_FILES.items():
            data = t.extractfile(f"openai-whisper-20230124/whisper/assets/gpt2/{name}").read()
            if _sha256(data) != digest:
                raise RuntimeError(f"{name}: sha256 {_sha256(data)}, expected {digest}")
            out[name] = data
    return out


def tokenizer_files(bpe: dict[str, bytes], work: Path) -> dict[str, bytes]:
    """The tokenizer files of the hub repository: the BPE files, ``tokenizer_config.json``
    and the ``tokenizer.json`` that transformers builds from them."""
    from transformers import AutoTokenizer

    src = work / "bpe"
    src.mkdir(parents=True, exist_ok=True)
    files = {**bpe, "tokenizer_config.json": json.dumps({"model_max_length": 1024}).encode(),
             "config.json": json.dumps(GPT2_CONFIG).encode()}
    for name, data in files.items():
        (src / name).write_bytes(data)
    AutoTokenizer.from_pretrained(src).save_pretrained(work / "fast")
    files.pop("config.json")
    files["tokenizer.json"] = (work / "fast" / "tokenizer.json").read_bytes()
    shutil.rmtree(src)
    shutil.rmtree(work / "fast")
    return files


# -------------------------------------------------------------------- the model
def gpt2_weights(path: Path, seed: int = 0, config: dict = GPT2_CONFIG) -> Path:
    """Random weights of ``config``'s shape, saved as GPT-2's own ``model.safetensors`` is.

    Every bias and norm is random too (not zero and one), so that a hook that drops a bias
    or a norm's shift changes the numbers.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**config))
    with torch.no_grad():
        for name, p in model.transformer.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif ".ln_" in name or name.startswith("ln_f"):
                p.normal_(1.0, 0.1)
    tensors = {k: v.contiguous() for k, v in model.transformer.state_dict().items()}
    n = config["n_positions"]
    mask = torch.tril(torch.ones(n, n, dtype=torch.float32)).view(1, 1, n, n)
    for i in range(config["n_layer"]):
        tensors[f"h.{i}.attn.bias"] = mask.clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


# --------------------------------------------------------------- the hub layout
def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hub_repo(home: Path, kind: str, repo: str, files: dict[str, bytes | Path],
             revision: str = "main") -> str:
    """Lay out ``files`` ({path in repo: bytes or a file}) as huggingface_hub caches a
    repository at ``revision``; return the snapshot's commit. Large files (``.safetensors``,
    ``.parquet``) are stored under their sha256 like LFS files, others under their git
    blob sha1; a file given as a path is hard-linked into ``blobs/`` (no copy)."""
    repo_dir = home / "hub" / f"{kind}s--{repo.replace('/', '--')}"
    listing = hashlib.sha1()
    blobs = {}
    for name in sorted(files):
        src = files[name]
        if isinstance(src, Path):
            h = hashlib.sha256()
            with open(src, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            etag = h.hexdigest()
        else:
            lfs = name.endswith((".safetensors", ".parquet"))
            etag = _sha256(src) if lfs else _git_blob_sha1(src)
        blobs[name] = etag
        listing.update(f"{name}\0{etag}\n".encode())
    commit = listing.hexdigest()
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo_dir / "snapshots" / commit
    for name, etag in blobs.items():
        blob = repo_dir / "blobs" / etag
        if not blob.exists():
            src = files[name]
            if isinstance(src, Path):
                try:
                    os.link(src, blob)
                except OSError:
                    shutil.copyfile(src, blob)
            else:
                blob.write_bytes(src)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return commit


def gpt2_repo(home: Path, weights: Path, tokenizer: dict[str, bytes] | None,
              config: dict = GPT2_CONFIG) -> str:
    """``openai-community/gpt2`` in the hub cache at ``home`` (without a tokenizer if None)."""
    files: dict[str, bytes | Path] = {
        "config.json": json.dumps(config, indent=2).encode(),
        "generation_config.json": json.dumps(GENERATION_CONFIG, indent=2).encode(),
        "model.safetensors": weights,
    }
    files.update(tokenizer or {})
    return hub_repo(home, "model", GPT2_REPO, files)


# ------------------------------------------------------------------ the dataset
def wikitext_lines(corpus_dir: Path, n_articles: int = 12) -> list[str]:
    """Lines in wikitext-2-raw's style (a row per line: `` = Title = ``, blank rows,
    paragraphs with spaced punctuation), made from the test corpus's texts."""
    paragraphs = []
    for f in sorted(Path(corpus_dir).glob("*.txt")):
        for para in f.read_text().split("\n\n"):
            text = " ".join(para.split())
            text = re.sub(r"\s*([,.;:?!])", r" \1", text).replace("-", " @-@ ")
            if text:
                paragraphs.append(text)
    lines = []
    for a in range(n_articles):
        lines += ["", f" = Article {a + 1} = \n", ""]
        for k in range(len(paragraphs)):
            lines += [f" {paragraphs[(a + k) % len(paragraphs)]} \n", ""]
    return lines


DATASET_CARD = """---
configs:
- config_name: {config}
  data_files:
  - split: test
    path: {config}/test-*
  - split: train
    path: {config}/train-*
  - split: validation
    path: {config}/validation-*
dataset_info:
- config_name: {config}
  features:
  - name: text
    dtype: string
---
# wikitext (simulated for offline tests)
"""


def wikitext_repo(home: Path, lines: list[str], work: Path) -> str:
    """``Salesforce/wikitext`` in the hub cache, and its prepared copy in the datasets cache,
    as ``load_dataset(..., "wikitext-2-raw-v1")`` leaves them on a machine with network."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.load import LocalDatasetModuleFactory, get_dataset_builder_class

    files: dict[str, bytes | Path] = {
        "README.md": DATASET_CARD.format(config=WIKITEXT_CONFIG).encode()}
    work.mkdir(parents=True, exist_ok=True)
    for split, rows in (("test", lines), ("train", lines[::-1]), ("validation", lines[: len(lines) // 2])):
        path = work / f"{split}.parquet"
        pq.write_table(pa.table({"text": pa.array(rows, pa.string())}), path)
        files[f"{WIKITEXT_CONFIG}/{split}-00000-of-00001.parquet"] = path
    commit = hub_repo(home, "dataset", WIKITEXT_REPO, files)
    snapshot = home / "hub" / f"datasets--{WIKITEXT_REPO.replace('/', '--')}" / "snapshots" / commit
    # datasets' own builder, configured from the repository's card, prepares the copy; it
    # is written under a scratch cache and moved to where a hub download would have put it
    module = LocalDatasetModuleFactory(str(snapshot)).get_module()
    builder = get_dataset_builder_class(module, dataset_name="wikitext")(
        cache_dir=str(work / "prepare"), dataset_name="wikitext", config_name=WIKITEXT_CONFIG,
        hash=commit, base_path=str(snapshot))
    builder.download_and_prepare()
    dest = (home / "datasets" / "Salesforce___wikitext" / WIKITEXT_CONFIG
            / str(builder.config.version) / commit)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(builder.cache_dir, dest)
    shutil.rmtree(work)
    return commit


def build(home: Path, downloads: Path, corpus_dir: Path, work: Path, weights: Path | None = None):
    """The whole simulated cache at ``home``; returns the weights file's path."""
    bpe = gpt2_bpe_files(downloads)
    weights = weights or gpt2_weights(work / "model.safetensors")
    gpt2_repo(home, weights, tokenizer_files(bpe, work / "tok"))
    wikitext_repo(home, wikitext_lines(corpus_dir), work / "wikitext")
    return weights


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a process that must find everything in the cache at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env
