#!/usr/bin/env python3
"""What starting each ablated pass at its first changed block saves (massact.prefix).

Two measures, both in this one run:

- **Block-forwards** of the component sweep of every model of the config, counted from
  the config alone: *full* (every configuration runs every block), *made* (one
  unablated pass, then each configuration from its first changed block) and *needed*
  (only the blocks that can differ: the limit). Per window; the ratios hold for any
  number of windows.
- **Wall time** of the component sweep on one real model (default smollm2-135m), the
  sweep and held-out windows of the config, a spread of its components (attn-all,
  mlp-all and both components at six layers): full passes against late starts,
  measured one after the other, with the outputs checked to be bit-identical.

    python benchmarks/bench_prefix.py                      # smollm2-135m
    python benchmarks/bench_prefix.py --model gemma3-270m --threads 2

Writes results/benchmarks/prefix.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import ROOT, load_config, machine, use_src

use_src()

from massact.config import component_names, model_shape  # noqa: E402
from massact.runtime import set_threads  # noqa: E402
from massact.sources import load_model  # noqa: E402
from massact.sweeps import ablate, component_start, run_configs  # noqa: E402


def block_forwards(n_layers: int, starts: list[int]) -> dict:
    full = len(starts) * n_layers
    needed = sum(n_layers - s for s in starts)
    made = needed + (n_layers if any(starts) else 0)  # the recording pass
    return {"full": full, "made": made, "needed": needed, "made_over_needed": made / needed,
            "made_over_full": made / full}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    cfg = load_config()

    counts = {}
    for key in cfg["run"]:
        n = model_shape(key, cfg["models"][key])["n_layers"]
        names = component_names(n, cfg["components"]["layers"])
        counts[key] = {"components": len(names), "n_layers": n,
                       **block_forwards(n, [component_start(c, n) for c in names])}

    from bench_dtype import model_dir, windows

    d = model_dir(cfg, args.model, "float32")
    model, tok = load_model(d)
    win, held = windows(cfg, tok)
    sw = cfg["sweeps"]
    win = win[: sw["samples"], : sw["seqlen"]]
    n = model_shape(args.model, cfg["models"][args.model])["n_layers"]
    picks = sorted({0, n // 5, 2 * n // 5, 3 * n // 5, 4 * n // 5, n - 1})
    names = ["attn-all", "mlp-all"] + [f"{k}-{l}" for l in picks for k in ("attn", "mlp")]
    starts = {c: component_start(c, n) for c in names}
    kw = dict(k=cfg["extraction"]["topk"], n_boot=100, seed=0,
              contexts=lambda c: ablate(model, c, n))
    t0 = time.perf_counter()
    full = run_configs(model, tok, win, held, names, **kw)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = run_configs(model, tok, win, held, names, starts=starts, **kw)
    t_fast = time.perf_counter() - t0
    identical = all(full[c][0].equals(fast[c][0]) and full[c][1].equals(fast[c][1])
                    for c in names)
    sub = block_forwards(n, list(starts.values()))
    out = {"machine": machine(), "threads": args.threads, "counts": counts,
           "timed": {"model": args.model, "configs": names, "windows": list(win.shape),
                     "heldout": list(held.shape), "seconds_full": t_full,
                     "seconds_late_start": t_fast, "ratio": t_fast / t_full,
                     "block_forwards": sub, "bit_identical": identical}}
    dest = ROOT / "results" / "benchmarks"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "prefix.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    lines = ["| model | components | block-forwards full | made | needed | made / needed | made / full |",
             "|---|---|---|---|---|---|---|"]
    for key, c in counts.items():
        lines.append(f"| {key} | {c['components']} | {c['full']} | {c['made']} | {c['needed']} "
                     f"| {c['made_over_needed']:.3f} | {c['made_over_full']:.3f} |")
    t = out["timed"]
    lines += ["", f"Timed on {args.model} ({len(names)} components, windows {t['windows']}, "
                  f"held-out {t['heldout']}, {args.threads} threads): full passes "
                  f"{t_full:.1f} s, late starts {t_fast:.1f} s, ratio {t['ratio']:.3f} "
                  f"(block-forwards made / full {sub['made_over_full']:.3f}); outputs "
                  f"bit-identical: {identical}."]
    (dest / "prefix.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
