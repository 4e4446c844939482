# Helpers shared by every stage: library import, config validation, target lists.
import glob
import os
import re
import sys

from snakemake.exceptions import WorkflowError

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)

from massact.config import feature3d_layers, validate  # noqa: E402
from massact.errors import ConfigError  # noqa: E402

try:
    validate(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

MODELS = config["run"]
CORPUS = config["corpus"]
LOGS = "results/logs"
BENCH = "results/benchmarks/rules"
ENV = "../envs/massact.yaml"


def canonical(obj):
    """A config subtree with sorted keys: reordering a config file re-runs nothing."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def lib(*modules):
    """Library modules that a job computes with; editing one re-runs the jobs using it."""
    return [os.path.join(SRC, "massact", f"{m}.py") for m in modules]


def model_dir(wildcards):
    return f"resources/models/{wildcards.model}"


def mem_model(wildcards, attempt):
    """Memory (MB) of a job that loads a model: float32 weights plus working room."""
    spec = config["models"][wildcards.model]
    base = {"pypi": 4000, "hf": 4000, "path": 4000, "random": 1000}[spec["source"]]
    return base * attempt


def model_targets(model):
    out = [
        f"results/{model}/figures/layerwise.png",
        f"results/{model}/tables/layerwise.csv",
        f"results/{model}/tables/layerwise.md",
        f"results/{model}/tables/massive.csv",
    ]
    out += [
        f"results/{model}/figures/feature3d_layer{layer}.png"
        for layer in feature3d_layers(config, model)
    ]
    return out


def all_targets():
    return [t for m in MODELS for t in model_targets(m)]


def corpus_files(wildcards):
    """Local files of a `files` corpus, so that editing them re-runs the corpus."""
    spec = config["corpora"][wildcards.corpus]
    if spec["source"] != "files":
        return []
    return sorted(
        {
            os.path.relpath(f)
            for pattern in spec["files"]
            for f in glob.glob(os.path.join(workflow.basedir, pattern))
        }
    )
