# Activations: one forward pass per sample gives the layer statistics, the first-token
# head scores and the heads' mean outputs; the prompt's full residual stream for 3D figures.


rule extract_activations:
    """One pass per sample → layer statistics, head scores, head means."""
    input:
        model=model_dir,
        samples="results/{model}/samples.parquet",
        code=lib("stats", "arch", "heads", "forward"),
    output:
        stats="results/{model}/activations/layer_stats.parquet",
        heads="results/{model}/heads/per_sample.parquet",
        means="results/{model}/activations/head_means.parquet",
    log:
        f"{LOGS}/extract_activations/{{model}}.log",
    benchmark:
        f"{BENCH}/extract_activations/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=60,
    params:
        topk=config["extraction"]["topk"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/extract_activations.py"


rule prompt_features:
    """The full residual stream of every layer for the 3D prompt."""
    input:
        model=model_dir,
        code=lib("stats", "arch"),
    output:
        "results/{model}/activations/prompt_features.parquet",
    log:
        f"{LOGS}/prompt_features/{{model}}.log",
    benchmark:
        f"{BENCH}/prompt_features/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=10,
    params:
        prompt=config["prompt"],
        device=config["device"],
        device_map=device_map,
    script:
        "../scripts/prompt_features.py"
