#!/usr/bin/env python
"""Cost of each stage of the study against a bare forward pass and TransformerLens.

For each model (registry keys; default SmolLM2-135M, Gemma-3-270M and a random
GPT-2 small) and one set of token windows, this measures wall time per window of

  the limit     base_sdpa     the decoder stack alone (no LM head), SDPA attention
                lm_sdpa       the full causal LM with logits, SDPA
                base_eager    the decoder stack, eager attention
  the project   extract       analyse(heads=False): layer statistics
                heads         head_scores: attention to key 0, no statistics
                extract_heads analyse(heads=True): both in one pass (the extraction rule)
                prune         with ablate_heads(3 heads): analyse(heads=True)
  TransformerLens (separate interpreters, see --tl-python)
                tlN_cache_full  run_with_cache(tokens): every hook point
                tlN_cache_resid run_with_cache(names_filter=hook_resid_post)
                tlN_ablate      hook_z zeroing of the same 3 heads + the resid_post cache

The project's and the bare variants run in ONE process; TransformerLens runs in
its own processes. A coordinator interleaves every (process, variant) pair one
call at a time — A B C … A B C … with the order rotated each repetition — so
that the load of a shared machine hits all variants alike; ratios are paired per
repetition (same window, same minute).

The glibc allocator hint (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
MALLOC_TOP_PAD_) must be set before a process starts, so a second set of
processes runs with it (project and TransformerLens alike), interleaved with
the first.

Peak memory: each variant once more in a fresh process (one window), reporting
the resident set after loading, its peak during the pass and the difference.

Writes (relative to the repository root unless --out says otherwise):
  results/benchmarks/stages_raw.json      every call, worker start-up facts, machine
  results/benchmarks/stages_memory.json   the fresh-process memory runs
  results/benchmarks/stages_summary.json  medians, spread, ratios, targets
  results/benchmarks/stages.md            the same as Markdown tables
  results/benchmarks/stages.png           tokens/s per variant and model, limit marked
  results/benchmarks/windows/*.npy        the token windows (shared by every process)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, load_config, machine, use_src  # noqa: E402

use_src()

WORKER = Path(__file__).resolve().parent / "bench_worker.py"
DEFAULT_MODELS = ["smollm2-135m", "gemma3-270m", "random-gpt2-small"]
PROJECT_VARIANTS = ["base_sdpa", "lm_sdpa", "base_eager", "extract", "heads", "extract_heads",
                    "prune"]
TL_KINDS = ["cache_full", "cache_resid", "ablate"]
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
              "MALLOC_TOP_PAD_": str(1 << 30)}
LIMIT = "base_sdpa"
DESCRIPTIONS = {
    "base_sdpa": "bare forward, decoder stack only, SDPA (the limit)",
    "lm_sdpa": "bare forward, full causal LM with logits, SDPA",
    "base_eager": "bare forward, decoder stack only, eager attention",
    "extract": "analyse(heads=False): layer statistics",
    "heads": "head_scores(): attention to key 0",
    "extract_heads": "analyse(heads=True): statistics + head scores, one pass",
    "extract_heads_means": "analyse(heads=True, head_means=True): exactly the extraction rule",
    "prune": "ablate_heads(3 heads) + analyse(heads=True)",
    "tl3_cache_full": "TL 3.x HookedTransformer.run_with_cache (all hooks, return_type=None)",
    "tl3_cache_resid": "TL 3.x run_with_cache(names_filter=hook_resid_post)",
    "tl3_ablate": "TL 3.x hook_z zeroing (3 heads) + resid_post cache",
    "tl3_forward": "TL 3.x forward, no hooks",
    "tl4_cache_full": "TL 4.x TransformerBridge.run_with_cache (all hooks, logits)",
    "tl4_cache_resid": "TL 4.x run_with_cache(names_filter=hook_resid_post)",
    "tl4_ablate": "TL 4.x hook_z zeroing (3 heads) + resid_post cache",
    "tl4_forward": "TL 4.x forward, no hooks",
}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- preparation


def model_dirs(args, config) -> dict[str, Path]:
    """Each model's materialized directory: --model-dir, else resources/models/KEY (built if missing)."""
    given = dict(kv.split("=", 1) for kv in args.model_dir)
    out = {}
    for key in args.models:
        if key in given:
            out[key] = Path(given[key]).resolve()
            continue
        d = (args.resources / "models" / key).resolve()
        if not (d / "source.json").exists():
            if key not in config["models"]:
                sys.exit(f"model {key!r} is neither in the registry nor given by --model-dir")
            from massact.sources import materialize_model

            log(f"materializing {key} into {d}")
            materialize_model(key, config["models"][key], d, args.resources / "downloads")
        out[key] = d
    return out


def corpus_table(args, config):
    from massact.io import read_parquet

    if args.corpus_file:
        return read_parquet(args.corpus_file), str(args.corpus_file)
    key = config["corpus"]
    path = args.resources / "corpus" / f"{key}.parquet"
    if not path.exists():
        from massact.sources import materialize_corpus

        log(f"materializing corpus {key} into {path}")
        materialize_corpus(key, config["corpora"][key], path, args.resources / "downloads", base=ROOT)
    return read_parquet(path), str(path)


def make_windows(args, config, key: str, mdir: Path) -> tuple[Path, dict]:
    """The token windows of one model, saved as .npy for every process to read."""
    import numpy as np

    wdir = args.out / "windows"
    wdir.mkdir(parents=True, exist_ok=True)
    stem = f"{key}_{args.windows}_n{args.nsamples}_T{args.seqlen}_s{args.seed}"
    npy, meta_path = wdir / f"{stem}.npy", wdir / f"{stem}.json"
    if npy.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("model_dir") == str(mdir):
            return npy, meta
    from transformers import AutoConfig, AutoTokenizer

    if args.windows == "text":
        from massact.sampling import draw_windows, windows_tensor

        corpus, where = corpus_table(args, config)
        tok = AutoTokenizer.from_pretrained(str(mdir))
        table = draw_windows(corpus, tok, args.nsamples, args.seqlen, args.seed)
        arr = windows_tensor(table).numpy().astype(np.int64)
        meta = {"kind": "text", "corpus": where, "doc_id": table.column("doc_id").to_pylist(),
                "start": table.column("start").to_pylist()}
    else:
        vocab = AutoConfig.from_pretrained(str(mdir)).vocab_size
        arr = np.random.default_rng(args.seed).integers(0, vocab, (args.nsamples, args.seqlen))
        meta = {"kind": "random token ids", "vocab": vocab}
    meta.update(model_dir=str(mdir), shape=list(arr.shape), seed=args.seed)
    np.save(npy, arr)
    meta_path.write_text(json.dumps(meta, indent=1))
    return npy, meta


def tl_interpreters(args) -> dict[str, str]:
    """{'tl3' | 'tl4': python} from --tl-python (and this interpreter, if it has TransformerLens)."""
    cands = list(args.tl_python)
    if not cands:
        cands = [p for p in os.environ.get("MASSACT_BENCH_TL_PYTHON", "").split(os.pathsep) if p]
        cands.append(sys.executable)
    found = {}
    for py in cands:
        try:
            v = subprocess.run([py, "-c", "from importlib.metadata import version; "
                                          "print(version('transformer-lens'))"],
                               capture_output=True, text=True, timeout=120).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            v = ""
        if not v:
            if py in args.tl_python:
                log(f"warning: {py} has no transformer-lens")
            continue
        stack = "tl3" if v.split(".")[0] in ("1", "2", "3") else "tl4"
        found.setdefault(stack, py)
        log(f"TransformerLens {v} in {py} → {stack}")
    return found


# ------------------------------------------------------------------------------ workers


def worker_env(args, malloc: bool, stack: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(MASSACT_NO_PROGRESS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error", OMP_NUM_THREADS=str(args.threads),
               PYTHONWARNINGS="ignore")
    if stack == "massact":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    if malloc:
        env.update(MALLOC_ENV)
    return env


def worker_cmd(python, stack, mdir, npy, threads, variants, extra=()):
    return [python, str(WORKER), "--stack", stack, "--model-dir", str(mdir), "--windows", str(npy),
            "--threads", str(threads), "--variants", ",".join(variants), *extra]


class Worker:
    def __init__(self, name, stack, python, env_name, variants, args, mdir, npy, logdir):
        self.name, self.stack, self.env_name, self.variants = name, stack, env_name, variants
        self.log = open(logdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            worker_cmd(python, stack, mdir, npy, args.threads, variants),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env=worker_env(args, env_name == "malloc", stack), cwd=ROOT)
        self.ready = None

    def wait_ready(self):
        line = self.proc.stdout.readline()
        self.ready = json.loads(line) if line else {"ready": False, "error": "exited at start-up"}
        if not self.ready.get("ready"):
            self.close()
        return self.ready

    def run(self, variant, window):
        self.proc.stdin.write(json.dumps({"op": "run", "variant": variant, "window": window}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"ok": False, "error": "worker died (see its log)"}

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
        self.log.close()


def worker_plan(args, key, tl) -> list[tuple[str, str, str, list[str]]]:
    """(name, stack, env, variants) of the processes that serve one model."""
    plan = [("massact", "massact", "default", list(args.variants))]
    hint = [v for v in args.malloc_variants if v in args.variants]
    if args.malloc and hint:
        plan.append(("massact@malloc", "massact", "malloc", hint))
    if key in args.tl_models or "all" in args.tl_models:
        for stack in sorted(tl):
            vs = [f"{stack}_{k}" for k in args.tl_variants]
            plan.append((stack, stack, "default", vs))
            hint = [v for v in vs if v.split("_", 1)[1] in args.malloc_variants]
            if args.malloc and hint:
                plan.append((f"{stack}@malloc", stack, "malloc", hint))
    return plan


def time_model(args, key, mdir, npy, tl, raw) -> None:
    """Interleaved timing of every variant of one model; appends to raw['calls']."""
    logdir = args.out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    workers = []
    for name, stack, env_name, variants in worker_plan(args, key, tl):
        python = sys.executable if stack == "massact" else tl[stack]
        workers.append(Worker(f"{key}.{name}", stack, python, env_name, variants, args, mdir, npy,
                              logdir))
    live = []
    for w in workers:
        r = w.wait_ready()
        raw["workers"].append({"model": key, "worker": w.name, "stack": w.stack, "env": w.env_name,
                               **{k: v for k, v in r.items() if k != "traceback"}})
        if r.get("ready"):
            live.append(w)
            log(f"{w.name}: ready (load {r['load_s']:.1f} s)")
        else:
            log(f"{w.name}: FAILED to start: {r.get('error')}")
    calls = [(w, v) for w in live for v in w.variants]
    n_rounds = args.warmup + args.reps
    try:
        for rep in range(n_rounds):
            shift = rep % len(calls)
            order = calls[shift:] + calls[:shift]
            window = rep % args.nsamples
            t_rep = time.time()
            for w, v in order:
                la = os.getloadavg()[0]
                r = w.run(v, window)
                raw["calls"].append({"model": key, "worker": w.name, "stack": w.stack,
                                     "env": w.env_name, "variant": v, "rep": rep,
                                     "warmup": rep < args.warmup, "window": window,
                                     "loadavg_1m": la, **r})
                if not r.get("ok"):
                    log(f"{w.name} {v}: ERROR {r.get('error')}")
            log(f"{key}: round {rep + 1}/{n_rounds} done in {time.time() - t_rep:.0f} s "
                f"(load {os.getloadavg()[0]:.2f})")
            save_json(raw, args.out / "stages_raw.json")
    finally:
        for w in workers:
            w.close()


# ------------------------------------------------------------------------------ memory


def memory_jobs(args, dirs, npys, tl) -> list[dict]:
    jobs = []
    for key in args.models:
        for name, stack, env_name, variants in worker_plan(args, key, tl):
            python = sys.executable if stack == "massact" else tl[stack]
            for v in variants:
                jobs.append({"model": key, "stack": stack, "env": env_name, "variant": v,
                             "cmd": worker_cmd(python, stack, dirs[key], npys[key], args.memory_threads,
                                               [v], ["--once", v]),
                             "environ": worker_env(args, env_name == "malloc", stack)})
    return jobs


def run_memory_job(job, logdir) -> dict:
    logf = logdir / f"mem.{job['model']}.{job['variant']}.{job['env']}.log"
    t0 = time.time()
    with open(logf, "w") as lf:
        p = subprocess.run(job["cmd"], stdout=subprocess.PIPE, stderr=lf, text=True,
                           env=job["environ"], cwd=ROOT)
    out = {k: job[k] for k in ("model", "stack", "env", "variant")}
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    try:
        r = json.loads(lines[-1])
        out.update({k: v for k, v in r.items() if k not in ("traceback", "variants")})
    except (IndexError, json.JSONDecodeError):
        out.update(ok=False, error=f"exit {p.returncode}, see {logf}")
    out["process_s"] = time.time() - t0
    log(f"memory {job['model']} {job['variant']} ({job['env']}): "
        f"peak {out.get('peak_run_mb') or out.get('ru_maxrss_mb')} MB")
    return out


def load_probe(python, mdir, env) -> dict:
    """Load a materialized model in a fresh process: load_model, and its two halves."""
    code = (
        "import json, time, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "from massact.sources import load_model\n"
        f"d = {str(mdir)!r}\n"
        "t = time.perf_counter(); m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, "
        "use_safetensors=True); a = time.perf_counter() - t\n"
        "t = time.perf_counter(); AutoTokenizer.from_pretrained(d); b = time.perf_counter() - t\n"
        "del m\n"
        "t = time.perf_counter(); load_model(d); c = time.perf_counter() - t\n"
        "print(json.dumps({'weights_s': a, 'tokenizer_s': b, 'load_model_s_second': c}))\n")
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": p.stderr[-2000:]}


# ----------------------------------------------------------------------------- summary


def q(xs, p):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    i = (len(xs) - 1) * p
    lo = int(i)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (i - lo)


def spread(xs) -> dict:
    return {"median": statistics.median(xs), "q1": q(xs, 0.25), "q3": q(xs, 0.75),
            "min": min(xs), "max": max(xs), "n": len(xs)}


def measured(raw, key, field="wall") -> dict[str, dict[int, float]]:
    """{variant@env: {rep: wall (or cpu)}} over measured (non-warm-up) calls."""
    out: dict[str, dict[int, float]] = {}
    for c in raw["calls"]:
        if c["model"] != key or c["warmup"] or not c.get("ok"):
            continue
        name = c["variant"] + ("@malloc" if c["env"] == "malloc" else "")
        out.setdefault(name, {})[c["rep"]] = c[field]
    return out


def paired(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """Spread of a[rep] / b[rep] over the repetitions both have."""
    reps = sorted(set(a) & set(b))
    return spread([a[r] / b[r] for r in reps]) if reps else None


def summarize(args, raw, mem, dirs, loads) -> dict:
    seqlen = args.seqlen
    out = {"seqlen": seqlen, "limit": LIMIT, "models": {}}
    for key in args.models:
        walls = measured(raw, key)
        cpus = measured(raw, key, "cpu")
        size = sum(p.stat().st_size for p in dirs[key].glob("*.safetensors"))
        variants = {}
        order = list(DESCRIPTIONS)
        for name, reps in sorted(walls.items(), key=lambda kv: (
                "@" in kv[0], order.index(kv[0].split("@")[0]) if kv[0].split("@")[0] in order else 99)):
            base, _, env = name.partition("@")
            limit = walls.get(LIMIT + ("@" + env if env else ""))
            s = spread(list(reps.values()))
            tput = {k: seqlen / s[k2] for k, k2 in (("median", "median"), ("q1", "q3"), ("q3", "q1"),
                                                      ("min", "max"), ("max", "min"))}
            cost = paired(reps, limit) if limit else None
            climit = cpus.get(LIMIT + ("@" + env if env else ""))
            ccost = paired(cpus[name], climit) if climit else None
            entry = {"description": DESCRIPTIONS.get(base, base), "env": env or "default",
                     "wall_s": s, "tokens_per_s": tput,
                     "cost_vs_limit": cost,  # wall / limit wall, paired per repetition
                     "throughput_vs_limit": (1 / cost["median"]) if cost else None,
                     "cpu_s": spread(list(cpus[name].values())),
                     "cpu_cost_vs_limit": ccost}
            if env:
                entry["malloc_speedup"] = (lambda p: p and {**p, "note": "default wall / hinted wall"})(
                    paired(walls.get(base, {}), reps))
            m = [r for r in mem if r["model"] == key and r["variant"] == base
                 and r["env"] == (env or "default") and r.get("ready")]
            if m:
                r = m[0]
                peak = r.get("peak_run_mb") or r.get("ru_maxrss_mb")
                entry["memory"] = {"rss_loaded_mb": r["rss_loaded_mb"], "peak_run_mb": peak,
                                   "delta_mb": peak - r["rss_loaded_mb"],
                                   "process_peak_mb": r["ru_maxrss_mb"], "load_s": r["load_s"],
                                   "rss_after_load_untouched_mb": r.get("rss_after_load_untouched_mb"),
                                   "touch_s": r.get("touch_s"), "threads": r.get("threads")}
            variants[name] = entry
        loads_m = [r["load_s"] for r in mem if r["model"] == key and r["stack"] == "massact"
                   and r.get("ready")]
        model = {"model_dir": str(dirs[key]), "safetensors_bytes": size, "variants": variants,
                 "load": {"load_model_s_fresh_process": spread(loads_m) if loads_m else None,
                          "probe": loads.get(key)}}
        model["targets"] = targets(model, walls, cpus, size)
        out["models"][key] = model
    return out


def targets(model, walls, cpus, size) -> list[dict]:
    v = model["variants"]
    res = []
    last = {}

    def add(name, value, goal, ok, detail):
        res.append({"target": name, "value": value, "goal": goal,
                    "met": None if ok is None else bool(ok), "detail": detail,
                    "value_cpu_time": last.pop("cpu", None),
                    "value_ratio_of_medians": last.pop("rom", None)})

    def cost(a, b):
        p = paired(walls.get(a, {}), walls.get(b, {}))
        pc = paired(cpus.get(a, {}), cpus.get(b, {}))
        inv = "throughput" in last.get("kind", "")
        last["cpu"] = (1 / pc["median"] if inv else pc["median"]) if pc else None
        if walls.get(a) and walls.get(b):
            rom = statistics.median(walls[a].values()) / statistics.median(walls[b].values())
            last["rom"] = 1 / rom if inv else rom
        return p["median"] if p else None

    def tput(a, b):
        last["kind"] = "throughput"
        c = cost(a, b)
        last.pop("kind")
        return c

    c = tput("extract", LIMIT)
    add("extraction throughput ≥ 0.85 × bare SDPA forward", c and 1 / c, "≥ 0.85",
        c and 1 / c >= 0.85, "throughput ratio, paired per repetition")
    c = cost("heads", LIMIT)
    add("head scoring cost ≤ 1.3 × bare SDPA forward", c, "≤ 1.3", c and c <= 1.3,
        "wall ratio, paired")
    c = cost("prune", "extract")
    add("pruning run cost ≤ 1.1 × extraction (analyse heads=False)", c, "≤ 1.1", c and c <= 1.1,
        "the pruning run also scores heads; see next line for like-for-like")
    c = cost("prune", "extract_heads")
    add("pruning run cost vs extraction+scoring (info)", c, "≤ 1.1", c and c <= 1.1,
        "same analyse(heads=True) pass with the ablation hooks")
    full = {n: v[n]["wall_s"]["median"] for n in ("tl3_cache_full", "tl4_cache_full") if n in v}
    if full:
        fastest = min(full, key=full.get)
        c = tput("extract_heads", fastest)
        add(f"project ≥ 1.5 × throughput of TL's fastest full cache ({fastest})", c and 1 / c,
            "≥ 1.5", c and 1 / c >= 1.5, "extract_heads vs run_with_cache, paired (separate processes)")
        pm, tm = v.get("extract_heads", {}).get("memory"), v[fastest].get("memory")
        if pm and tm:
            r = pm["delta_mb"] / tm["delta_mb"] if tm["delta_mb"] > 0 else None
            add(f"project peak memory ≤ 1/5 of {fastest} (above the loaded model)", r, "≤ 0.2",
                r is not None and r <= 0.2,
                f"Δpeak {pm['delta_mb']:.0f} MB vs {tm['delta_mb']:.0f} MB; whole-process peaks "
                f"{pm['peak_run_mb']:.0f} vs {tm['peak_run_mb']:.0f} MB "
                f"(ratio {pm['peak_run_mb'] / tm['peak_run_mb']:.2f})")
    if "tl3_cache_full" in v:
        c = tput("extract_heads", "tl3_cache_full")
        add("project ≥ 3 × throughput of classic HookedTransformer run_with_cache", c and 1 / c,
            "≥ 3", c and 1 / c >= 3, "extract_heads vs tl3_cache_full, paired (separate processes)")
    hinted = {n: v[n + "@malloc"]["wall_s"]["median"] for n in ("tl3_cache_full", "tl4_cache_full")
              if n + "@malloc" in v}
    if hinted and "extract_heads@malloc" in v:
        fastest = min(hinted, key=hinted.get)
        c = tput("extract_heads@malloc", fastest + "@malloc")
        add(f"… with the allocator hint on both sides: ≥ 1.5 × {fastest}", c and 1 / c, "≥ 1.5",
            c and 1 / c >= 1.5, "extract_heads@malloc vs run_with_cache@malloc, paired")
        pm, tm = v["extract_heads@malloc"].get("memory"), v[fastest + "@malloc"].get("memory")
        if pm and tm and tm["delta_mb"] > 0:
            r = pm["delta_mb"] / tm["delta_mb"]
            add(f"… with the allocator hint: peak memory ≤ 1/5 of {fastest}", r, "≤ 0.2", r <= 0.2,
                f"Δpeak {pm['delta_mb']:.0f} MB vs {tm['delta_mb']:.0f} MB; whole-process peaks "
                f"{pm['peak_run_mb']:.0f} vs {tm['peak_run_mb']:.0f} MB")
        if "tl3_cache_full" in hinted:
            c = tput("extract_heads@malloc", "tl3_cache_full@malloc")
            add("… with the allocator hint: ≥ 3 × classic HookedTransformer run_with_cache",
                c and 1 / c, "≥ 3", c and 1 / c >= 3, "paired, both hinted")
    for name in ("extract", "extract_heads"):
        m = v.get(name, {}).get("memory")
        if m:
            limit_mb = (size + 1.5e9) / 2**20
            add(f"peak RSS of {name} ≤ float32 model size + 1.5 GB", m["peak_run_mb"],
                f"≤ {limit_mb:.0f} MiB", m["peak_run_mb"] <= limit_mb,
                f"model files {size / 2**20:.0f} MiB; whole-process peak incl. loading "
                f"{m['process_peak_mb']:.0f} MiB")
    ld = model["load"]["load_model_s_fresh_process"]
    if ld:
        pr = model["load"]["probe"] or {}
        touch = [e["memory"]["touch_s"] for e in v.values()
                 if e.get("memory") and e["memory"].get("touch_s") is not None
                 and not e["description"].startswith("TL")]
        tt = statistics.median(touch) if touch else float("nan")
        add("load time of a materialized model < 2 s", ld["median"], "< 2 s", ld["median"] < 2,
            f"load_model in a fresh process (imports excluded): weights "
            f"{pr.get('weights_s', float('nan')):.2f} s + tokenizer {pr.get('tokenizer_s', float('nan')):.2f} s; "
            f"the weights stay memory-mapped: reading them all once more takes {tt:.2f} s")
    return res


def markdown(summary, raw_meta) -> str:
    L = [f"Sequence length {summary['seqlen']}, float32, batch 1; the limit is `{LIMIT}` "
         "(bare SDPA forward of the decoder stack).", ""]
    for key, m in summary["models"].items():
        L += [f"### {key}", "",
              "| variant | what | tokens/s median [IQR] | × limit (throughput, paired) | "
              "× limit (CPU time) | peak RSS MiB | Δ over loaded MiB |",
              "|---|---|---|---|---|---|---|"]
        for name, e in m["variants"].items():
            t = e["tokens_per_s"]
            cv = e["cost_vs_limit"]
            ratio = (f"{1 / cv['median']:.2f} [{1 / cv['max']:.2f}–{1 / cv['min']:.2f}]"
                     if cv else "–")
            cc = e.get("cpu_cost_vs_limit")
            cratio = f"{1 / cc['median']:.2f}" if cc else "–"
            mm = e.get("memory")
            memcols = f"{mm['peak_run_mb']:.0f} | {mm['delta_mb']:.0f}" if mm else "– | –"
            L.append(f"| `{name}` | {e['description']} | {t['median']:.0f} "
                     f"[{t['q1']:.0f}–{t['q3']:.0f}] | {ratio} | {cratio} | {memcols} |")
        L += ["", "| target | measured (paired median) | ratio of medians | by CPU time | goal | met "
                  "| detail |", "|---|---|---|---|---|---|---|"]

        def f2(x):
            return "–" if x is None else f"{x:.2f}"

        for t in m["targets"]:
            met = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
            L.append(f"| {t['target']} | {f2(t['value'])} | {f2(t.get('value_ratio_of_medians'))} | "
                     f"{f2(t.get('value_cpu_time'))} | {t['goal']} | {met} | {t['detail']} |")
        mal = [(n, e["malloc_speedup"]) for n, e in m["variants"].items() if e.get("malloc_speedup")]
        if mal:
            L += ["", "Allocator hint (" + ", ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())
                  + "): default wall / hinted wall, paired (> 1: the hint pays)", ""]
            for n, p in mal:
                base = n.split("@")[0]
                dm = (m["variants"].get(base, {}).get("memory"), m["variants"][n].get("memory"))
                mem = (f"; peak RSS {dm[0]['peak_run_mb']:.0f} → {dm[1]['peak_run_mb']:.0f} MiB"
                       if all(dm) else "")
                L.append(f"- `{base}`: {p['median']:.3f} [{p['min']:.3f}–{p['max']:.3f}]{mem}")
        L.append("")
    L.append(f"Load average during the timing (1 min): median {raw_meta['loadavg_median']:.2f}, "
             f"max {raw_meta['loadavg_max']:.2f}.")
    return "\n".join(L) + "\n"


def figure(summary, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(summary["models"])
    n = max(len(v["variants"]) for v in summary["models"].values()) if models else 1
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 0.38 * n + 1.8),
                             squeeze=False)
    colors = {"bare": "#888888", "project": "#1f77b4", "tl3": "#ff7f0e", "tl4": "#d62728"}
    for ax, key in zip(axes[0], models):
        vs = summary["models"][key]["variants"]
        names = list(vs)
        y = range(len(names))
        med = [vs[k]["tokens_per_s"]["median"] for k in names]
        lo = [vs[k]["tokens_per_s"]["median"] - vs[k]["tokens_per_s"]["q1"] for k in names]
        hi = [vs[k]["tokens_per_s"]["q3"] - vs[k]["tokens_per_s"]["median"] for k in names]

        def group(k):
            b = k.split("@")[0]
            return ("tl3" if b.startswith("tl3") else "tl4" if b.startswith("tl4")
                    else "bare" if b in ("base_sdpa", "lm_sdpa", "base_eager") else "project")

        bars = ax.barh(list(y), med, xerr=[lo, hi], color=[colors[group(k)] for k in names],
                       capsize=2)
        for b, k in zip(bars, names):
            if "@malloc" in k:
                b.set_hatch("//")
                b.set_alpha(0.6)
        if LIMIT in vs:
            x = vs[LIMIT]["tokens_per_s"]["median"]
            ax.axvline(x, color="k", ls="--", lw=1)
            ax.text(x, len(names) - 0.4, " limit", va="bottom", fontsize=8)
        ax.set_yticks(list(y))
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"tokens/s (seqlen {summary['seqlen']}, median, IQR)")
        ax.set_title(key)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=c, label=l) for l, c in
                        (("bare HF forward", colors["bare"]), ("massact", colors["project"]),
                         ("TransformerLens 3.x", colors["tl3"]), ("TransformerLens 4.x", colors["tl4"]))]
               + [Patch(facecolor="white", edgecolor="k", hatch="//", label="glibc malloc hint")],
               loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


# -------------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="registry keys")
    ap.add_argument("--model-dir", action="append", default=[], metavar="KEY=DIR",
                    help="use this materialized directory for KEY (default resources/models/KEY, "
                         "materialized from the registry when missing)")
    ap.add_argument("--configfile", action="append", default=[],
                    help="merged over config/config.yaml (the registry, the corpus)")
    ap.add_argument("--resources", type=Path, default=ROOT / "resources")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--seqlen", type=int, default=1024)
    ap.add_argument("--nsamples", type=int, default=4, help="distinct windows (cycled over rounds)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up rounds (not measured)")
    ap.add_argument("--reps", type=int, default=5, help="measured rounds (one window per round)")
    ap.add_argument("--quick", action="store_true",
                    help="2 windows, 1 warm-up + 2 rounds, no allocator-hint processes")
    ap.add_argument("--windows", choices=["text", "random"], default="text",
                    help="text: seeded windows of the config's corpus (draw_windows); random: token ids")
    ap.add_argument("--corpus-file", type=Path, help="a materialized corpus .parquet to draw from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--variants", nargs="+", default=PROJECT_VARIANTS,
                    help=f"project/bare variants ({', '.join(DESCRIPTIONS)})")
    ap.add_argument("--tl-python", action="append", default=[],
                    help="an interpreter with transformer-lens (3.x: HookedTransformer, 4.x: "
                         "TransformerBridge); repeatable. Default: $MASSACT_BENCH_TL_PYTHON, this one")
    ap.add_argument("--tl-models", nargs="+", default=["smollm2-135m", "random-gpt2-small"],
                    help="models TransformerLens runs on ('all' for every one)")
    ap.add_argument("--tl-variants", nargs="+", default=TL_KINDS,
                    help="cache_full cache_resid ablate forward")
    ap.add_argument("--no-malloc", dest="malloc", action="store_false",
                    help="skip the allocator-hint processes")
    ap.add_argument("--malloc-variants", nargs="+",
                    default=["base_sdpa", "extract_heads", "cache_full"],
                    help="variants also run under the allocator hint (TL: kind names)")
    ap.add_argument("--skip-timing", action="store_true", help="reuse stages_raw.json")
    ap.add_argument("--skip-memory", action="store_true", help="reuse stages_memory.json if any")
    ap.add_argument("--memory-jobs", type=int, default=len(os.sched_getaffinity(0)),
                    help="fresh memory processes run at once")
    ap.add_argument("--memory-threads", type=int, default=1, help="torch threads of each")
    args = ap.parse_args(argv)
    if args.quick:
        args.nsamples, args.warmup, args.reps, args.malloc = 2, 1, 2, False
    args.out = args.out.resolve()
    args.resources = args.resources.resolve()
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    config = load_config(args.configfile)
    tl = tl_interpreters(args)
    if not tl:
        log("TransformerLens not found: its variants are skipped (see --tl-python)")
    dirs = model_dirs(args, config)
    npys, wmeta = {}, {}
    for key in args.models:
        npys[key], wmeta[key] = make_windows(args, config, key, dirs[key])
        log(f"{key}: {dirs[key]} windows {wmeta[key]['kind']} {wmeta[key]['shape']}")

    raw_path = args.out / "stages_raw.json"
    if args.skip_timing and raw_path.exists():
        raw = json.loads(raw_path.read_text())
    else:
        raw = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
               "malloc_env": MALLOC_ENV, "windows": wmeta,
               "tl": {k: v for k, v in tl.items()}, "workers": [], "calls": []}
        for key in args.models:
            log(f"timing {key}")
            time_model(args, key, dirs[key], npys[key], tl, raw)
        raw["timing_s"] = time.time() - t_start
        save_json(raw, raw_path)

    mem_path = args.out / "stages_memory.json"
    if args.skip_memory:
        mem = json.loads(mem_path.read_text())["runs"] if mem_path.exists() else []
        loads = json.loads(mem_path.read_text()).get("load_probe", {}) if mem_path.exists() else {}
    else:
        t_mem = time.time()
        logdir = args.out / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        jobs = memory_jobs(args, dirs, npys, tl)
        with ThreadPoolExecutor(max(1, args.memory_jobs)) as pool:
            mem = list(pool.map(lambda j: run_memory_job(j, logdir), jobs))
        loads = {key: load_probe(sys.executable, dirs[key], worker_env(args, False, "massact"))
                 for key in args.models}
        save_json({"runs": mem, "load_probe": loads, "memory_threads": args.memory_threads,
                   "memory_jobs": args.memory_jobs, "seconds": time.time() - t_mem,
                   "loadavg_end": os.getloadavg()}, mem_path)

    summary = summarize(args, raw, mem, dirs, loads)
    las = [c["loadavg_1m"] for c in raw["calls"]] or [0.0]
    summary["machine"] = raw["machine"]
    summary["loadavg_1m_during_timing"] = {"median": statistics.median(las), "max": max(las)}
    summary["windows"] = wmeta
    summary["tl"] = raw.get("tl")
    summary["timing_phase_s"] = raw.get("timing_s")
    summary["this_invocation_s"] = time.time() - t_start
    save_json(summary, args.out / "stages_summary.json")
    (args.out / "stages.md").write_text(
        markdown(summary, {"loadavg_median": statistics.median(las), "loadavg_max": max(las)}))
    figure(summary, args.out / "stages.png")
    log(f"done in {time.time() - t_start:.0f} s: {args.out}/stages_summary.json, stages.md, stages.png")


if __name__ == "__main__":
    main()
