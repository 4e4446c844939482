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
  perplexity   sample_heldout, perplexity_baseline
  sweeps       sweep_baseline, component_ablations, cumulative_pruning, intervention
  across       models_* (the cross-model figure and table)
  figures      *_figure(s), feature3d_*, *_table (figures and tables)
  other        anything else

and counts the forward passes the run made against the minimum its outputs need,
in windows of three kinds: analysis (the samples), held-out (perplexity) and sweep
(component and cumulative sweeps). Every output needs its own pass (an ablation
changes the model), except that one baseline pass gives the statistics, the
first-token head scores and the head means together.

``prompt_features`` and ``prune_prompt`` each run one short prompt pass; they are
counted separately. ``nsamples`` and the window length come from each model's
``samples.parquet`` when it exists, else from the config (config/config.yaml with each
--configfile over it, as the Snakefile layers them).

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
    ("perplexity", ["sample_heldout", "perplexity_baseline"]),
    ("sweeps", ["sweep_baseline", "component_ablations*", "cumulative_pruning", "intervention"]),
    ("across", ["models_*"]),
    ("figures", ["*_figure", "*_figures", "feature3d_*", "*_table", "*_tables"]),
]
STAGE_NAMES = [s for s, _ in STAGES] + ["other"]
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


def unique_cumulative_sets(results: Path, model: str) -> int:
    p = results / model / "cumulative" / "pruning.parquet"
    if not p.exists():
        return 0
    import pyarrow.parquet as pq

    return len(set(pq.read_table(p, columns=["heads"]).column("heads").to_pylist()))


def passes(results: Path, config: dict, jobs: list[dict]) -> dict:
    """Forward passes made (from the jobs that ran) and needed (by the outputs that
    exist), per model, in windows of each kind: analysis, held-out, sweep."""
    import pyarrow.parquet as pq

    use_src()
    from massact.config import components, intervention_layers

    exps = experiments(config)
    modes = config.get("intervention", {}).get("modes", ["zero", "mean"])
    out = {}
    for m in config["run"]:  # other models' results may come from another config
        n, seqlen, src = samples_shape(results, m, config)
        h = int(config["perplexity"]["windows"])
        sw = int(config["sweeps"]["samples"])
        comps = components(config, m) if m in config["run"] else []
        cum = unique_cumulative_sets(results, m)
        per_job = {  # rule → (analysis, held-out, sweep) windows per job
            "extract_activations": (n, 0, 0), "score_heads_massive": (n, 0, 0),
            "prune_heads": (n, h, 0), "perplexity_baseline": (0, h, 0),
            "sweep_baseline": (0, 0, sw), "cumulative_pruning": (0, h * cum, sw * cum),
            # + the analysis windows up to the layer, for the massive activations' means
            "intervention": (n, 2 * len(modes) * h, 0),
            "intervention_every_layer": (n, 2 * len(modes) * h, 0)}
        made = defaultdict(lambda: [0, 0, 0])
        prompt = 0
        for j in (j for j in jobs if j["model"] == m):
            rule = j["rule"]
            w = per_job.get(rule)
            if rule.startswith("component_ablations"):
                w = (0, h * len(comps), sw * len(comps))
            if rule == "prune_heads" and j["wildcards"] == m:  # one job: every experiment
                w = (n * len(exps), h * len(exps), 0)
            if w:
                made[rule] = [a + b * j["repeats"] for a, b in zip(made[rule], w)]
            elif rule in PROMPT_PASSES:
                prompt += j["repeats"]
        d = results / m
        need = [0, 0, 0]

        def add(cond, w):
            if cond:
                need[0] += w[0]
                need[1] += w[1]
                need[2] += w[2]

        add((d / "activations" / "layer_stats.parquet").exists(), (n, 0, 0))
        add((d / "heads" / "per_sample_massive.parquet").exists(), (n, 0, 0))
        for e in exps:
            add((d / "pruning" / e / "layer_stats.parquet").exists(), (n, 0, 0))
            add((d / "perplexity" / f"pruning_{e}.parquet").exists(), (0, h, 0))
        add((d / "perplexity" / "baseline.parquet").exists(), (0, h, 0))
        add((d / "sweeps" / "baseline_stats.parquet").exists(), (0, 0, sw))
        done = set()  # component ablations in the long tables (an `ablation`, a `run` column)
        if (d / "components" / "changes.parquet").exists():
            done = set(pq.read_table(d / "components" / "changes.parquet",
                                     columns=["ablation"]).column(0).to_pylist())
        ppl_done = set()
        if (d / "perplexity" / "components.parquet").exists():
            ppl_done = set(pq.read_table(d / "perplexity" / "components.parquet",
                                         columns=["run"]).column(0).to_pylist())
        for c in comps:
            add(c in done, (0, 0, sw))
            add(c in ppl_done or f"components_{c}" in ppl_done, (0, h, 0))
        add(cum > 0, (0, h * cum, sw * cum))
        for layer in intervention_layers(config, m) if m in config["run"] else []:
            for mode in modes:
                add((d / "intervention" / f"{layer}_{mode}.parquet").exists(), (0, 2 * h, 0))
            add((d / "intervention" / f"{layer}_{modes[0]}.parquet").exists(), (n, 0, 0))
        for mode in modes:  # every layer at once
            add((d / "intervention" / f"every_{mode}.parquet").exists(), (0, 2 * h, 0))
        add((d / "intervention" / f"every_{modes[0]}.parquet").exists(), (n, 0, 0))
        tokens = (seqlen, int(config["perplexity"]["seqlen"]), int(config["sweeps"]["seqlen"]))
        total = [sum(v[i] for v in made.values()) for i in range(3)]
        out[m] = {"nsamples": n, "seqlen": seqlen, "from": src, "tokens": tokens,
                  "made": {k: tuple(v) for k, v in made.items()}, "made_total": total,
                  "minimum_for_outputs": need, "prompt_passes": prompt,
                  "made_tokens": sum(a * t for a, t in zip(total, tokens)),
                  "need_tokens": sum(a * t for a, t in zip(need, tokens)),
                  "cumulative_sets": cum, "components": len(comps)}
    return out


def kept(starts: list[int], tokens: int, width: int, nbytes: int) -> dict[int, int]:
    """Where each requested start block really starts, by massact.prefix's own rule: as
    many of the latest starts as fit in massact.sweeps.PREFIX_BYTES, each holding ``tokens``
    × ``width`` numbers of ``nbytes``; a start not kept falls back to the nearest kept one
    below it, or to a full pass."""
    from massact.prefix import effective_start, kept_starts
    from massact.sweeps import PREFIX_BYTES

    have = kept_starts(starts, tokens * width * nbytes, PREFIX_BYTES)
    return {s: effective_start(have, s) for s in starts}


def model_width(results: Path, m: str) -> tuple[int, int]:
    """(hidden size, bytes per number) of a materialized model next to ``results``
    (resources/models/<m>), else (0, 0): every start is then taken as kept."""
    import json

    from massact.config import DTYPE_BYTES

    d = results.parent / "resources" / "models" / m
    try:
        cfg = json.loads((d / "config.json").read_text())
        cfg = cfg.get("text_config", cfg)
        dtype = json.loads((d / "source.json").read_text()).get("dtype", "float32")
        return int(cfg["hidden_size"]), DTYPE_BYTES[dtype]
    except (OSError, KeyError, ValueError):
        return 0, 0


def block_forwards(results: Path, config: dict, jobs: list[dict]) -> dict:
    """Block-forwards (one decoder block over one token) per model: made by the jobs that
    ran, needed by the outputs, and what full passes would have made. Needed: the
    unablated passes (baseline statistics, massive-target scores, baseline perplexity,
    sweep baseline: every block), and each ablated or intervened configuration from the
    first block it changes (a pruning set: its lowest head's layer; a component: its
    layer; an intervention: its layer, every block for every layer at once; the
    massive-activation means: the blocks up to the layer). Made: the same, except that
    each late-starting job adds its unablated recording pass (every block) and starts a
    configuration where its kept block inputs allow (:func:`kept`), and that the
    interventions run full passes. Counted from the jobs' benchmark files, the config and
    the outputs (the pruning sets' heads, the cumulative sets), as the code runs them."""
    import pyarrow.parquet as pq
    import yaml

    use_src()
    from massact.config import components, intervention_layers, model_shape
    from massact.sweeps import component_start, head_set_start

    exps = experiments(config)
    modes = config.get("intervention", {}).get("modes", ["zero", "mean"])
    out = {}
    for m in config["run"]:
        layers = model_shape(m, config["models"][m])["n_layers"]
        d = results / m
        n, seqlen, _ = samples_shape(results, m, config)
        h, ht = int(config["perplexity"]["windows"]), int(config["perplexity"]["seqlen"])
        sw, st = int(config["sweeps"]["samples"]), int(config["sweeps"]["seqlen"])
        a_tok, h_tok, s_tok = n * seqlen, h * ht, sw * st  # tokens per pass over each kind
        width, nbytes = model_width(results, m)
        stems = {(j["rule"], j["wildcards"]) for j in jobs if j["model"] == m}
        ran = {r for r, _ in stems}
        # per kind of window: [made, needed, full]; held-out passes through the output layer
        count = {"analysis": [0, 0, 0], "held-out": [0, 0, 0], "sweep": [0, 0, 0]}
        head = 0

        def add(kind, made, needed, full):
            for i, v in enumerate((made, needed, full)):
                count[kind][i] += v

        for rule, kind, tokens in (("extract_activations", "analysis", a_tok),
                                   ("score_heads_massive", "analysis", a_tok),
                                   ("perplexity_baseline", "held-out", h_tok),
                                   ("sweep_baseline", "sweep", s_tok)):
            if rule in ran:  # unablated: every block
                add(kind, layers * tokens, layers * tokens, layers * tokens)
        if "perplexity_baseline" in ran:
            head += h

        def late(starts, kinds, rule):
            nonlocal head
            if rule not in ran or not starts:
                return
            # one cache holds every kind's inputs, as in run_configs
            real = (kept(starts, sum(t for _, t in kinds), width, nbytes) if width
                    else {s: s for s in starts})
            for kind, tokens in kinds:
                record = layers * tokens if any(real.values()) else 0
                add(kind, sum(layers - real[s] for s in starts) * tokens + record,
                    sum(layers - s for s in starts) * tokens, len(starts) * layers * tokens)
            head += h * len(starts)

        starts = []
        for e in exps:
            f = d / "pruning" / e / "heads.yaml"
            if f.exists():
                heads = yaml.safe_load(f.read_text())["heads"]
                starts.append(min((l for l, _ in heads), default=0))
        late(starts, [("analysis", a_tok), ("held-out", h_tok)], "prune_heads")
        late([component_start(c, layers) for c in components(config, m)],
             [("sweep", s_tok), ("held-out", h_tok)], "component_ablations")
        cum = d / "cumulative" / "pruning.parquet"
        if cum.exists():
            keys = set(pq.read_table(cum, columns=["heads"]).column("heads").to_pylist())
            late([head_set_start(k) for k in keys], [("sweep", s_tok), ("held-out", h_tok)],
                 "cumulative_pruning")
        # intervention jobs (their benchmark files: <model>_<layer>, <model>_every): each
        # runs the means pass over the analysis windows (up to the layer; every block for
        # every layer at once) and two full held-out passes (massive, control) per mode
        runs = 2 * len(modes)
        at = [l for l in intervention_layers(config, m) if ("intervention", f"{m}_{l}") in stems]
        if ("intervention", f"{m}_every") in stems:
            at.append(None)
        for layer in at:
            first, means = (0, layers) if layer is None else (layer, layer + 1)
            add("analysis", means * a_tok, means * a_tok, layers * a_tok)
            add("held-out", runs * layers * h_tok, runs * (layers - first) * h_tok,
                runs * layers * h_tok)
            head += runs * h
        total = [sum(c[i] for c in count.values()) for i in range(3)]
        if total[1]:
            out[m] = {"made": total[0], "needed": total[1], "full": total[2],
                      "kinds": {k: tuple(v) for k, v in count.items()},
                      "head_windows": head, "layers": layers,
                      "seqlen": {"analysis": seqlen, "held-out": ht, "sweep": st}}
    return out


def write(out: Path, jobs: list[dict], fp: dict, results: Path, config_desc: str,
          bf: dict | None = None) -> None:
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
    L += ["", "## Forward passes", "",
          "One window = one forward pass. Three kinds of window: *analysis* (the samples: "
          "statistics, head scores, pruning), *held-out* (perplexity; never analysed) and *sweep* "
          "(the first analysis windows cut short, for the component and cumulative sweeps). "
          "*Made*: from the jobs that ran. *Minimum*: what the outputs that exist need: one pass "
          "per window for the baseline statistics and head scores (one pass gives both), one per "
          "window and pruning experiment, component ablation or distinct cumulative head set, "
          "one per held-out window for each perplexity, two per held-out window for each "
          "intervention file (massive and control), and one per analysis window and "
          "intervention layer for the massive activations' means (those passes stop at the "
          "layer; counted here as whole passes).", "",
          "| model | windows × tokens (analysis, held-out, sweep) | made (analysis + held-out + sweep) "
          "| minimum for outputs | made / minimum (tokens) | components, cumulative sets | prompt passes |",
          "|---|---|---|---|---|---|---|"]
    for m, p in fp.items():
        t = p["tokens"]
        made, need = p["made_total"], p["minimum_for_outputs"]
        ratio = f"{p['made_tokens'] / p['need_tokens']:.2f}" if p["need_tokens"] else "–"
        L.append(f"| {m} | {p['nsamples']} × {t[0]}, held-out × {t[1]}, sweep × {t[2]} | "
                 f"{made[0]} + {made[1]} + {made[2]} | {need[0]} + {need[1]} + {need[2]} | "
                 f"{ratio} ({p['made_tokens']:,} / {p['need_tokens']:,}) | "
                 f"{p['components']}, {p['cumulative_sets']} | {p['prompt_passes']} |")
    if bf:
        L += ["", "## Block-forwards", "",
              "One decoder block over one token. *Needed*: every unablated pass whole, each "
              "ablated or intervened configuration from the first block it changes. *Made*: "
              "the same plus each late-starting job's unablated recording pass, and the "
              "interventions as full passes. *Full*: every pass through every block "
              "(`benchmarks/study_cost.py`, `block_forwards`).", "",
              "| model | made | needed | full passes | made / needed | made / full |",
              "|---|---:|---:|---:|---:|---:|"]
        tot = {"made": 0, "needed": 0, "full": 0}
        for m, b in bf.items():
            for k in tot:
                tot[k] += b[k]
            L.append(f"| {m} | {b['made']:,} | {b['needed']:,} | {b['full']:,} | "
                     f"{b['made'] / b['needed']:.2f} | {b['made'] / b['full']:.2f} |")
        if len(bf) > 1 and tot["needed"]:
            L.append(f"| all | {tot['made']:,} | {tot['needed']:,} | {tot['full']:,} | "
                     f"{tot['made'] / tot['needed']:.2f} | {tot['made'] / tot['full']:.2f} |")
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
    write(out, jobs, fp, results, desc, block_forwards(results, config, jobs))
    print((out / "study_cost.md").read_text())


if __name__ == "__main__":
    main()
