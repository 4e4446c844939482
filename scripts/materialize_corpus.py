"""Rule materialize_corpus: the configured corpus → resources/corpus/{corpus}.parquet."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.runtime import rule_context
from massact.corpora import materialize_corpus

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    spec = dict(sm.params.spec)
    if spec["source"] == "files":
        spec["files"] = list(sm.input.files)  # resolved by the rule, tracked as inputs
    n = materialize_corpus(sm.wildcards.corpus, spec, sm.output[0], sm.params.downloads)
    print(f"corpus {sm.wildcards.corpus}: {n} documents")
