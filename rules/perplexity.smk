# Perplexity: the unmodified model on the held-out windows. Every ablation job scores
# the same windows with its own change in place (pruning, components, cumulative,
# intervention), so each run's perplexity comes from the job that already holds it.


rule perplexity_baseline:
    """The unmodified model's perplexity on the held-out windows."""
    input:
        model=model_dir,
        heldout="results/{model}/heldout.parquet",
        code=lib("perplexity", "arch"),
    output:
        "results/{model}/perplexity/baseline.parquet",
    log:
        f"{LOGS}/perplexity_baseline/{{model}}.log",
    benchmark:
        f"{BENCH}/perplexity_baseline/{{model}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=30,
    params:
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/perplexity_baseline.py"
