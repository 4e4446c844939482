"""The real workflow, end to end, on config/test.yaml (tiny random models, local corpus)."""

import re
from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow

MODELS = ["random-gpt2", "random-llama", "random-gemma3"]
EXPERIMENTS = ["top", "bottom", "random-0", "random-1", "pair", "pair_frozen"]


def targets(model):
    paths = [
        "samples.parquet", "activations/layer_stats.parquet", "activations/head_means.parquet",
        "activations/prompt_features.parquet", "figures/layerwise.png",
        "figures/feature3d_layer1.png", "figures/feature3d_layer2.png",
        "tables/layerwise.csv", "tables/layerwise.md", "tables/layerwise.html", "tables/massive.csv",
        # heads (config/test.yaml also scores the massive-token target)
        "heads/per_sample.parquet", "heads/selection.yaml",
        *(f"{p}{t}.{e}" for t in ("", "_massive") for p, e in (
            ("heads/scores", "parquet"), ("figures/head_scores", "png"),
            ("figures/head_ranking", "png"), ("tables/heads_top", "csv"),
            ("tables/heads_top", "md"), ("tables/heads_bottom", "csv"),
            ("tables/heads_bottom", "md"), ("tables/heads_top", "html"),
            ("tables/heads_bottom", "html"))),
        # pruning
        "tables/pruning_summary.csv", "tables/pruning_summary.md", "tables/pruning_summary.html",
        "figures/pruning_summary.png",
        *(f"figures/feature3d_{k}_layer{l}.png" for k in ("compare", "difference") for l in (1, 2)),
        *(f"pruning/{e}/{f}" for e in EXPERIMENTS for f in (
            "heads.yaml", "layer_stats.parquet", "head_scores.parquet", "changes.parquet")),
        *(f"figures/pruning_{e}.png" for e in EXPERIMENTS),
        # components, perplexity, intervention, cumulative pruning
        "components/changes.parquet", "perplexity/components.parquet",
        *(f"perplexity/pruning_{e}.parquet" for e in EXPERIMENTS),
        "perplexity/baseline.parquet", "heldout.parquet", "sweeps/windows.parquet",
        "sweeps/baseline_stats.parquet", "figures/components.png", "tables/components.md",
        "tables/components.html", "tables/intervention.html",
        "tables/components.csv", "intervention/2_zero.parquet", "intervention/2_mean.parquet",
        "intervention/every_zero.parquet", "intervention/every_mean.parquet",
        "tables/intervention.md", "tables/intervention.csv", "cumulative/pruning.parquet",
        "figures/cumulative_pruning.png",
    ]
    return [f"results/{model}/{p}" for p in paths]


# the tiny random models have 4 layers
COMPONENTS = ["attn-all", "mlp-all", *(f"{k}-{l}" for k in ("attn", "mlp") for l in range(4))]
ACROSS = ["results/figures/models_layerwise.png", "results/tables/models.md",
          "results/tables/models.csv", "results/tables/models.html", "results/config.yaml"]


def planned(cwd, *args) -> dict[str, int]:
    """Rules a dry run would execute, with their job counts."""
    out = snakemake(cwd, "-n", "--quiet", "rules", *args).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def variant(wf, name, mutate):
    cfg = yaml.safe_load((wf / "config/test.yaml").read_text())
    mutate(cfg)
    (wf / "config" / name).write_text(yaml.safe_dump(cfg))
    return f"config/{name}"


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("wf"))
    snakemake(wf, "--configfile", "config/test.yaml")
    return wf


def test_every_target_is_built(wf):
    for m in MODELS:
        for t in targets(m):
            assert (wf / t).stat().st_size > 0, t
        assert (wf / f"resources/models/{m}/source.json").exists()
    for t in ACROSS:
        assert (wf / t).stat().st_size > 0, t
    assert (wf / "resources/corpus/test-local.parquet").exists()
    for log in (wf / "results/logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log


def test_every_job_log_says_what_the_job_wrote(wf):
    logs = sorted((wf / "results/logs").rglob("*.log"))
    assert len(logs) > 100
    for log in logs:
        text = log.read_text()
        assert "done: wrote " in text, log


def test_second_run_has_nothing_to_do(wf):
    assert planned(wf, "--configfile", "config/test.yaml") == {}


def test_plot_option_reruns_only_figures(wf):
    cfg = variant(wf, "dpi.yaml", lambda c: c["figures"].update(dpi=61))
    assert planned(wf, "--configfile", cfg) == {
        "layerwise_figure": 3, "feature3d_figure": 6, "head_figures": 6, "pruning_figures": 3,
        "pruning_overview": 3, "feature3d_compare": 6, "components_figure": 3,
        "cumulative_figure": 3, "models_layerwise": 1, "resolved_config": 1, "all": 1}


def test_threshold_reruns_only_the_massive_table(wf):
    cfg = variant(wf, "thr.yaml", lambda c: c["massive"].update(ratio_threshold=7))
    # the massive-token head scores depend on the thresholds too
    assert planned(wf, "--configfile", cfg) == {
        "massive_table": 3, "score_heads_massive": 3, "head_scores": 3, "head_figures": 3,
        "head_tables": 3, "intervention": 3, "intervention_every_layer": 3, "intervention_table": 3,
        "models_table": 1, "resolved_config": 1,
        "all": 1}


def test_nsamples_reruns_sampling_and_what_follows(wf):
    cfg = variant(wf, "n.yaml", lambda c: c["sampling"].update(nsamples=3))
    assert planned(wf, "--configfile", cfg) == {
        "sample_windows": 3, "extract_activations": 3, "layerwise_figure": 3,
        "layerwise_table": 3, "massive_table": 3, "score_heads_massive": 3, "head_scores": 6,
        "head_figures": 6, "head_tables": 6, "head_selection": 3, "prune_heads": 3,
        "pruning_figures": 3, "pruning_summary": 3, "pruning_overview": 3, "prune_prompt": 6,
        "feature3d_compare": 6, "sample_heldout": 3, "perplexity_baseline": 3,
        "sweep_baseline": 3, **COMPONENT_JOBS, "components_figure": 3, "components_table": 3,
        "intervention": 3, "intervention_every_layer": 3, "intervention_table": 3,
        "cumulative_pruning": 3, "cumulative_figure": 3, "models_layerwise": 1, "models_table": 1, "resolved_config": 1,
        "all": 1}


COMPONENT_JOBS = {"component_ablations": 3}


def test_component_layers_rerun_only_components(wf):
    cfg = variant(wf, "comp.yaml", lambda c: c.update(components={"layers": [0, 3]}))
    assert planned(wf, "--configfile", cfg) == {
        **COMPONENT_JOBS, "components_figure": 3, "components_table": 3, "models_table": 1,
        "resolved_config": 1, "all": 1}


def test_a_head_set_reruns_only_the_pruning_stage(wf):
    """A new tested set or new random seeds re-run each model's pruning job (one job runs
    every experiment, from a shared unablated pass) and what reads it, nothing else."""
    stage = {"head_selection": 3, "prune_heads": 3, "pruning_figures": 3,
             "pruning_summary": 3, "pruning_overview": 3, "models_table": 1,
             "resolved_config": 1, "all": 1}

    def change(c):
        c["heads"]["sets"]["pair"] = {"heads": [[0, 0], [3, 1]]}
    assert planned(wf, "--configfile", variant(wf, "pair.yaml", change)) == stage
    cfg = variant(wf, "seeds.yaml", lambda c: c["heads"]["sets"]["random"].update(seeds=[0, 2]))
    assert planned(wf, "--configfile", cfg) == stage


def test_explicit_head_outside_model_is_a_config_error(wf):
    def change(c):
        c["heads"]["sets"]["pair"] = {"heads": [[1, 0], [2, 9]]}
    proc = snakemake(wf, "-n", "--configfile", variant(wf, "out.yaml", change), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "heads.sets.pair.heads[1]" in out and "outside" in out


def test_pruning_outputs_agree(wf):
    """The pruned heads are the selected ones; the changes match the two stats files."""
    import pyarrow.parquet as pq

    from massact.analysis import changes

    root = wf / "results/random-llama"
    sel = yaml.safe_load((root / "heads/selection.yaml").read_text())
    for e in EXPERIMENTS:
        run = yaml.safe_load((root / f"pruning/{e}/heads.yaml").read_text())
        assert run["heads"] == sel[e]
    assert sel["pair"] == [[1, 0], [2, 3]]
    # a set's own post_norm: Gemma-3 prunes pair both ways, and the frozen norm changes the
    # result; Llama has no norm after the attention output, so both runs are one run
    for model, norms, same in (("random-gemma3", ("live", "frozen"), False),
                               ("random-llama", ("none", "none"), True)):
        r = wf / "results" / model / "pruning"
        got = tuple(yaml.safe_load((r / f"{e}/heads.yaml").read_text())["post_norm"]
                    for e in ("pair", "pair_frozen"))
        assert got == norms, model
        a, b = ((r / f"{e}/layer_stats.parquet").read_bytes() for e in ("pair", "pair_frozen"))
        assert (a == b) == same, model
    got = pq.read_table(root / "pruning/top/changes.parquet").to_pandas()
    base = pq.read_table(root / "activations/layer_stats.parquet")
    pruned = pq.read_table(root / "pruning/top/layer_stats.parquet")
    ref = changes(base, pruned, n_boot=200, seed=0)
    assert list(got.columns) == list(ref.columns)
    for c in ref.columns:
        assert (got[c].to_numpy() == ref[c].to_numpy()).all(), c


def test_single_figure_by_path_and_same_bytes(wf, tmp_path):
    """A fresh checkout builds one figure by path; its Parquet inputs are byte-identical."""
    other = copy_workflow(tmp_path)
    target = "results/random-gemma3/figures/layerwise.png"
    snakemake(other, target, "--configfile", "config/test.yaml")
    assert (other / target).exists()
    assert not (other / "results/random-gpt2").exists()  # nothing else was built
    for f in ("samples.parquet", "activations/layer_stats.parquet"):
        a = (wf / "results/random-gemma3" / f).read_bytes()
        assert a == (other / "results/random-gemma3" / f).read_bytes(), f
    assert (wf / target).read_bytes() == (other / target).read_bytes()


def test_bad_config_stops_before_any_job(wf):
    cfg = variant(wf, "bad.yaml", lambda c: c["sampling"].update(nsamples=0))
    before = sorted((p, p.stat().st_mtime_ns) for p in (wf / "results").rglob("*"))
    proc = snakemake(wf, "--configfile", cfg, check=False)
    assert proc.returncode != 0
    assert "sampling.nsamples" in proc.stderr + proc.stdout
    assert sorted((p, p.stat().st_mtime_ns) for p in (wf / "results").rglob("*")) == before


def test_unknown_model_names_the_allowed_values(wf):
    cfg = variant(wf, "unk.yaml", lambda c: c.update(run=["random-gpt3"]))
    proc = snakemake(wf, "-n", "--configfile", cfg, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "run[0]" in out and "random-gpt2" in out


def test_python_api_gives_the_rule_numbers(wf):
    """A notebook user gets the same head scores and statistics as the rules wrote."""
    import pyarrow.parquet as pq

    import massact

    model, tok = massact.load("random-gemma3", root=wf)
    root = wf / "results/random-gemma3"
    windows = massact.windows_tensor(massact.read_parquet(root / "samples.parquet"))
    per_sample = massact.head_scores(model, windows)
    assert per_sample.equals(pq.read_table(root / "heads/per_sample.parquet"))
    summary = massact.head_summary(per_sample, n_boot=200, seed=0)
    rule = pq.read_table(root / "heads/scores.parquet").to_pandas()
    for c in ("score", "std", "ci_low", "ci_high", "rank", "rank_in_layer"):
        assert (summary[c].to_numpy() == rule[c].to_numpy()).all(), c
    stats = massact.layer_stats(model, tok, windows, k=5)
    assert stats.equals(pq.read_table(root / "activations/layer_stats.parquet"))


def test_each_pruning_experiment_equals_its_own_full_pass(wf):
    """The one pruning job per model runs every experiment from a shared unablated pass,
    each from its lowest pruned block: every experiment's files equal a full pass of the
    model without its heads, run here through the library (statistics, head scores and
    perplexity, bit for bit; the right file for the right experiment)."""
    import pyarrow.parquet as pq

    import massact
    from massact.ablation import ablate_heads
    from massact.perplexity import run_ppl
    from massact.runtime import batch_size

    cfg = yaml.safe_load((wf / "results/config.yaml").read_text())
    model, tok = massact.load("random-gemma3", root=wf)
    root = wf / "results/random-gemma3"
    windows = massact.windows_tensor(massact.read_parquet(root / "samples.parquet"))
    heldout = massact.windows_tensor(massact.read_parquet(root / "heldout.parquet"))
    bt = cfg["batch_tokens"]
    for e in ("pair", "pair_frozen", "top"):  # pair starts at block 1
        run = yaml.safe_load((root / f"pruning/{e}/heads.yaml").read_text())
        assert run["experiment"] == e
        norm = "frozen" if run["post_norm"] == "frozen" else "live"
        with ablate_heads(model, run["heads"], post_norm=norm):
            out = massact.analyse(model, tok, windows, k=cfg["extraction"]["topk"],
                                  batch_size=batch_size(bt, windows))
            ppl = run_ppl(model, heldout, f"pruning {e}", cfg["heads"]["bootstrap"],
                          cfg["heads"]["seed"], batch_size=batch_size(bt, heldout))
        assert out["layer_stats"].equals(pq.read_table(root / f"pruning/{e}/layer_stats.parquet")), e
        assert out["head_scores"].equals(pq.read_table(root / f"pruning/{e}/head_scores.parquet")), e
        assert ppl.equals(pq.read_table(root / f"perplexity/pruning_{e}.parquet")), e


def test_interrupted_run_resumes_with_the_same_bytes(wf, tmp_path):
    """Ctrl-C in the middle of a run, run again: the outputs equal an uninterrupted run's."""
    import signal
    import subprocess
    import sys
    import time

    other = copy_workflow(tmp_path)
    target = "results/random-llama/pruning/top/changes.parquet"
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", target, "--configfile",
           "config/test.yaml"]
    # as from a terminal, whatever started the tests (a background job ignores SIGINT,
    # and its children inherit that)
    proc = subprocess.Popen(cmd, cwd=other, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    marker = other / "results/random-llama/samples.parquet"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    # Ctrl-C, again each second until it stops: Snakemake drops an interrupt that arrives
    # while it writes a log line (snakemake/logging.py), as a user who presses once may see
    for _ in range(120):
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            pass
    assert not (other / target).exists()
    snakemake(other, target, "--configfile", "config/test.yaml")
    files = sorted(p.relative_to(other) for p in (other / "results/random-llama").rglob("*.parquet"))
    assert len(files) >= 6
    for f in files:
        assert (other / f).read_bytes() == (wf / f).read_bytes(), f


def test_killed_run_unlocks_and_resumes_with_the_same_bytes(wf, tmp_path):
    """SIGKILL to the whole run in the middle of a job (a crash, an OOM kill, a node lost):
    the rerun is refused with a pointer to --unlock; after it, the same command finishes
    and every output equals an uninterrupted run's, byte for byte."""
    import os
    import signal
    import subprocess
    import sys
    import time

    other = copy_workflow(tmp_path)
    target = "results/random-gemma3/pruning/top/changes.parquet"
    args = [target, "--configfile", "config/test.yaml"]
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                            cwd=other, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = other / "results/random-gemma3/samples.parquet"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (other / target).exists()
    locked = snakemake(other, *args, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(other, "--unlock", *args)
    snakemake(other, *args)
    files = sorted(p.relative_to(other) for p in (other / "results/random-gemma3").rglob("*")
                   if p.is_file() and p.suffix in (".parquet", ".yaml"))
    assert len(files) >= 8
    for f in files:
        assert (other / f).read_bytes() == (wf / f).read_bytes(), f


def test_moved_project_has_nothing_to_do(wf, tmp_path):
    """A finished project copied elsewhere (timestamps kept, as cp -a does) is up to date:
    rules name their inputs, library modules included, by relative path."""
    import shutil

    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(wf, moved, symlinks=True)
    assert planned(moved, "--configfile", "config/test.yaml") == {}


def test_baseline_perplexity_is_independent_cross_entropy(wf):
    """The rule's perplexity equals HF's own loss on the held-out windows, and those
    windows share no text with the analysis samples."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from massact.sources import load_model

    for m in MODELS:
        root = wf / "results" / m
        held = pq.read_table(root / "heldout.parquet")
        ids = torch.tensor(held.column("input_ids").to_pylist())
        model, _ = load_model(wf / "resources/models" / m)
        with torch.no_grad():
            losses = [float(model(ids[i:i + 1], labels=ids[i:i + 1]).loss) for i in range(len(ids))]
        got = pq.read_table(root / "perplexity/baseline.parquet").to_pylist()[0]
        assert got["ppl"] == pytest.approx(float(np.exp(np.mean(losses))), rel=1e-5)
        samples = pq.read_table(root / "samples.parquet")
        key = lambda t: set(zip(t.column("doc_id").to_pylist(), t.column("start").to_pylist()))  # noqa: E731
        assert not key(held) & key(samples)


def report_of(wf) -> Path:
    path = wf / "results/report.html"
    if not path.exists():
        snakemake(wf, "--configfile", "config/test.yaml", "--report", "results/report.html")
    return path


def test_one_component_ablation_by_path(wf):
    """A single ablation's files are a target: the rows of the model's long tables."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = wf / "results/random-llama"
    # targets before --configfile, which takes every file after it
    snakemake(wf, "results/random-llama/components/mlp-2/changes.parquet",
              "results/random-llama/perplexity/components_mlp-2.parquet",
              "--configfile", "config/test.yaml")
    long = pq.read_table(root / "components/changes.parquet")
    one = pq.read_table(root / "components/mlp-2/changes.parquet")
    want = long.filter(pc.equal(long["ablation"], "mlp-2")).drop_columns(["ablation"])
    assert one.equals(want) and one.num_rows == 4  # a row per layer
    ppl = pq.read_table(root / "perplexity/components_mlp-2.parquet")
    assert ppl["run"].to_pylist() == ["mlp-2"]
    runs = pq.read_table(root / "perplexity/components.parquet")["run"].to_pylist()
    assert runs == COMPONENTS
    proc = snakemake(wf, "results/random-llama/components/mlp-7/changes.parquet",
                     "--configfile", "config/test.yaml", check=False)
    assert proc.returncode != 0 and "mlp-7 is not one of this model's" in proc.stdout + proc.stderr
    for log in (wf / "results/logs/component_ablation").glob("random-llama_mlp-7*"):
        log.unlink()  # the other tests read every job log as a finished job's


def test_report_gathers_every_stage(wf):
    html = report_of(wf).read_text(errors="replace")
    for name in ("components.png", "cumulative_pruning.png", "models_layerwise.png",
                 "pruning_summary.png", "layerwise.png", "layerwise.html", "heads_top.html",
                 "heads_bottom_massive.html", "pruning_summary.html", "components.html",
                 "intervention.html", "models.html"):
        assert name in html, name


def browser():
    """Chromium from the system's package manager, driven by Playwright; CI sets
    MASSACT_REQUIRE_BROWSER=1, where a missing browser is a failure, not a skip."""
    import os
    import shutil

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if exe is None or sync_playwright is None:
        if os.environ.get("MASSACT_REQUIRE_BROWSER") == "1":
            pytest.fail("this run requires Chromium and Playwright (apt install chromium)")
        pytest.skip("no Chromium or Playwright here")
    return exe, sync_playwright


def test_report_shows_tables_and_figures_in_a_browser(wf):
    """Opened in headless Chromium, the report shows a result table rendered as a table
    (with its caption and rows) and a figure as a loaded image, as a reader clicks them."""
    exe, sync_playwright = browser()
    url = report_of(wf).resolve().as_uri()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)

        def show(category, subcategory, path):
            page.get_by_text("Results", exact=True).first.click()
            page.get_by_text(category, exact=True).first.click()
            page.get_by_text(subcategory, exact=True).first.click()
            page.locator(f'tr:has(td:text-is("{path}")) a[iconname="eye"]').click()

        show("random-llama", "3 pruning", "results/random-llama/tables/pruning_summary.html")
        table = page.frame_locator("iframe").locator("table")
        table.locator("caption").wait_for()
        assert "random-llama: pruning head sets" in table.locator("caption").inner_text()
        headers = table.locator("th").all_inner_texts()
        assert "experiment" in headers and "p_floor" in headers
        assert table.locator("tbody tr").count() >= 6  # top, bottom, pair(s), random sets
        page.screenshot(path=str(wf / "results/report_table.png"))

        show("random-llama", "1 massive activations", "results/random-llama/figures/layerwise.png")
        img = page.locator("img[src^='data:image/png']").first
        img.wait_for()
        assert img.evaluate("i => i.complete && i.naturalWidth") > 100
        page.screenshot(path=str(wf / "results/report_figure.png"))
        b.close()


# ------------------------------------------------------- bfloat16, every probe route
BF16 = {
    "run": ["random-gemma3", "random-gemma2", "random-falcon"],
    # entries replace test.yaml's whole: each is given in full
    "models": {f"random-{a}": {"source": "random", "arch": a, "seed": 0, "dtype": "bfloat16"}
               for a in ("gemma3", "gemma2", "falcon")},
}


@pytest.fixture(scope="module")
def wf_bf16(tmp_path_factory):
    """config/test.yaml in bfloat16, on one model of each head-score route: Gemma-3 (the
    SDPA probe, sliding windows, post-attention norms), Gemma-2 (its own eager attention,
    soft-capped) and Falcon (attention outside transformers' attention functions)."""
    wf = copy_workflow(tmp_path_factory.mktemp("wf-bf16"))
    (wf / "bf16.yaml").write_text(yaml.safe_dump(BF16))
    snakemake(wf, "--configfile", "config/test.yaml", "bf16.yaml")
    return wf


def test_bfloat16_runs_the_whole_test_workflow(wf_bf16, wf):
    import json

    import numpy as np
    import pyarrow.parquet as pq
    from safetensors import safe_open

    for m in BF16["run"]:
        for t in targets(m):
            assert (wf_bf16 / t).stat().st_size > 0, t
        d = wf_bf16 / "resources/models" / m
        assert json.loads((d / "source.json").read_text())["dtype"] == "bfloat16"
        with safe_open(d / "model.safetensors", "pt") as f:
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}
        scores = pq.read_table(wf_bf16 / "results" / m / "heads/scores.parquet").to_pandas()
        assert np.isfinite(scores["score"]).all() and scores["score"].between(0, 1).all()
    for log in (wf_bf16 / "results/logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log
    # the same random weights in float32 and bfloat16 give nearly the same statistics
    for m in ["random-gemma3"]:
        a = pq.read_table(wf / "results" / m / "activations/layer_stats.parquet").to_pandas()
        b = pq.read_table(wf_bf16 / "results" / m / "activations/layer_stats.parquet").to_pandas()
        top = lambda t: t[t["rank"] == 1].set_index(["sample", "layer"])["value"]  # noqa: E731
        rel = (top(b) / top(a) - 1).abs()
        assert rel.max() < 0.05, (m, rel.max())
