# Corpus: materialize the configured corpus, then draw seeded token windows per model.


def corpus_files(wildcards):
    """Local files of a `files` corpus, so that editing them re-runs the corpus."""
    spec = config["corpora"][wildcards.corpus]
    if spec["source"] != "files":
        return []
    return sorted(
        f
        for pattern in spec["files"]
        for f in glob.glob(os.path.join(workflow.basedir, pattern))
        + glob.glob(pattern)
    )


rule materialize_corpus:
    input:
        files=corpus_files,
    output:
        "resources/corpus/{corpus}.parquet",
    params:
        spec=lambda wc: config["corpora"][wc.corpus],
        downloads="resources/downloads",
    log:
        f"{LOGS}/materialize_corpus/{{corpus}}.log",
    benchmark:
        f"{BENCH}/materialize_corpus/{{corpus}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/materialize_corpus.py"


rule sample_windows:
    input:
        corpus=f"resources/corpus/{CORPUS}.parquet",
        model=model_dir,
    output:
        "results/{model}/samples.parquet",
    params:
        nsamples=config["sampling"]["nsamples"],
        seqlen=config["sampling"]["seqlen"],
        seed=config["sampling"]["seed"],
    log:
        f"{LOGS}/sample_windows/{{model}}.log",
    benchmark:
        f"{BENCH}/sample_windows/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/sample_windows.py"
