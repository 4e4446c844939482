# Figures and tables of the extraction stage; each is a target a user can ask for.


rule layerwise_figure:
    """Top-1/2/3 and median |x| per layer."""
    input:
        "results/{model}/activations/layer_stats.parquet",
        code=lib("analysis", "plots"),
    output:
        report(
            "results/{model}/figures/layerwise.png",
            caption="../report/layerwise.rst",
            category="{model}",
            subcategory="1 massive activations",
        ),
    log:
        f"{LOGS}/layerwise_figure/{{model}}.log",
    benchmark:
        f"{BENCH}/layerwise_figure/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        dpi=config["figures"]["dpi"],
        log_scale=config["figures"]["log_scale"],
    script:
        "../scripts/layerwise_figure.py"


rule layerwise_table:
    """The per-layer statistics table (CSV, Markdown, HTML)."""
    input:
        "results/{model}/activations/layer_stats.parquet",
        code=lib("analysis", "tables"),
    output:
        csv="results/{model}/tables/layerwise.csv",
        md="results/{model}/tables/layerwise.md",
        html=report(
            "results/{model}/tables/layerwise.html",
            caption="../report/layerwise_table.rst",
            category="{model}",
            subcategory="1 massive activations",
        ),
    log:
        f"{LOGS}/layerwise_table/{{model}}.log",
    benchmark:
        f"{BENCH}/layerwise_table/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/layerwise_table.py"


rule massive_table:
    """Every massive activation found, by the configured thresholds."""
    input:
        "results/{model}/activations/layer_stats.parquet",
        code=lib("analysis"),
    output:
        "results/{model}/tables/massive.csv",
    log:
        f"{LOGS}/massive_table/{{model}}.log",
    benchmark:
        f"{BENCH}/massive_table/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ratio_threshold=ratio_threshold,
        abs_threshold=abs_threshold,
    script:
        "../scripts/massive_table.py"


rule feature3d_figure:
    """The 3D |x| picture of one layer for the prompt."""
    input:
        "results/{model}/activations/prompt_features.parquet",
        layer=layer_checked,
        code=lib("plots", "stats"),
    output:
        report(
            "results/{model}/figures/feature3d_layer{layer}.png",
            caption="../report/feature3d.rst",
            category="{model}",
            subcategory="1 massive activations",
        ),
    log:
        f"{LOGS}/feature3d_figure/{{model}}_layer{{layer}}.log",
    benchmark:
        f"{BENCH}/feature3d_figure/{{model}}_layer{{layer}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        dpi=config["figures"]["dpi"],
        labels=config["figures"]["feature3d_labels"],
        prompt=config["prompt"],
    script:
        "../scripts/feature3d_figure.py"
