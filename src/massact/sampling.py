"""Seeded token windows from a corpus.

Each document is tokenized on its own and cut into consecutive, non-overlapping
chunks of the window's text length. One seeded permutation of all chunks orders
them; the analysis samples are its first ``nsamples`` chunks and any held-out
windows are the chunks after those, so the two sets never overlap.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .errors import UserError

SPLITS = ("analysis", "heldout")


def special_prefix(tokenizer) -> list[int]:
    """The tokens the tokenizer puts before any text (e.g. Gemma's <bos>), maybe none."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def chunk_index(corpus: pa.Table, tokenizer, body: int):
    """Tokenize every document; return (token lists, [(doc_id, start), ...])."""
    ids = tokenizer(corpus.column("text").to_pylist(), add_special_tokens=False)["input_ids"]
    doc_ids = corpus.column("doc_id").to_pylist()
    chunks = [(d, s) for d, toks in zip(doc_ids, ids) for s in range(0, len(toks) - body + 1, body)]
    return dict(zip(doc_ids, ids)), chunks


def draw_windows(corpus: pa.Table, tokenizer, nsamples: int, seqlen: int, seed: int,
                 split: str = "analysis", n_heldout: int = 0) -> pa.Table:
    """Windows of ``seqlen`` tokens (special prefix included) for one split.

    Columns: sample, doc_id, start (token offset of the window's text in its
    document), input_ids (list<int32> of length ``seqlen``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    prefix = special_prefix(tokenizer)
    body = seqlen - len(prefix)
    if body < 2:
        raise UserError(f"seqlen {seqlen} is too short")
    tokens, chunks = chunk_index(corpus, tokenizer, body)
    need = nsamples + (n_heldout if split == "heldout" else 0)
    if len(chunks) < need:
        raise UserError(f"the corpus has only {len(chunks)} non-overlapping windows of {seqlen} "
                        f"tokens, but {need} are needed (nsamples + heldout); lower nsamples or "
                        "seqlen, or use a larger corpus")
    order = np.random.default_rng(seed).permutation(len(chunks))
    picked = order[:nsamples] if split == "analysis" else order[nsamples:need]
    rows = [chunks[i] for i in picked]
    return pa.table({
        "sample": pa.array(range(len(rows)), pa.int32()),
        "doc_id": pa.array([d for d, _ in rows], pa.int32()),
        "start": pa.array([s for _, s in rows], pa.int64()),
        "input_ids": pa.array([prefix + tokens[d][s:s + body] for d, s in rows],
                              pa.list_(pa.int32())),
    })


def windows_tensor(samples: pa.Table):
    """The ``input_ids`` column as a (n, seqlen) LongTensor."""
    import torch

    return torch.tensor(samples.column("input_ids").to_pylist(), dtype=torch.long)


def truncate(samples: pa.Table, n: int, seqlen: int) -> pa.Table:
    """The first ``n`` windows of a windows table, cut to their first ``seqlen`` tokens
    (held-out perplexity windows, sweep windows)."""
    if n > samples.num_rows:
        raise UserError(f"{n} windows asked, the table has {samples.num_rows}")
    t = samples.slice(0, n)
    ids = [row[:seqlen] for row in t.column("input_ids").to_pylist()]
    return t.set_column(t.schema.get_field_index("input_ids"), "input_ids",
                        pa.array(ids, pa.list_(pa.int32())))
