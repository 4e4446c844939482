#!/usr/bin/env python3
"""What a study of large models costs, on paper: tokens per stage, FLOPs, GPU time, memory.

For every model of a config (default: config/config.yaml with config/paper.yaml over it,
as the Snakefile layers them), counts the tokens each stage runs through the model, from
the same settings the rules use (analysis, held-out and sweep windows; head sets; the
component and cumulative sweeps; the intervention), and turns them into FLOPs with
2 × the parameters active per token (Mixtral routes each token through 2 of its 8
experts: 12.9 B of 46.7 B; the attention adds 2 × layers × window × hidden per token on
top, about 8 % at 4096 tokens for a 7 B model, 4 % at 2048; not counted), then into GPU
hours at an assumed sustained throughput (float16/bfloat16 and float32 apart). A model
spread over several GPUs runs its layers one after the other: its jobs hold every GPU
for the time one would take, and the GPU-hours count all of them. Memory is the weights in their dtype plus 2 GB
of working room (one window, no attention map, except Falcon and MPT whose eager
attention holds one layer's heads × window² probabilities at a time).

    python benchmarks/paper_cost.py                        # config/paper.yaml, 150 TFLOP/s
    python benchmarks/paper_cost.py --tflops 400 --configfile config/paper.yaml

Prints a Markdown table (also written to results/benchmarks/paper_cost.md).
"""

from __future__ import annotations

import argparse

from _common import ROOT, load_config, use_src

use_src()

from massact.config import (DTYPE_BYTES, components, cut_seqlen, experiments,  # noqa: E402
                            intervention_layers, model_shape, window_seqlen)

#: parameters a token passes through, where fewer than all (mixtures of experts; from the
#: model cards)
ACTIVE_PARAMS = {"mistralai/Mixtral-8x7B-v0.1": 12.9e9, "mistralai/Mixtral-8x7B-Instruct-v0.1": 12.9e9}


def stage_tokens(cfg: dict, key: str) -> dict[str, int]:
    spec = cfg["models"][key]
    n_layers = model_shape(key, spec)["n_layers"]
    analysis = cfg["sampling"]["nsamples"] * window_seqlen(cfg, key)
    held = cfg["perplexity"]["windows"] * cut_seqlen(cfg, key, "perplexity")
    sweep = cfg["sweeps"]["samples"] * cut_seqlen(cfg, key, "sweeps")
    k = cfg["cumulative"]["k"]
    kinds = 2 + len(cfg["cumulative"]["seeds"])  # top, bottom, one random order per seed
    distinct_sets = kinds * len(k) - (kinds - 1) * ("all" in k)  # k = all: one set for every kind
    layers = intervention_layers(cfg, key)
    modes = len(cfg["intervention"]["modes"])
    return {
        "extraction": analysis,  # statistics, head scores and head means: one pass
        "pruning": len(experiments(cfg)) * (analysis + held),
        "perplexity": held,
        "components": sweep + len(components(cfg, key)) * (sweep + held),
        "cumulative": distinct_sets * (sweep + held),
        # the means pass stops at the layer; then massive and control, per mode
        "intervention": sum(analysis * (layer + 1) // n_layers + 2 * modes * held
                            for layer in layers)
        # every layer at once: a full means pass, then massive and control per mode
        + (analysis + 2 * modes * held if cfg["intervention"]["every_layer"] else 0),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="*", default=[str(ROOT / "config/paper.yaml")])
    ap.add_argument("--tflops", type=float, default=150.0,
                    help="sustained float16/bfloat16 throughput per GPU (default 150: about "
                         "half an A100's dense peak)")
    ap.add_argument("--tflops-fp32", type=float, default=15.0,
                    help="sustained float32 throughput per GPU, TF32 off (default 15)")
    args = ap.parse_args()
    cfg = load_config(args.configfile)
    groups = {"extraction": ["extraction"], "pruning": ["pruning", "perplexity"],
              "sweeps": ["components", "cumulative"], "intervention": ["intervention"]}
    lines = ["| model | params | dtype | GPU memory per job | window | million tokens: extraction "
             "/ pruning / sweeps / intervention | GPU-hours: same stages | total GPU-hours |",
             "|---|---:|---|---:|---:|---|---|---:|"]
    for key in cfg["run"]:
        spec = cfg["models"][key]
        n = spec.get("n_params")
        if n is None:
            continue
        dtype = spec.get("dtype", "float32")
        weights = n * DTYPE_BYTES[dtype] / 1e9
        gpus = spec.get("gpus", 1)
        rate = (args.tflops_fp32 if dtype == "float32" else args.tflops) * 1e12
        active = ACTIVE_PARAMS.get(spec.get("repo"), n)
        tok = stage_tokens(cfg, key)
        g_tok = {g: sum(tok[s] for s in ss) for g, ss in groups.items()}
        g_h = {g: 2 * active * t / rate / 3600 * gpus for g, t in g_tok.items()}
        mem = f"{weights + 2:.0f} GB" + (f" over {gpus} GPUs" if gpus > 1 else "")
        lines.append(f"| {key} | {n / 1e9:.2f} B | {dtype} | {mem} | {window_seqlen(cfg, key)} | "
                     + " / ".join(f"{t / 1e6:.2f}" for t in g_tok.values()) + " | "
                     + " / ".join(f"{h:.2f}" for h in g_h.values())
                     + f" | {sum(g_h.values()):.2f} |")
    text = "\n".join(lines) + "\n"
    out = ROOT / "results/benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
