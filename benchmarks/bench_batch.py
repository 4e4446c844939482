#!/usr/bin/env python3
"""What batching windows buys: the project's own passes at several batch sizes.

For each model, on the config's own windows (analysis windows of ``sampling.seqlen``,
sweep windows cut to ``sweeps.seqlen``, held-out windows of ``perplexity.seqlen``), each
pass kind is timed at every batch size, the sizes interleaved round by round (A B C A B
C …) so that drifts of a noisy machine fall on all of them alike; the median over rounds
is reported, with its ratio to batch 1. The numbers of every batch size are checked
against batch 1 (largest relative difference).

    python benchmarks/bench_batch.py                       # both default models
    python benchmarks/bench_batch.py --models smollm2-135m --sizes 1 4 8 16 --rounds 3

Writes results/benchmarks/batch.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import ROOT, load_config, machine, use_src

use_src()

import numpy as np  # noqa: E402

from massact.forward import analyse  # noqa: E402
from massact.perplexity import window_nll  # noqa: E402
from massact.runtime import set_threads  # noqa: E402
from massact.sources import load_model  # noqa: E402


def passes(model, tok, win, held, cfg):
    """name → (windows, function of the batch size returning comparable numbers)."""
    sw = cfg["sweeps"]
    sweep = win[: sw["samples"], : sw["seqlen"]]
    k = cfg["extraction"]["topk"]

    def extraction(bs):
        out = analyse(model, tok, win, k=k, heads=True, head_means=True, batch_size=bs)
        return np.concatenate([out["layer_stats"]["value"].to_numpy(),
                               out["head_scores"]["score"].to_numpy()])

    def sweep_stats(bs):
        return analyse(model, tok, sweep, k=k, heads=False, batch_size=bs)["layer_stats"][
            "value"].to_numpy()

    def perplexity(bs):
        return window_nll(model, held, batch_size=bs)[0]

    return {"extraction": (win, extraction), "sweep statistics": (sweep, sweep_stats),
            "perplexity": (held, perplexity)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    cfg = load_config()
    from bench_dtype import model_dir, windows

    results = {}
    for key in args.models or cfg["run"]:
        model, tok = load_model(model_dir(cfg, key, "float32"))
        win, held = windows(cfg, tok)
        held = held[: cfg["perplexity"]["windows"]]
        for name, (w, fn) in passes(model, tok, win, held, cfg).items():
            ref = fn(1)  # also a warm-up
            times = {bs: [] for bs in args.sizes}
            diff = {}
            for _ in range(args.rounds):
                for bs in args.sizes:
                    t0 = time.perf_counter()
                    got = fn(bs)
                    times[bs].append(time.perf_counter() - t0)
                    diff[bs] = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-6)))
            med = {bs: statistics.median(t) for bs, t in times.items()}
            results[f"{key} / {name}"] = {
                "windows": list(w.shape), "seconds": med,
                "ratio_to_batch_1": {bs: med[bs] / med[1] for bs in med},
                "max_rel_diff_to_batch_1": diff, "rounds": times}
            print(key, name, {bs: round(med[bs] / med[1], 3) for bs in med}, flush=True)
        del model
    out = {"machine": machine(), "threads": args.threads, "sizes": args.sizes,
           "results": results}
    dest = ROOT / "results" / "benchmarks"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "batch.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    sizes = args.sizes
    lines = ["| model / pass | windows | batch 1 (s) | " + " | ".join(f"×{b}" for b in sizes[1:])
             + " | largest rel. diff |", "|---|---|---:|" + "---:|" * (len(sizes) - 1) + "---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['windows'][0]} × {r['windows'][1]} | "
                     f"{r['seconds'][1]:.1f} | "
                     + " | ".join(f"{r['ratio_to_batch_1'][b]:.2f}" for b in sizes[1:])
                     + f" | {max(r['max_rel_diff_to_batch_1'].values()):.1e} |")
    lines += ["", f"Median of {args.rounds} interleaved rounds, {args.threads} threads; "
                  "columns ×b: time at batch size b over time at batch 1."]
    (dest / "batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
