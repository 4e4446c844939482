# Across models: every configured model on one figure and one table, and the config the
# run used. The HTML report (snakemake --report results/report.html) gathers every figure
# and table marked report(...) in the stage files, with the captions of report/*.rst.


rule resolved_config:
    """The config this run used, every file and --config merged and every default
    filled in, with sorted keys."""
    output:
        "results/config.yaml",
    log:
        f"{LOGS}/resolved_config/all.log",
    benchmark:
        f"{BENCH}/resolved_config/all.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        # the config's digest, not the config: a change reruns the rule, and the console's
        # reason line stays short (the script writes the job's own config)
        digest=config_digest(config),
    script:
        "../scripts/resolved_config.py"


rule models_layerwise:
    """The top-1/median ratio per layer of every model, depth normalized."""
    input:
        expand("results/{model}/tables/layerwise.csv", model=MODELS),
        code=lib("plots"),
    output:
        report(
            "results/figures/models_layerwise.png",
            caption="../report/models_layerwise.rst",
            category="all models",
        ),
    log:
        f"{LOGS}/models_layerwise/all.log",
    benchmark:
        f"{BENCH}/models_layerwise/all.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        models=MODELS,
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/models_layerwise.py"


rule models_table:
    """Per model, where the massive activations form, their size and dimensions, the
    top head, and the pruning, component and intervention headlines."""
    input:
        layerwise=expand("results/{model}/tables/layerwise.csv", model=MODELS),
        massive=expand("results/{model}/tables/massive.csv", model=MODELS),
        heads=expand("results/{model}/tables/heads_top.csv", model=MODELS),
        pruning=expand("results/{model}/tables/pruning_summary.csv", model=MODELS),
        components=expand("results/{model}/tables/components.csv", model=MODELS),
        intervention=expand("results/{model}/tables/intervention.csv", model=MODELS),
        code=lib("analysis", "tables"),
    output:
        csv="results/tables/models.csv",
        md="results/tables/models.md",
        html=report(
            "results/tables/models.html",
            caption="../report/models_table.rst",
            category="all models",
        ),
    log:
        f"{LOGS}/models_table/all.log",
    benchmark:
        f"{BENCH}/models_table/all.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        models=MODELS,
    script:
        "../scripts/models_table.py"
