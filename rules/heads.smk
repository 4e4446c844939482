# Heads: which attention heads attend to the massive-activation tokens, and the named
# head sets that the pruning stage removes.


rule score_heads_massive:
    """Attention to every token that carries a massive activation."""
    input:
        model=model_dir,
        samples="results/{model}/samples.parquet",
        stats="results/{model}/activations/layer_stats.parquet",
        code=lib("heads", "forward", "analysis"),
    output:
        "results/{model}/heads/per_sample_massive.parquet",
    log:
        f"{LOGS}/score_heads_massive/{{model}}.log",
    benchmark:
        f"{BENCH}/score_heads_massive/{{model}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=60,
    params:
        ratio_threshold=ratio_threshold,
        abs_threshold=abs_threshold,
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/score_heads_massive.py"


rule head_scores:
    """Per-head mean score over samples, spread, bootstrap CI and ranks."""
    input:
        "results/{model}/heads/per_sample{target}.parquet",
        code=lib("analysis"),
    output:
        "results/{model}/heads/scores{target}.parquet",
    log:
        f"{LOGS}/head_scores/{{model}}{{target}}.log",
    benchmark:
        f"{BENCH}/head_scores/{{model}}{{target}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
    script:
        "../scripts/head_scores.py"


rule head_selection:
    """Every named head set, from the scores and the config's rules."""
    input:
        "results/{model}/heads/scores.parquet",
        code=lib("selection"),
    output:
        "results/{model}/heads/selection.yaml",
    log:
        f"{LOGS}/head_selection/{{model}}.log",
    benchmark:
        f"{BENCH}/head_selection/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        rules=canonical(EXPERIMENTS),
    script:
        "../scripts/head_selection.py"


rule head_figures:
    """The heads' scores as a heatmap and by layer."""
    input:
        "results/{model}/heads/scores{target}.parquet",
        code=lib("plots"),
    output:
        heatmap=report(
            "results/{model}/figures/head_scores{target}.png",
            caption="../report/head_scores.rst",
            category="{model}",
            subcategory="2 heads",
        ),
        ranking=report(
            "results/{model}/figures/head_ranking{target}.png",
            caption="../report/head_ranking.rst",
            category="{model}",
            subcategory="2 heads",
        ),
    log:
        f"{LOGS}/head_figures/{{model}}{{target}}.log",
    benchmark:
        f"{BENCH}/head_figures/{{model}}{{target}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/head_figures.py"


rule head_tables:
    """The top and bottom heads, as CSV, Markdown and HTML."""
    input:
        "results/{model}/heads/scores{target}.parquet",
        code=lib("analysis", "tables"),
    output:
        top_csv="results/{model}/tables/heads_top{target}.csv",
        top_md="results/{model}/tables/heads_top{target}.md",
        bottom_csv="results/{model}/tables/heads_bottom{target}.csv",
        bottom_md="results/{model}/tables/heads_bottom{target}.md",
        top_html=report(
            "results/{model}/tables/heads_top{target}.html",
            caption="../report/heads_table.rst",
            category="{model}",
            subcategory="2 heads",
        ),
        bottom_html=report(
            "results/{model}/tables/heads_bottom{target}.html",
            caption="../report/heads_table.rst",
            category="{model}",
            subcategory="2 heads",
        ),
    log:
        f"{LOGS}/head_tables/{{model}}{{target}}.log",
    benchmark:
        f"{BENCH}/head_tables/{{model}}{{target}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        n_top=config["heads"]["table_top"],
        n_bottom=config["heads"]["table_bottom"],
    script:
        "../scripts/head_tables.py"
