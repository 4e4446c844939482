#!/usr/bin/env python3
"""How far bfloat16 (or float16) moves each headline number from float32, on real models.

For each model (default: the two real models of the default study) the registry entry is
materialized twice, in float32 and in the compared dtype, and both copies run the default
study's windows through the workflow's own functions: the analysis windows give the
layer statistics and head scores (one pass, as extract_activations), the held-out windows
the perplexity (as perplexity_baseline). Every reduction is float32 in both; only the
model's weights and matmuls change.

    python benchmarks/bench_dtype.py                       # smollm2-135m gemma3-270m, bfloat16
    python benchmarks/bench_dtype.py --dtype float16 --models smollm2-135m

Writes results/benchmarks/dtype.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _common import ROOT, load_config, machine, use_src

use_src()

from massact.forward import analyse  # noqa: E402
from massact.io import read_parquet  # noqa: E402
from massact.perplexity import perplexity, window_nll  # noqa: E402
from massact.runtime import set_threads  # noqa: E402
from massact.sampling import draw_windows, truncate, windows_tensor  # noqa: E402
from massact.sources import load_model, materialize_corpus, materialize_model  # noqa: E402


def model_dir(cfg, key, dtype):
    spec = dict(cfg["models"][key], dtype=dtype)
    d = ROOT / "resources" / "bench-models" / f"{key}-{dtype}"
    if dtype == "float32" and (ROOT / "resources/models" / key / "source.json").exists():
        return ROOT / "resources/models" / key  # the workflow's own copy
    if not (d / "source.json").exists():
        materialize_model(key, spec, d, ROOT / "resources/downloads")
    return d


def windows(cfg, tok):
    corpus = ROOT / "resources/corpus" / f"{cfg['corpus']}.parquet"
    if not corpus.exists():
        materialize_corpus(cfg["corpus"], cfg["corpora"][cfg["corpus"]], corpus,
                           ROOT / "resources/downloads", base=ROOT)
    table = read_parquet(corpus)
    s, p = cfg["sampling"], cfg["perplexity"]
    analysis = draw_windows(table, tok, s["nsamples"], s["seqlen"], s["seed"])
    held = draw_windows(table, tok, s["nsamples"], s["seqlen"], s["seed"], split="heldout",
                        n_heldout=p["windows"])
    return windows_tensor(analysis), windows_tensor(truncate(held, p["windows"], p["seqlen"]))


def measure(directory, win, held):
    model, tok = load_model(directory)
    t0 = time.perf_counter()
    out = analyse(model, tok, win, k=3, heads=True, desc=f"{directory.name}")
    t_analyse = time.perf_counter() - t0
    t0 = time.perf_counter()
    nll, n = window_nll(model, held)
    t_ppl = time.perf_counter() - t0
    stats = out["layer_stats"].to_pandas()
    top1 = stats[stats["rank"] == 1]
    per_layer = top1.groupby("layer").agg(top1=("value", "mean"), median=("median", "mean"))
    where = top1.groupby("layer").apply(
        lambda g: g.groupby(["token_pos", "dim"]).size().idxmax(), include_groups=False)
    heads = out["head_scores"].to_pandas().groupby(["layer", "head"])["score"].mean()
    return {"per_layer": per_layer, "where": where, "heads": heads, "ppl": perplexity(nll, n),
            "window_nll": nll / n, "seconds_analyse": t_analyse, "seconds_ppl": t_ppl,
            "tokens": int(win.numel())}


def compare(a, b):
    """Relative changes of b against a (a = float32)."""
    rel = lambda x, y: (y - x) / x  # noqa: E731
    t1 = rel(a["per_layer"]["top1"], b["per_layer"]["top1"])
    med = rel(a["per_layer"]["median"], b["per_layer"]["median"])
    peak = int(a["per_layer"]["top1"].idxmax())
    top = a["heads"].sort_values(ascending=False).index[:3]
    head_diff = (b["heads"] - a["heads"]).abs()
    rank_a = a["heads"].rank(ascending=False, method="first")
    rank_b = b["heads"].rank(ascending=False, method="first")
    return {
        "peak_layer": peak,
        "peak_top1_f32": float(a["per_layer"]["top1"][peak]),
        "peak_top1_change": float(t1[peak]),
        "top1_max_abs_change": float(t1.abs().max()),
        "top1_max_layer": int(t1.abs().idxmax()),
        "median_max_abs_change": float(med.abs().max()),
        "median_max_layer": int(med.abs().idxmax()),
        "top1_location_same_layers": int((a["where"] == b["where"]).sum()),
        "layers": int(len(a["where"])),
        "top_heads": [f"L{l}H{h}" for l, h in top],
        "top_heads_f32": [float(a["heads"][i]) for i in top],
        "top_heads_abs_change": [float(b["heads"][i] - a["heads"][i]) for i in top],
        "heads_max_abs_change": float(head_diff.max()),
        "top3_heads_same": bool(list(rank_b.sort_values().index[:3]) == list(top)),
        "ppl_f32": a["ppl"], "ppl_other": b["ppl"], "ppl_change": b["ppl"] / a["ppl"] - 1,
        "window_nll_max_abs_change": float(np.max(np.abs(b["window_nll"] - a["window_nll"]))),
        "speed_ratio_analyse": a["seconds_analyse"] / b["seconds_analyse"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    cfg = load_config()
    rows = {}
    for key in args.models:
        f32 = model_dir(cfg, key, "float32")
        other = model_dir(cfg, key, args.dtype)
        _, tok = load_model(f32)
        win, held = windows(cfg, tok)
        a, b = measure(f32, win, held), measure(other, win, held)
        rows[key] = compare(a, b)
        print(key, json.dumps(rows[key], indent=1))
    out = ROOT / "results/benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dtype.json").write_text(json.dumps({"dtype": args.dtype, "models": rows,
                                                "machine": machine()}, indent=1))
    lines = [f"| model | top-1 at its peak layer (f32 → change) | largest top-1 change (layer) | "
             f"largest median change (layer) | top-1 at the same (token, dim) | top-3 heads "
             f"(f32 score, change) | largest head-score change | perplexity (f32 → change) |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        heads = ", ".join(f"{h} {s:.3f} ({d:+.4f})" for h, s, d in
                          zip(r["top_heads"], r["top_heads_f32"], r["top_heads_abs_change"]))
        lines.append(
            f"| {key} | {r['peak_top1_f32']:,.0f} (layer {r['peak_layer']}) → "
            f"{r['peak_top1_change']:+.2%} | {r['top1_max_abs_change']:.2%} "
            f"({r['top1_max_layer']}) | {r['median_max_abs_change']:.2%} ({r['median_max_layer']}) "
            f"| {r['top1_location_same_layers']}/{r['layers']} layers | {heads} | "
            f"{r['heads_max_abs_change']:.4f} | {r['ppl_f32']:.2f} → {r['ppl_change']:+.2%} |")
    (out / "dtype.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
