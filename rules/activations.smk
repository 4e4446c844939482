# Activations: per-sample layer statistics and the prompt's full residual stream.


rule extract_activations:
    input:
        model=model_dir,
        samples="results/{model}/samples.parquet",
    output:
        "results/{model}/activations/layer_stats.parquet",
    params:
        topk=config["extraction"]["topk"],
        device=config["device"],
    log:
        f"{LOGS}/extract_activations/{{model}}.log",
    benchmark:
        f"{BENCH}/extract_activations/{{model}}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=mem_model,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/extract_activations.py"


rule prompt_features:
    input:
        model=model_dir,
    output:
        "results/{model}/activations/prompt_features.parquet",
    params:
        prompt=config["prompt"],
        device=config["device"],
    log:
        f"{LOGS}/prompt_features/{{model}}.log",
    benchmark:
        f"{BENCH}/prompt_features/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=mem_model,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/prompt_features.py"
