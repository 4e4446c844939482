# Models: materialize any registry key into resources/models/{model}/
# (safetensors in the model's dtype, tokenizer, source.json with sha256 of every file).


rule materialize_model:
    """Any registry key → resources/models/{model}/."""
    output:
        directory("resources/models/{model}"),
    log:
        f"{LOGS}/materialize_model/{{model}}.log",
    benchmark:
        f"{BENCH}/materialize_model/{{model}}.tsv"
    priority: CORE
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=mem_materialize,
        runtime=30,
    params:
        spec=lambda wc: source_spec(wc.model),
        downloads="resources/downloads",
    script:
        "../scripts/materialize_model.py"
