#!/usr/bin/env python
"""How long a finished run would take at the forward-pass limit: its compute floor.

For each model of a finished run (``--results``; the materialized models next to it, in
``resources/models``), this measures on this machine, in the batches the rules use
(``batch_tokens``):

- a bare forward of the decoder stack (no statistics, no hooks, no output layer) over
  windows of each kind (analysis, held-out, sweep), in block-forwards per second (one
  decoder block over one token);
- the output layer with the cross-entropy on held-out batches (``massact.perplexity.
  nll_from_hidden``, what every perplexity pass runs after the blocks), per window.

The floor of the run is the block-forwards its outputs need (``study_cost.py``:
``block_forwards``, per kind of window) at those rates, plus one output layer per
held-out window of every perplexity. It leaves out everything else a job does (start-up,
statistics, head probes, tables, figures, downloads), so a run cannot take less. The
same count for the block-forwards the jobs make is the floor of the code as it is.

  python benchmarks/bench_floor.py --results results     # writes results/benchmarks/floor.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_config, machine, use_src  # noqa: E402
from study_cost import block_forwards, collect  # noqa: E402


def timed(fn, reps: int) -> float:
    """Median wall seconds of ``reps`` calls after one warm-up call."""
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def rates(model_dir: Path, seqlen: dict, batch_tokens: int, reps: int) -> dict:
    """Block-forwards per second for each kind of window, and output-layer seconds per
    held-out window."""
    import torch

    from massact.arch import adapt
    from massact.perplexity import nll_from_hidden
    from massact.runtime import batch_size
    from massact.sources import load_model
    from massact.stats import forward_base

    model, _ = load_model(model_dir, "cpu", tokenizer=False)
    arch = adapt(model)
    vocab = model.get_output_embeddings().weight.shape[0]
    g = torch.Generator().manual_seed(0)
    out = {}
    with torch.inference_mode():
        for kind, t in seqlen.items():
            b = batch_size(batch_tokens, torch.zeros(64, t))
            ids = torch.randint(0, vocab, (b, t), generator=g)
            s = timed(lambda: forward_base(arch, ids), reps)
            out[kind] = arch.n_layers * b * t / s
        t = seqlen["held-out"]
        b = batch_size(batch_tokens, torch.zeros(64, t))
        ids = torch.randint(0, vocab, (b, t), generator=g)
        hidden = forward_base(arch, ids).last_hidden_state
        out["head_s_per_window"] = timed(lambda: nll_from_hidden(model, hidden, ids), reps) / b
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--configfile", action="append", default=[])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, help="default <results>/benchmarks/floor.md")
    args = ap.parse_args(argv)
    use_src()
    from massact.runtime import set_threads

    results = args.results.resolve()
    config = load_config(args.configfile)
    set_threads(os.cpu_count() or 1)  # every core, as a model job of the default config
    jobs = collect(results, config)
    bf = block_forwards(results, config, jobs)
    rows, total = [], {"need": 0.0, "made": 0.0, "jobs": 0.0}
    for m, b in bf.items():
        r = rates(results.parent / "resources" / "models" / m, b["seqlen"],
                  int(config["batch_tokens"]), args.reps)
        head = b["head_windows"] * r["head_s_per_window"]
        need = sum(b["kinds"][k][1] / r[k] for k in b["kinds"]) + head
        made = sum(b["kinds"][k][0] / r[k] for k in b["kinds"]) + head
        ran = sum(j["s"] for j in jobs if j["model"] == m)
        total["need"] += need
        total["made"] += made
        total["jobs"] += ran
        rows.append(f"| {m} | " + " | ".join(f"{r[k]:,.0f}" for k in b["kinds"])
                    + f" | {r['head_s_per_window']:.3f} | {head:,.0f} | {need:,.0f} | "
                    f"{made:,.0f} | {ran:,.0f} | {ran / need:.2f} |")
        print(rows[-1], flush=True)
    mach = machine()
    L = [f"# The compute floor of the run in `{results}`", "",
         f"Measured {mach['time']} on {mach['nproc']} cores, torch {mach.get('torch')}, "
         f"batches of `batch_tokens` = {config['batch_tokens']} tokens, medians of "
         f"{args.reps} passes (`benchmarks/bench_floor.py`). Rates: block-forwards per "
         "second of a bare decoder-stack forward over windows of each kind; the output "
         "layer in seconds per held-out window. *Floor*: the block-forwards the outputs "
         "need and one output layer per held-out window of every perplexity, at those "
         "rates. *At the limit*: the same for the block-forwards the jobs make. *Jobs*: "
         "the run's model and table jobs, summed (`study_cost.py`).", "",
         "| model | analysis | held-out | sweep | output layer (s/window) | output layers (s) "
         "| floor (s) | at the limit (s) | jobs (s) | jobs / floor |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *rows,
         f"| all | | | | | | {total['need']:,.0f} | {total['made']:,.0f} | "
         f"{total['jobs']:,.0f} | {total['jobs'] / total['need']:.2f} |"]
    out = args.out or results / "benchmarks" / "floor.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
