"""Fault injection through the real workflow (config/test.yaml plus one fault each): the
exit code, a message that names the key or file and says what to do, no Python
traceback, and results/ left as it was."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import copy_workflow, materialize_random, snakemake
from test_fetch import make_sdist

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("faults"))


def tree(root):
    """Every file under ``root`` with its size and mtime."""
    if not root.exists():
        return {}
    return {p.relative_to(root): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def overlay(wf, name, cfg):
    (wf / "config" / name).write_text(yaml.safe_dump(cfg))
    return f"config/{name}"


def fails(wf, *args, env=None, logs=False):
    """Run snakemake, expect it to fail; return its output. Nothing under results/ may
    change, except (``logs=True``) the failed job's log."""
    before = tree(wf / "results")
    proc = snakemake(wf, *args, check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Traceback (most recent call last)" not in out, out[-3000:]
    after = tree(wf / "results")
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    allowed = {p for p in changed if logs and p.parts[0] in ("logs", "benchmarks")}
    assert changed == allowed, sorted(map(str, changed - allowed))
    return out


def corpus_config(wf, name, files):
    return overlay(wf, name, {"corpus": "faulty",
                              "corpora": {"faulty": {"source": "files", "files": files}}})


def test_corpus_pattern_matching_nothing_is_refused_before_any_job(wf):
    cfg = corpus_config(wf, "nomatch.yaml", ["tests/data/corpus/*.md"])
    out = fails(wf, "--configfile", "config/test.yaml", cfg)
    assert "corpora.faulty.files[0]" in out and "no file matches 'tests/data/corpus/*.md'" in out
    assert "Building DAG" not in out  # the config alone told


def test_empty_corpus_names_its_files(wf):
    (wf / "empty").mkdir()
    (wf / "empty/a.txt").write_text("")
    (wf / "empty/b.txt").write_text("  \n\n")
    cfg = corpus_config(wf, "empty.yaml", ["empty/*.txt"])
    out = fails(wf, "resources/corpus/faulty.parquet", "--configfile", "config/test.yaml", cfg,
                logs=True)
    assert "corpus 'faulty' has no text: a.txt, b.txt are empty" in out
    assert not (wf / "resources/corpus/faulty.parquet").exists()


def test_binary_corpus_file_is_refused_by_name(wf):
    (wf / "mixed").mkdir()
    shutil.copy(wf / "tests/data/corpus/sonnets.txt", wf / "mixed/sonnets.txt")
    (wf / "mixed/image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64))
    cfg = corpus_config(wf, "binary.yaml", ["mixed/*.txt"])
    out = fails(wf, "resources/corpus/faulty.parquet", "--configfile", "config/test.yaml", cfg,
                logs=True)
    assert "mixed/image.txt is binary, not text" in out
    assert not (wf / "resources/corpus/faulty.parquet").exists()


def test_tampered_corpus_package_runs_no_code(wf, tmp_path):
    index, marker = tmp_path / "index", tmp_path / "marker"
    index.mkdir()
    pinned = make_sdist(index, marker, "As published.\n").read_bytes()
    import hashlib

    sha = hashlib.sha256(pinned).hexdigest()
    make_sdist(index, marker, "As published, then changed.\n")
    cfg = overlay(wf, "tampered.yaml", {"corpus": "probe", "corpora": {"probe": {
        "source": "pypi", "package": "probe-corpus==1.0", "sha256": sha,
        "include": ["*/probe_corpus/texts/*.txt"]}}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(index))
    out = fails(wf, "resources/corpus/probe.parquet", "--configfile", "config/test.yaml", cfg,
                env=env, logs=True)
    assert "checksum mismatch for package probe-corpus==1.0" in out
    assert f"expected sha256 {sha}" in out
    assert not marker.exists()
    assert not (wf / "resources/corpus/probe.parquet").exists()


def test_missing_path_model_is_refused_before_any_job(wf):
    cfg = overlay(wf, "nopath.yaml", {"run": ["mine"], "models": {"mine": {
        "source": "path", "path": "no/such/model", "n_layers": 4, "n_heads": 4,
        "context": 256}}})
    out = fails(wf, "--configfile", "config/test.yaml", cfg)
    assert "models.mine.path" in out and "no/such/model does not exist" in out


def test_truncated_path_model_names_the_model(wf):
    src = materialize_random(wf / "built", ["llama"])["llama"]
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    cfg = overlay(wf, "truncated.yaml", {"run": ["mine"], "models": {"mine": {
        "source": "path", "path": str(src), "n_layers": 4, "n_heads": 4, "context": 256}}})
    out = fails(wf, "resources/models/mine", "--configfile", "config/test.yaml", cfg, logs=True)
    assert "model 'mine': the weights in" in out and "cannot be read" in out
    assert "copy it again" in out and "models.mine.path" in out
    assert not (wf / "resources/models/mine").exists()


def test_truncated_intermediate_file_says_delete_it(wf):
    target = "results/random-gpt2/samples.parquet"
    snakemake(wf, target, "--configfile", "config/test.yaml")
    samples = wf / target
    samples.write_bytes(samples.read_bytes()[:200])
    out = fails(wf, "results/random-gpt2/activations/layer_stats.parquet", "--configfile",
                "config/test.yaml", logs=True)
    assert f"{target} is not a readable Parquet file" in out
    assert "Delete it and run the same command again" in out
    samples.unlink()  # as the message says: the rerun rebuilds it
    snakemake(wf, target, "--configfile", "config/test.yaml")
    assert samples.stat().st_size > 200


def test_yaml_syntax_error_names_file_and_line(wf):
    own = wf / "config/config.yaml"
    good = own.read_text()
    try:
        own.write_text(good.replace("run: [smollm2-135m, gemma3-270m]",
                                    "run: [smollm2-135m, gemma3-270m"))
        out = fails(wf, "-n")
        assert re.search(r"config file config/config.yaml, line 9, column 1: not valid YAML "
                         r"\(while parsing a flow sequence expected ',' or '\]'", out), out
    finally:
        own.write_text(good)
    # a --configfile is read by Snakemake before the workflow; the checker names the line
    (wf / "bad.yaml").write_text("run: [random-gpt2\nsampling: {nsamples: 3}\n")
    proc = subprocess.run([sys.executable, "-m", "massact.config", "bad.yaml"], cwd=wf,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(wf / "src")})
    assert proc.returncode == 1
    assert "config file bad.yaml, line 2, column 9: not valid YAML" in proc.stderr


def test_layer_outside_the_model_is_refused_before_any_job(wf):
    for target in ("results/random-gpt2/figures/feature3d_layer99.png",
                   "results/random-gpt2/intervention/4_zero.parquet",
                   "results/random-gpt2/figures/feature3d_compare_layer7.png"):
        out = fails(wf, target, "--configfile", "config/test.yaml")
        assert "model 'random-gpt2' has layers 0..3; there is no layer" in out
        assert "Select jobs to execute" not in out
