#!/usr/bin/env python3
"""Where the perplexity pass spends its time, and what a leaner LM head buys.

Gemma-3 has a 262,144-entry vocabulary: its LM head is a 640 × 262,144 matrix, and the
logits of one 256-token window are 67 M numbers. This script times, on the config's
held-out windows of one model (interleaved rounds, medians):

- ``blocks``: the decoder stack alone (the hidden states the nll needs);
- ``head_rows``: the LM head and cross-entropy as ``perplexity.window_nll`` ran them
  before, one window at a time in chunks of 256 tokens;
- ``head_lean``: :func:`massact.perplexity.nll_from_hidden`, the whole batch at once
  against slices of the vocabulary with a running log-sum-exp;

and checks that both give the same nll (largest relative difference per window).

    python benchmarks/bench_nll.py --model gemma3-270m --rounds 5

Writes results/benchmarks/nll.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import json
import statistics
import time

from _common import ROOT, load_config, machine, use_src

use_src()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from massact.arch import adapt  # noqa: E402
from massact.perplexity import _logits, nll_from_hidden  # noqa: E402
from massact.runtime import batch_size, set_threads  # noqa: E402
from massact.sampling import windows_tensor  # noqa: E402
from massact.io import read_parquet  # noqa: E402
from massact.sources import load_model  # noqa: E402


def head_rows(model, hidden, ids, chunk=256):
    out = []
    for row in range(ids.shape[0]):
        total = 0.0
        for a in range(0, ids.shape[1] - 1, chunk):
            b = min(a + chunk, ids.shape[1] - 1)
            logits = _logits(model, hidden[row, a:b])
            total += float(F.cross_entropy(logits, ids[row, a + 1:b + 1], reduction="sum").double())
        out.append(total)
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--results", default=str(ROOT / "results"))
    args = ap.parse_args()
    cfg = load_config()
    set_threads(os.cpu_count())
    model, _ = load_model(ROOT / "resources/models" / args.model, tokenizer=False)
    held = windows_tensor(read_parquet(f"{args.results}/{args.model}/heldout.parquet"))
    bs = batch_size(cfg["batch_tokens"], held)
    arch = adapt(model)
    times = {"blocks": [], "head_rows": [], "head_lean": []}
    worst = 0.0
    with torch.inference_mode():
        for r in range(args.rounds):
            for a in range(0, held.shape[0], bs):
                ids = held[a:a + bs]
                t = time.perf_counter()
                hidden = arch.base(input_ids=ids, use_cache=False).last_hidden_state
                times["blocks"].append(time.perf_counter() - t)
                t = time.perf_counter()
                old = head_rows(model, hidden, ids)
                times["head_rows"].append(time.perf_counter() - t)
                t = time.perf_counter()
                new = nll_from_hidden(model, hidden, ids)
                times["head_lean"].append(time.perf_counter() - t)
                worst = max(worst, float(np.max(np.abs(new - old) / np.abs(old))))
    per = {k: statistics.median(v) for k, v in times.items()}
    out = {"model": args.model, "batch": bs, "windows": int(held.shape[0]),
           "seqlen": int(held.shape[1]), "median_s_per_batch": per,
           "lean_vs_rows": per["head_lean"] / per["head_rows"],
           "pass_lean_vs_rows": (per["blocks"] + per["head_lean"]) / (per["blocks"] + per["head_rows"]),
           "max_rel_diff_nll": worst, "machine": machine()}
    dest = ROOT / "results/benchmarks"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "nll.json").write_text(json.dumps(out, indent=2))
    md = (f"# The LM head of the perplexity pass ({args.model}, batches of {bs} windows of "
          f"{held.shape[1]} tokens, median of {args.rounds} rounds)\n\n"
          "| part | s per batch |\n|---|---:|\n"
          + "".join(f"| {k} | {v:.3f} |\n" for k, v in per.items())
          + f"\nlean head / per-row head: {out['lean_vs_rows']:.2f}×; whole pass: "
          f"{out['pass_lean_vs_rows']:.2f}×; largest relative nll difference {worst:.1e}\n")
    (dest / "nll.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
