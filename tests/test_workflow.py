"""The real workflow, end to end, on config/test.yaml (tiny random models, local corpus)."""

import re
from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow

MODELS = ["random-gpt2", "random-llama", "random-gemma3"]


def targets(model):
    return [f"results/{model}/{p}" for p in (
        "samples.parquet", "activations/layer_stats.parquet",
        "activations/prompt_features.parquet", "figures/layerwise.png",
        "figures/feature3d_layer1.png", "figures/feature3d_layer2.png",
        "tables/layerwise.csv", "tables/layerwise.md", "tables/massive.csv")]


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
    assert (wf / "resources/corpus/test-local.parquet").exists()
    for log in (wf / "results/logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log


def test_second_run_has_nothing_to_do(wf):
    assert planned(wf, "--configfile", "config/test.yaml") == {}


def test_plot_option_reruns_only_figures(wf):
    cfg = variant(wf, "dpi.yaml", lambda c: c["figures"].update(dpi=61))
    assert planned(wf, "--configfile", cfg) == {"layerwise_figure": 3, "feature3d_figure": 6,
                                                "all": 1}


def test_threshold_reruns_only_the_massive_table(wf):
    cfg = variant(wf, "thr.yaml", lambda c: c["massive"].update(ratio_threshold=7))
    assert planned(wf, "--configfile", cfg) == {"massive_table": 3, "all": 1}


def test_nsamples_reruns_sampling_and_what_follows(wf):
    cfg = variant(wf, "n.yaml", lambda c: c["sampling"].update(nsamples=3))
    assert planned(wf, "--configfile", cfg) == {
        "sample_windows": 3, "extract_activations": 3, "layerwise_figure": 3,
        "layerwise_table": 3, "massive_table": 3, "all": 1}


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
