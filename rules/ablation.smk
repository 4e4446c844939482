# Ablation beyond single head sets: whole components removed layer by layer, many
# heads removed cumulatively, and the massive activations themselves set to zero or
# their mean. Sweeps run on the sweep windows (first analysis windows, cut short)
# against one shared baseline pass; every run also scores the held-out windows.


rule sweep_baseline:
    """Layer statistics of the sweep windows (the first analysis windows, cut short)
    for the component and cumulative sweeps to compare against."""
    input:
        model=model_dir,
        samples="results/{model}/samples.parquet",
        code=lib("forward", "stats", "arch", "sampling"),
    output:
        windows="results/{model}/sweeps/windows.parquet",
        stats="results/{model}/sweeps/baseline_stats.parquet",
    log:
        f"{LOGS}/sweep_baseline/{{model}}.log",
    benchmark:
        f"{BENCH}/sweep_baseline/{{model}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=30,
    params:
        samples=config["sweeps"]["samples"],
        seqlen=lambda wc: cut_seqlen(config, wc.model, "sweeps"),
        topk=config["extraction"]["topk"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/sweep_baseline.py"


rule component_ablations:
    """Remove whole attention sublayers and MLPs (all at once, then one layer at a
    time): one job per model (one model load), its results in two long tables, one
    row group per ablation."""
    input:
        model=model_dir,
        windows="results/{model}/sweeps/windows.parquet",
        baseline="results/{model}/sweeps/baseline_stats.parquet",
        heldout="results/{model}/heldout.parquet",
        code=lib(
            "ablation", "forward", "stats", "arch", "analysis", "perplexity", "sweeps"
        ),
    output:
        changes="results/{model}/components/changes.parquet",
        ppl="results/{model}/perplexity/components.parquet",
    log:
        f"{LOGS}/component_ablations/{{model}}.log",
    benchmark:
        f"{BENCH}/component_ablations/{{model}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=240,
    params:
        ablations=lambda wc: COMPONENTS[wc.model],
        topk=config["extraction"]["topk"],
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/component_ablations.py"


rule component_ablation:
    """One component ablation's changes and perplexity as files of their own, taken
    from the model's long tables (ask for them by path)."""
    input:
        changes="results/{model}/components/changes.parquet",
        ppl="results/{model}/perplexity/components.parquet",
    output:
        changes="results/{model}/components/{ablation}/changes.parquet",
        ppl="results/{model}/perplexity/components_{ablation}.parquet",
    log:
        f"{LOGS}/component_ablation/{{model}}_{{ablation}}.log",
    benchmark:
        f"{BENCH}/component_ablation/{{model}}_{{ablation}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/component_ablation.py"


rule components_figure:
    """Which component creates the massive activation, at which layer."""
    input:
        changes="results/{model}/components/changes.parquet",
        ppl="results/{model}/perplexity/components.parquet",
        ppl_baseline="results/{model}/perplexity/baseline.parquet",
        code=lib("plots", "analysis", "perplexity"),
    output:
        report(
            "results/{model}/figures/components.png",
            caption="../report/components.rst",
            category="{model}",
            subcategory="4 components",
        ),
    log:
        f"{LOGS}/components_figure/{{model}}.log",
    benchmark:
        f"{BENCH}/components_figure/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ablations=lambda wc: COMPONENTS[wc.model],
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/components_figure.py"


rule components_table:
    """Per component ablation, the change of the massive activation and of the
    perplexity, with their intervals."""
    input:
        changes="results/{model}/components/changes.parquet",
        ppl="results/{model}/perplexity/components.parquet",
        ppl_baseline="results/{model}/perplexity/baseline.parquet",
        code=lib("analysis", "tables", "perplexity"),
    output:
        csv="results/{model}/tables/components.csv",
        md="results/{model}/tables/components.md",
        html=report(
            "results/{model}/tables/components.html",
            caption="../report/components_table.rst",
            category="{model}",
            subcategory="4 components",
        ),
    log:
        f"{LOGS}/components_table/{{model}}.log",
    benchmark:
        f"{BENCH}/components_table/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        ablations=lambda wc: COMPONENTS[wc.model],
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
    script:
        "../scripts/components_table.py"


rule intervention:
    """At one layer, set the massive activations (and, as a control, as many
    ordinary entries) to zero or to their mean; perplexity on the held-out
    windows."""
    input:
        model=model_dir,
        heldout="results/{model}/heldout.parquet",
        samples="results/{model}/samples.parquet",
        baseline="results/{model}/perplexity/baseline.parquet",
        layer=layer_checked,
        code=lib("intervention", "perplexity", "arch"),
    output:
        expand(
            "results/{{model}}/intervention/{{layer}}_{mode}.parquet",
            mode=config["intervention"]["modes"],
        ),
    log:
        f"{LOGS}/intervention/{{model}}_{{layer}}.log",
    benchmark:
        f"{BENCH}/intervention/{{model}}_{{layer}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=60,
    params:
        layers=lambda wc: int(wc.layer),
        modes=config["intervention"]["modes"],
        ratio=ratio_threshold,
        abs=abs_threshold,
        seed=config["intervention"]["seed"],
        bootstrap=config["heads"]["bootstrap"],
        bootstrap_seed=config["heads"]["seed"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/intervention.py"


rule intervention_every_layer:
    """The same at the output of every block at once, in one pass, each layer with its
    own means."""
    input:
        model=model_dir,
        heldout="results/{model}/heldout.parquet",
        samples="results/{model}/samples.parquet",
        baseline="results/{model}/perplexity/baseline.parquet",
        code=lib("intervention", "perplexity", "arch"),
    output:
        expand(
            "results/{{model}}/intervention/every_{mode}.parquet",
            mode=config["intervention"]["modes"],
        ),
    log:
        f"{LOGS}/intervention/{{model}}_every.log",
    benchmark:
        f"{BENCH}/intervention/{{model}}_every.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=60,
    params:
        layers=every_layer,
        modes=config["intervention"]["modes"],
        ratio=ratio_threshold,
        abs=abs_threshold,
        seed=config["intervention"]["seed"],
        bootstrap=config["heads"]["bootstrap"],
        bootstrap_seed=config["heads"]["seed"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/intervention.py"


rule intervention_table:
    """The paper's table, perplexity with the massive activations set to zero or to
    their mean, against as many random ordinary activations."""
    input:
        lambda wc: intervention_files(wc.model),
        code=lib("analysis", "tables"),
    output:
        csv="results/{model}/tables/intervention.csv",
        md="results/{model}/tables/intervention.md",
        html=report(
            "results/{model}/tables/intervention.html",
            caption="../report/intervention.rst",
            category="{model}",
            subcategory="5 intervention",
        ),
    log:
        f"{LOGS}/intervention_table/{{model}}.log",
    benchmark:
        f"{BENCH}/intervention_table/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/intervention_table.py"


rule cumulative_pruning:
    """Remove the top-, bottom- and random-k heads for each k of the grid; change of
    the massive activation and perplexity against k."""
    input:
        model=model_dir,
        windows="results/{model}/sweeps/windows.parquet",
        baseline="results/{model}/sweeps/baseline_stats.parquet",
        heldout="results/{model}/heldout.parquet",
        ppl="results/{model}/perplexity/baseline.parquet",
        scores="results/{model}/heads/scores.parquet",
        means=head_means_input,
        code=lib(
            "ablation", "forward", "stats", "arch", "analysis", "perplexity", "sweeps"
        ),
    output:
        "results/{model}/cumulative/pruning.parquet",
    log:
        f"{LOGS}/cumulative_pruning/{{model}}.log",
    benchmark:
        f"{BENCH}/cumulative_pruning/{{model}}.tsv"
    conda:
        ENV
    threads: MODEL_THREADS
    resources:
        mem_mb=mem_model,
        gpu=gpus,
        runtime=240,
    params:
        k=config["cumulative"]["k"],
        seeds=config["cumulative"]["seeds"],
        mode=config["pruning"]["mode"],
        post_norm=config["pruning"]["post_norm"],
        topk=config["extraction"]["topk"],
        bootstrap=config["heads"]["bootstrap"],
        seed=config["heads"]["seed"],
        device=config["device"],
        batch_tokens=config["batch_tokens"],
        device_map=device_map,
    script:
        "../scripts/cumulative_pruning.py"


rule cumulative_figure:
    """How many heads must go before the massive activation or the model breaks."""
    input:
        rows="results/{model}/cumulative/pruning.parquet",
        code=lib("plots"),
    output:
        report(
            "results/{model}/figures/cumulative_pruning.png",
            caption="../report/cumulative_pruning.rst",
            category="{model}",
            subcategory="3 pruning",
        ),
    log:
        f"{LOGS}/cumulative_figure/{{model}}.log",
    benchmark:
        f"{BENCH}/cumulative_figure/{{model}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/cumulative_figure.py"
