# Pruning: remove each head set on the same samples and compare with the baseline;
# one job per model runs every experiment, each from the first block it changes.


rule prune_heads:
    """Select every experiment's heads, rerun the baseline pass without each set, and
    compare per layer with the baseline."""
    input:
        model=model_dir,
        samples="results/{model}/samples.parquet",
        heldout="results/{model}/heldout.parquet",
        scores="results/{model}/heads/scores.parquet",
        baseline="results/{model}/activations/layer_stats.parquet",
        means=head_means_input,
        code=lib(
            "ablation",
            "forward",
            "stats",
            "heads",
            "arch",
            "selection",
            "analysis",
            "perplexity",
            "prefix",
            "sweeps",
        ),
    output:
        heads=expand(
            "results/{{model}}/pruning/{experiment}/heads.yaml", experiment=EXPERIMENTS
        ),
        stats=expand(
            "results/{{model}}/pruning/{experiment}/layer_stats.parquet",
            experiment=EXPERIMENTS,
        ),
        scores=expand(
            "results/{{model}}/pruning/{experiment}/head_scores.parquet",
            experiment=EXPERIMENTS,
        ),
        changes=expand(
            "results/{{model}}/pruning/{experiment}/changes.parquet",
            experiment=EXPERIMENTS,
        ),
        ppl=expand(
            "results/{{model}}/perplexity/pruning_{experiment}.parquet",
            experiment=EXPERIMENTS,
        ),
    log:
        f"{LOGS}/prune_heads/{{model}}.log",
    benchmark:
        f"{BENCH}/prune_heads/{{model}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=240,
    params:
        names=list(EXPERIMENTS),
        experiments={e: pruning_experiment(e) for e in EXPERIMENTS},
        mode=config["pruning"]["mode"],
        topk=config["extraction"]["topk"],
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/prune_heads.py"


rule pruning_figures:
    """Baseline vs pruned per layer, one figure per experiment."""
    input:
        changes=expand(
            "results/{{model}}/pruning/{experiment}/changes.parquet",
            experiment=EXPERIMENTS,
        ),
        heads=expand(
            "results/{{model}}/pruning/{experiment}/heads.yaml", experiment=EXPERIMENTS
        ),
        code=lib("plots"),
    output:
        report(
            expand(
                "results/{{model}}/figures/pruning_{experiment}.png",
                experiment=EXPERIMENTS,
            ),
            caption="../report/pruning.rst",
            category="{model}",
            subcategory="3 pruning",
        ),
    log:
        f"{LOGS}/pruning_figures/{{model}}.log",
    benchmark:
        f"{BENCH}/pruning_figures/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        names=list(EXPERIMENTS),
        dpi=config["figures"]["dpi"],
        log_scale=config["figures"]["log_scale"],
    script:
        "../scripts/pruning_figures.py"


rule pruning_summary:
    """The results table, every experiment against the random control."""
    input:
        baseline="results/{model}/activations/layer_stats.parquet",
        pruned=expand(
            "results/{{model}}/pruning/{experiment}/layer_stats.parquet",
            experiment=EXPERIMENTS,
        ),
        changes=expand(
            "results/{{model}}/pruning/{experiment}/changes.parquet",
            experiment=EXPERIMENTS,
        ),
        heads=expand(
            "results/{{model}}/pruning/{experiment}/heads.yaml", experiment=EXPERIMENTS
        ),
        ppl_baseline="results/{model}/perplexity/baseline.parquet",
        ppl=expand(
            "results/{{model}}/perplexity/pruning_{experiment}.parquet",
            experiment=EXPERIMENTS,
        ),
        code=lib("analysis", "tables", "perplexity"),
    output:
        csv="results/{model}/tables/pruning_summary.csv",
        md="results/{model}/tables/pruning_summary.md",
        html=report(
            "results/{model}/tables/pruning_summary.html",
            caption="../report/pruning_table.rst",
            category="{model}",
            subcategory="3 pruning",
        ),
    log:
        f"{LOGS}/pruning_summary/{{model}}.log",
    benchmark:
        f"{BENCH}/pruning_summary/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        experiments=list(EXPERIMENTS),
        rules=EXPERIMENTS,
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
    script:
        "../scripts/pruning_summary.py"


rule pruning_overview:
    """Every experiment's top-1 change per layer, random as a band."""
    input:
        changes=expand(
            "results/{{model}}/pruning/{experiment}/changes.parquet",
            experiment=EXPERIMENTS,
        ),
        code=lib("plots"),
    output:
        report(
            "results/{model}/figures/pruning_summary.png",
            caption="../report/pruning_summary.rst",
            category="{model}",
            subcategory="3 pruning",
        ),
    log:
        f"{LOGS}/pruning_overview/{{model}}.log",
    benchmark:
        f"{BENCH}/pruning_overview/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        experiments=list(EXPERIMENTS),
        rules=EXPERIMENTS,
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/pruning_overview.py"


rule prune_prompt:
    """The prompt's residual stream with the compared heads removed."""
    input:
        model=model_dir,
        scores="results/{model}/heads/scores.parquet",
        means=head_means_input,
        layer=layer_checked,
        code=lib("ablation", "stats", "arch"),
    output:
        features="results/{model}/pruning/feature3d/layer{layer}/prompt_features.parquet",
        heads="results/{model}/pruning/feature3d/layer{layer}/heads.yaml",
    log:
        f"{LOGS}/prune_prompt/{{model}}_layer{{layer}}.log",
    benchmark:
        f"{BENCH}/prune_prompt/{{model}}_layer{{layer}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=10,
    params:
        heads=lambda wc: compare_heads(config, wc.model, int(wc.layer)),
        prompt=config["prompt"],
        mode=config["pruning"]["mode"],
        post_norm=config["pruning"]["post_norm"],
        device=config["device"],
        device_map=device_map,
    script:
        "../scripts/prune_prompt.py"


rule feature3d_compare:
    """A layer's 3D picture before/after pruning, and the difference."""
    input:
        baseline="results/{model}/activations/prompt_features.parquet",
        pruned="results/{model}/pruning/feature3d/layer{layer}/prompt_features.parquet",
        heads="results/{model}/pruning/feature3d/layer{layer}/heads.yaml",
        code=lib("plots", "stats"),
    output:
        compare=report(
            "results/{model}/figures/feature3d_compare_layer{layer}.png",
            caption="../report/feature3d_compare.rst",
            category="{model}",
            subcategory="3 pruning",
        ),
        difference=report(
            "results/{model}/figures/feature3d_difference_layer{layer}.png",
            caption="../report/feature3d_difference.rst",
            category="{model}",
            subcategory="3 pruning",
        ),
    log:
        f"{LOGS}/feature3d_compare/{{model}}_layer{{layer}}.log",
    benchmark:
        f"{BENCH}/feature3d_compare/{{model}}_layer{{layer}}.tsv"
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
        "../scripts/feature3d_compare.py"
