#!/usr/bin/env python
"""What a workflow run cost: wall time per stage and model, and its forward passes.

Reads the Snakemake benchmark files of a run, ``<results>/benchmarks/rules/<rule>/<wildcards>.tsv``
(column ``s`` = wall seconds, ``max_rss`` = MB, ``cpu_time`` = CPU seconds; one
row per ``--benchmark-repeats`` repetition), groups the rules into stages

  models       materialize_model
  corpus       materialize_corpus, sample_windows
  activations  extract_activations, prompt_features
  heads        score_heads_massive, head_*
  pruning      prune_heads, prune_prompt, pruning_*
  figures      *_figure(s), feature3d_*, *_table (figures and tables)
  other        anything else

and counts the forward passes over the analysis windows that the run made
against the minimum its outputs need:

  extract_activations  nsamples   (statistics, first-token head scores and head
                                   means in one pass)
  score_heads_massive  nsamples   (only with heads.massive_target)
  prune_heads          nsamples   per experiment
  minimum              nsamples × (1 + experiments) (+ nsamples with massive_target,
                                   whose targets come from the statistics)

``prompt_features`` and ``prune_prompt`` each run one short prompt pass; they are
counted separately. ``nsamples`` and the window length come from each model's
``samples.parquet`` when it exists, else from the config (config/config.yaml
deep-merged with each --configfile, as Snakemake does).

Writes <out>/study_cost.md, study_cost.csv (stage × model) and study_cost_jobs.csv
(one row per job); --out defaults to <results>/benchmarks.

  python benchmarks/study_cost.py                                   # ./results
  python benchmarks/study_cost.py --results /path/to/results --configfile config/test.yaml
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, load_config, use_src  # noqa: E402

STAGES = [
    ("models", ["materialize_model"]),
    ("corpus", ["materialize_corpus", "sample_windows"]),
    ("activations", ["extract_activations", "prompt_features"]),
    ("heads", ["score_heads_massive", "head_*"]),
    ("pruning", ["prune_heads", "prune_prompt", "pruning_*"]),
    ("figures", ["*_figure", "*_figures", "feature3d_*", "*_table", "*_tables"]),
]
STAGE_NAMES = [s for s, _ in STAGES] + ["other"]
WINDOW_PASSES = {"extract_activations", "score_heads_massive", "prune_heads"}
PROMPT_PASSES = {"prompt_features", "prune_prompt"}


def stage_of(rule: str) -> str:
    for stage, patterns in STAGES:
        if any(fnmatch.fnmatchcase(rule, p) for p in patterns):
            return stage
    return "other"


def model_of(stem: str, models: list[str]) -> str | None:
    """The registry key a wildcards stem starts with (longest match), e.g. 'gpt2_top' → 'gpt2'."""
    best = None
    for m in models:
        if stem == m or stem.startswith(m + "_") or (stem.startswith(m) and stem[len(m):] == "_massive"):
            if best is None or len(m) > len(best):
                best = m
    return best


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))

    def num(x):
        try:
            return float(x)
        except (TypeError, ValueError):
            return float("nan")

    return [{"s": num(r.get("s")), "max_rss": num(r.get("max_rss")), "cpu_time": num(r.get("cpu_time")),
             "mean_load": num(r.get("mean_load"))} for r in rows]


def samples_shape(results: Path, model: str, config: dict) -> tuple[int, int, str]:
    """(nsamples, seqlen, where from) of a model's analysis windows."""
    p = results / model / "samples.parquet"
    if p.exists():
        try:
            import pyarrow.parquet as pq

            t = pq.read_table(p, columns=["input_ids"])
            n = t.num_rows
            return n, (len(t.column("input_ids")[0]) if n else 0), "samples.parquet"
        except Exception:  # fall back to the config
            pass
    s = config["sampling"]
    return int(s["nsamples"]), int(s["seqlen"]), "config"


def experiments(config: dict) -> list[str]:
    use_src()
    try:
        from massact.selection import expand

        return list(expand(config["heads"]["sets"]))
    except ImportError:
        out = []
        for name, rule in config["heads"]["sets"].items():
            out += [f"{name}-{s}" for s in rule.get("seeds", [0])] if "random" in rule else [name]
        return out


def collect(results: Path, config: dict) -> list[dict]:
    models = list(config.get("models", {}))
    jobs = []
    base = results / "benchmarks" / "rules"
    for tsv in sorted(base.glob("*/*.tsv")):
        rule, stem = tsv.parent.name, tsv.stem
        rows = read_tsv(tsv)
        if not rows:
            continue
        model = None if rule in ("materialize_corpus",) else model_of(stem, models)
        jobs.append({"rule": rule, "stage": stage_of(rule), "wildcards": stem,
                     "model": model or ("(corpus)" if rule == "materialize_corpus" else "(unknown)"),
                     "repeats": len(rows), "s": sum(r["s"] for r in rows),
                     "cpu_s": sum(r["cpu_time"] for r in rows),
                     "max_rss_mb": max(r["max_rss"] for r in rows),
                     "mean_load": sum(r["mean_load"] for r in rows) / len(rows)})
    return jobs


def passes(results: Path, config: dict, jobs: list[dict]) -> dict:
    """Forward passes made (from the jobs that ran) and needed, per model."""
    exps = experiments(config)
    massive = bool(config["heads"].get("massive_target", False))
    models = sorted({j["model"] for j in jobs if j["model"] in config["models"]} | set(config["run"]))
    out = {}
    for m in models:
        n, seqlen, src = samples_shape(results, m, config)
        mj = [j for j in jobs if j["model"] == m]
        made = defaultdict(int)
        prompt = 0
        for j in mj:
            if j["rule"] in WINDOW_PASSES:
                made[j["rule"]] += n * j["repeats"]
            elif j["rule"] in PROMPT_PASSES:
                prompt += j["repeats"]
        # outputs that exist, and the passes they need at least
        d = results / m
        have_stats = (d / "activations" / "layer_stats.parquet").exists()
        have_massive = (d / "heads" / "per_sample_massive.parquet").exists()
        pruned = [e for e in exps if (d / "pruning" / e / "layer_stats.parquet").exists()]
        need = n * (int(have_stats) + len(pruned) + int(have_massive))
        planned_min = n * (1 + len(exps) + int(massive))
        s_pass = sum(j["s"] for j in mj if j["rule"] in WINDOW_PASSES)
        out[m] = {"nsamples": n, "seqlen": seqlen, "from": src,
                  "made": dict(made), "made_total": sum(made.values()),
                  "minimum_for_outputs": need, "prompt_passes": prompt,
                  "experiments_done": len(pruned), "experiments_planned": len(exps),
                  "massive_target": massive, "planned_minimum": planned_min,
                  "complete": need == planned_min,
                  "window_pass_jobs_s": s_pass,
                  "s_per_window_pass": s_pass / sum(made.values()) if made else None}
    return out


def write(out: Path, jobs: list[dict], fp: dict, results: Path, config_desc: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    models = sorted({j["model"] for j in jobs}, key=lambda m: (m.startswith("("), m))
    table = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
    for j in jobs:
        for key in ((j["stage"], j["model"]), (j["stage"], "all"), ("total", j["model"]), ("total", "all")):
            t = table[key]
            t["jobs"] += 1
            t["s"] += j["s"]
            t["cpu_s"] += j["cpu_s"]
            t["max_rss_mb"] = max(t["max_rss_mb"], j["max_rss_mb"])

    with open(out / "study_cost.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stage", "model", "jobs", "wall_s", "cpu_s", "max_rss_mb"])
        for stage in STAGE_NAMES + ["total"]:
            for m in models + ["all"]:
                t = table.get((stage, m))
                if t:
                    w.writerow([stage, m, t["jobs"], f"{t['s']:.2f}", f"{t['cpu_s']:.2f}",
                                f"{t['max_rss_mb']:.1f}"])
    with open(out / "study_cost_jobs.csv", "w", newline="") as f:
        w = csv.writer(f)
        cols = ["stage", "rule", "model", "wildcards", "repeats", "s", "cpu_s", "max_rss_mb", "mean_load"]
        w.writerow(cols)
        for j in sorted(jobs, key=lambda j: (STAGE_NAMES.index(j["stage"]), j["rule"], j["wildcards"])):
            w.writerow([j[c] if not isinstance(j[c], float) else f"{j[c]:.2f}" for c in cols])

    L = [f"# Cost of the study run in `{results}`", "",
         f"Config: {config_desc}. Wall seconds summed over the jobs of each stage (Snakemake "
         "benchmark files; jobs of one stage may have run in parallel, so the sum is work, not "
         "elapsed time). Jobs in parentheses.", "",
         "| stage | " + " | ".join(models) + " | all |",
         "|---|" + "---|" * (len(models) + 1)]
    for stage in STAGE_NAMES + ["total"]:
        cells = []
        for m in models + ["all"]:
            t = table.get((stage, m))
            cells.append(f"{t['s']:.1f} s ({t['jobs']})" if t else "–")
        if any(c != "–" for c in cells):
            name = f"**{stage}**" if stage == "total" else stage
            L.append(f"| {name} | " + " | ".join(cells) + " |")
    L += ["", "Peak resident memory of any job (MB):", "",
          "| stage | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for stage in STAGE_NAMES:
        cells = [f"{table[(stage, m)]['max_rss_mb']:.0f}" if (stage, m) in table else "–" for m in models]
        if any(c != "–" for c in cells):
            L.append(f"| {stage} | " + " | ".join(cells) + " |")
    L += ["", "## Forward passes over the analysis windows", "",
          "One window = one forward pass of `seqlen` tokens. *Made*: from the jobs that ran "
          "(extract_activations, score_heads_massive, prune_heads). *Minimum*: what the outputs "
          "that exist need — one pass per window for the statistics and first-token head scores, "
          "one per window and pruning experiment, one more per window for massive-token head "
          "scores (their targets come from the statistics). *Planned minimum*: the same for the "
          "whole configured study.", "",
          "| model | windows × tokens | made | minimum for outputs | made / minimum | planned minimum "
          "| experiments done | prompt passes | s per window pass (incl. job start) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for m, p in fp.items():
        ratio = f"{p['made_total'] / p['minimum_for_outputs']:.2f}" if p["minimum_for_outputs"] else "–"
        made = " + ".join(f"{v} {k}" for k, v in p["made"].items()) or "0"
        sp = f"{p['s_per_window_pass']:.2f}" if p["s_per_window_pass"] else "–"
        L.append(f"| {m} | {p['nsamples']} × {p['seqlen']} ({p['from']}) | {p['made_total']} "
                 f"({made}) | {p['minimum_for_outputs']} | {ratio} | {p['planned_minimum']} | "
                 f"{p['experiments_done']}/{p['experiments_planned']} | {p['prompt_passes']} | {sp} |")
    incomplete = [m for m, p in fp.items() if not p["complete"]]
    if incomplete:
        L += ["", f"Partial run: {', '.join(incomplete)} lack outputs of the configured study "
                  "(the minimum counts only the outputs that exist)."]
    (out / "study_cost.md").write_text("\n".join(L) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--configfile", action="append", default=[],
                    help="merged over config/config.yaml, as `snakemake --configfile`")
    ap.add_argument("--out", type=Path, help="default <results>/benchmarks")
    args = ap.parse_args(argv)
    results = args.results.resolve()
    if not (results / "benchmarks" / "rules").is_dir():
        sys.exit(f"{results}/benchmarks/rules does not exist: no workflow run to read")
    config = load_config(args.configfile)
    jobs = collect(results, config)
    fp = passes(results, config, jobs)
    out = (args.out or results / "benchmarks").resolve()
    desc = "config/config.yaml" + "".join(f" + {c}" for c in args.configfile)
    write(out, jobs, fp, results, desc)
    print((out / "study_cost.md").read_text())


if __name__ == "__main__":
    main()
