# Helpers shared by every stage: library import, config validation, target lists.
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)

from massact.config import (  # noqa: E402
    check_inputs,
    check_layer,
    compare_heads,
    corpus_matches,
    components,
    cut_seqlen,
    experiments,
    feature3d_layers,
    intervention_layers,
    job_mem_mb,
    massive_thresholds,
    library_closure,
    load_yaml,
    materialized_fields,
    model_shape,
    overlay,
    validate,
    window_seqlen,
)
from massact.selection import expand as expand_sets  # noqa: E402
from massact.selection import is_control, tested as tested_sets  # noqa: E402
from massact.errors import UserError  # noqa: E402

try:  # a syntax error named with its file and line (Snakemake's own message has neither)
    load_yaml(os.path.relpath(os.path.join(workflow.basedir, "config/config.yaml")))
except UserError as e:
    raise WorkflowError(str(e)) from None


configfile: "config/config.yaml"


def plain(obj):
    """Snakemake's immutable --config mappings as plain dicts and lists."""
    if hasattr(obj, "items"):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def layered_config():
    """The config as the README promises: config/config.yaml, then each --configfile,
    then --config, where a model or corpus given later replaces the entry of the same
    name whole and head sets given later replace the default ones (Snakemake alone would
    merge field by field; massact.config.overlay)."""
    settings = workflow.config_settings
    cli = [os.path.abspath(f) for f in settings.configfiles]
    own = [f for f in workflow.configfiles if os.path.abspath(f) not in cli]
    files = cli if settings.replace_workflow_config else own + cli
    return overlay(*(load_yaml(f) for f in files), plain(settings.config))


_layered = layered_config()
config.clear()
config.update(_layered)
try:
    validate(config)
    check_inputs(config, Path(workflow.basedir))
except UserError as e:
    raise WorkflowError(str(e)) from None

MODELS = config["run"]
# {experiment: head-set rule}, sorted: reordering the config re-runs nothing
EXPERIMENTS = dict(sorted(expand_sets(config["heads"]["sets"]).items()))
# {model: component ablations}: attn-all, mlp-all, attn-<l>, mlp-<l>
COMPONENTS = {m: components(config, m) for m in MODELS}
CORPUS = config["corpus"]
LOGS = "results/logs"
BENCH = "results/benchmarks/rules"
ENV = "../envs/massact.yaml"
# threads of a job that runs a model (config model_threads), at most the cores given
MODEL_THREADS = (
    workflow.cores
    if config["model_threads"] == "all"
    else min(int(config["model_threads"]), workflow.cores)
)
# The core (layer statistics, head scores and their figures) runs before the ablations,
# so its results are there while the sweeps run.
CORE = 10


def canonical(obj):
    """A config subtree with sorted keys: reordering a config file re-runs nothing."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def config_digest(cfg):
    """A short fingerprint of a config (sha256 of its canonical JSON)."""
    text = json.dumps(canonical(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lib(*modules):
    """Library modules that a job computes with, and every library module they import:
    editing one re-runs the jobs using it."""
    src = os.path.join(SRC, "massact")
    return [
        os.path.relpath(os.path.join(src, f"{m}.py"))
        for m in library_closure(src, modules)
    ]


def layer_checked(wildcards):
    """No input: refuses, while the DAG is built, a target whose layer is outside its model."""
    try:
        check_layer(config, wildcards.model, int(wildcards.layer))
    except UserError as e:
        raise WorkflowError(str(e)) from None
    return []


def pruning_experiment(experiment):
    """What the pruning job needs of one experiment: its head-set rule, the tested sets'
    rules when it is a control (a random or matched set avoids their heads), and the
    post-attention norm it runs with."""
    head_set = EXPERIMENTS[experiment]
    return {
        "rule": canonical(head_set),
        "tested": canonical(tested_sets(EXPERIMENTS)) if is_control(head_set) else {},
        "post_norm": head_set.get("post_norm", config["pruning"]["post_norm"]),
    }


def model_dir(wildcards):
    return f"resources/models/{wildcards.model}"


def model_mem_mb(model):
    """Memory (MB) of a job that loads a model: its weights plus working room."""
    return job_mem_mb(config["models"][model])


def mem_model(wildcards, attempt):
    return model_mem_mb(wildcards.model) * attempt


def mem_materialize(wildcards, attempt):
    """Dequantizing a GGUF file holds the float32 weights and the quantized ones."""
    spec = config["models"][wildcards.model]
    return int(
        model_mem_mb(wildcards.model)
        * (3 if spec["source"] == "pypi" else 1.5)
        * attempt
    )


def model_gpus(model):
    """GPUs a model-running job asks a cluster for: none unless device: cuda; a model
    spread with device_map: auto asks for its registry's `gpus`."""
    return config["models"][model].get("gpus", 1) if config["device"] == "cuda" else 0


def gpus(wildcards):
    return model_gpus(wildcards.model)


def ratio_threshold(wildcards):
    return massive_thresholds(config, wildcards.model)["ratio_threshold"]


def abs_threshold(wildcards):
    return massive_thresholds(config, wildcards.model)["abs_threshold"]


def device_map(wildcards):
    return config["models"][wildcards.model].get("device_map")


def source_spec(model):
    """The registry fields that decide the materialized files (not the per-model study
    options), so that changing e.g. feature3d_layers does not rebuild the model."""
    return canonical(materialized_fields(config["models"][model]))


def intervention_files(model):
    layers = list(intervention_layers(config, model))
    if config["intervention"]["every_layer"]:
        layers.append("every")
    return [
        f"results/{model}/intervention/{layer}_{mode}.parquet"
        for layer in layers
        for mode in config["intervention"]["modes"]
    ]


def every_layer(wildcards):
    """Every layer of the model: the intervention at all of them at once."""
    return list(
        range(
            model_shape(wildcards.model, config["models"][wildcards.model])["n_layers"]
        )
    )


def head_means_input(wildcards):
    """Mean-ablation needs the heads' mean outputs from the baseline pass."""
    if config["pruning"]["mode"] == "mean":
        return f"results/{wildcards.model}/activations/head_means.parquet"
    return []


def model_targets(model):
    layers = feature3d_layers(config, model)
    out = [
        f"results/{model}/figures/layerwise.png",
        f"results/{model}/tables/layerwise.csv",
        f"results/{model}/tables/layerwise.md",
        f"results/{model}/tables/layerwise.html",
        f"results/{model}/tables/massive.csv",
    ]
    out += [f"results/{model}/figures/feature3d_layer{layer}.png" for layer in layers]
    # heads
    targets = [""] + (["_massive"] if config["heads"]["massive_target"] else [])
    for t in targets:
        out += [
            f"results/{model}/heads/scores{t}.parquet",
            f"results/{model}/figures/head_scores{t}.png",
            f"results/{model}/figures/head_ranking{t}.png",
        ]
        out += [
            f"results/{model}/tables/heads_{end}{t}.{ext}"
            for end in ("top", "bottom")
            for ext in ("csv", "md", "html")
        ]
    out.append(f"results/{model}/heads/selection.yaml")
    # pruning
    for e in EXPERIMENTS:
        out += [
            f"results/{model}/pruning/{e}/changes.parquet",
            f"results/{model}/figures/pruning_{e}.png",
        ]
    out += [
        f"results/{model}/tables/pruning_summary.csv",
        f"results/{model}/tables/pruning_summary.md",
        f"results/{model}/tables/pruning_summary.html",
        f"results/{model}/figures/pruning_summary.png",
    ]
    for layer in layers:
        out += [
            f"results/{model}/figures/feature3d_compare_layer{layer}.png",
            f"results/{model}/figures/feature3d_difference_layer{layer}.png",
        ]
    # components, perplexity, intervention, cumulative pruning
    out += [
        f"results/{model}/components/changes.parquet",
        f"results/{model}/perplexity/components.parquet",
        f"results/{model}/figures/components.png",
        f"results/{model}/tables/components.md",
        f"results/{model}/tables/components.html",
        f"results/{model}/perplexity/baseline.parquet",
    ]
    out += intervention_files(model)
    out += [
        f"results/{model}/tables/intervention.md",
        f"results/{model}/tables/intervention.html",
        f"results/{model}/cumulative/pruning.parquet",
        f"results/{model}/figures/cumulative_pruning.png",
    ]
    return out


def all_targets():
    models = [
        "results/figures/models_layerwise.png",
        "results/tables/models.md",
        "results/tables/models.html",
        "results/config.yaml",
    ]
    return [t for m in MODELS for t in model_targets(m)] + models


def corpus_files(wildcards):
    """Local files of a `files` corpus, so that editing them re-runs the corpus."""
    spec = config["corpora"][wildcards.corpus]
    if spec["source"] != "files":
        return []
    matches = corpus_matches(spec, workflow.basedir)
    return sorted({os.path.relpath(f) for found in matches for f in found})
