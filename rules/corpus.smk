# Corpus: materialize the configured corpus, then draw seeded token windows per model.


rule materialize_corpus:
    """The configured corpus → resources/corpus/{corpus}.parquet."""
    input:
        files=corpus_files,
    output:
        "resources/corpus/{corpus}.parquet",
    log:
        f"{LOGS}/materialize_corpus/{{corpus}}.log",
    benchmark:
        f"{BENCH}/materialize_corpus/{{corpus}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=lambda wc: canonical(config["corpora"][wc.corpus]),
        downloads="resources/downloads",
    script:
        "../scripts/materialize_corpus.py"


rule sample_windows:
    """Seeded token windows of the corpus for one model."""
    input:
        corpus=f"resources/corpus/{CORPUS}.parquet",
        model=model_dir,
        code=lib("sampling"),
    output:
        "results/{model}/samples.parquet",
    log:
        f"{LOGS}/sample_windows/{{model}}.log",
    benchmark:
        f"{BENCH}/sample_windows/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        nsamples=config["sampling"]["nsamples"],
        seqlen=lambda wc: window_seqlen(config, wc.model),
        seed=config["sampling"]["seed"],
    script:
        "../scripts/sample_windows.py"


rule sample_heldout:
    """The held-out perplexity windows, disjoint from the analysis samples."""
    input:
        corpus=f"resources/corpus/{CORPUS}.parquet",
        model=model_dir,
        code=lib("sampling"),
    output:
        "results/{model}/heldout.parquet",
    log:
        f"{LOGS}/sample_heldout/{{model}}.log",
    benchmark:
        f"{BENCH}/sample_heldout/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        nsamples=config["sampling"]["nsamples"],
        seqlen=lambda wc: window_seqlen(config, wc.model),
        seed=config["sampling"]["seed"],
        windows=config["perplexity"]["windows"],
        ppl_seqlen=lambda wc: cut_seqlen(config, wc.model, "perplexity"),
    script:
        "../scripts/sample_heldout.py"
