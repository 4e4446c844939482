#!/usr/bin/env python3
"""Scale check: a Llama-2-7B-shaped model with random weights, in bfloat16, on this machine.

The model is built by the workflow's own random source (massact.sources.build_random)
directly in bfloat16 (no float32 copy of it ever exists), then one window runs through
the extraction pass that the rule extract_activations makes (layer statistics and
first-token head scores together), and through a bare forward of the decoder stack for
comparison. Reports the resident memory (after building, and the process's peak) against
the bfloat16 weights, and tokens per second.

    python benchmarks/bench_scale.py                      # 1 window of 512 tokens, 2 threads
    python benchmarks/bench_scale.py --seqlen 1024 --dtype float32   # (needs 27 GB)

Writes results/benchmarks/scale.json.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import ROOT, machine, use_src

use_src()

import torch  # noqa: E402

from massact.arch import adapt  # noqa: E402
from massact.forward import analyse  # noqa: E402
from massact.runtime import set_threads  # noqa: E402
from massact.sources import build_random  # noqa: E402
from massact.stats import forward_base  # noqa: E402

#: Llama-2-7B's shape (meta-llama/Llama-2-7b-hf config.json)
LLAMA2_7B = dict(hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008,
                 positions=4096, vocab=32000, tied=False)


def rss_gb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in GB (10⁹ bytes)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e9
    raise KeyError(field)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    out = {"shape": LLAMA2_7B, "dtype": args.dtype, "seqlen": args.seqlen,
           "rss_start_gb": rss_gb("VmRSS")}
    t0 = time.perf_counter()
    model, tok = build_random({"arch": "llama", "size": LLAMA2_7B, "seed": 0,
                               "dtype": args.dtype})
    model.eval().requires_grad_(False)
    out["build_s"] = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    out.update(n_params=params, param_dtypes=dtypes,
               weights_gb=sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9,
               rss_after_build_gb=rss_gb("VmRSS"), peak_after_build_gb=rss_gb("VmHWM"))
    print(json.dumps(out, indent=1), flush=True)
    ids = torch.randint(0, LLAMA2_7B["vocab"], (1, args.seqlen),
                        generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    res = analyse(model, tok, ids, k=10, heads=True, desc="extract 7B")
    out["extract_s"] = time.perf_counter() - t0
    out["extract_tokens_per_s"] = args.seqlen / out["extract_s"]
    out["peak_after_extract_gb"] = rss_gb("VmHWM")
    with torch.inference_mode():
        t0 = time.perf_counter()
        forward_base(adapt(model), ids)
        out["bare_forward_s"] = time.perf_counter() - t0
    out["bare_tokens_per_s"] = args.seqlen / out["bare_forward_s"]
    out["peak_gb"] = rss_gb("VmHWM")
    out["peak_minus_weights_gb"] = out["peak_gb"] - out["weights_gb"]
    stats = res["layer_stats"].to_pandas()
    out["layer_stats_rows"] = len(stats)
    out["head_score_rows"] = res["head_scores"].num_rows
    out["top1_layer31"] = float(stats[(stats.layer == 31) & (stats["rank"] == 1)]["value"].iloc[0])
    out["machine"] = machine()
    dest = ROOT / "results/benchmarks"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "scale.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
