# Helpers shared by the rule files: library import, config validation, targets.
import glob
import os
import re
import sys

from snakemake.exceptions import WorkflowError

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# rule scripts (and cluster jobs) import the library from this checkout
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p
)

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


wildcard_constraints:
    model="|".join(map(re.escape, config["models"])),
    corpus="|".join(map(re.escape, config["corpora"])),
    layer=r"\d+",


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
