"""Rule head_scores: per-head mean score over samples, spread, bootstrap CI and ranks."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pyarrow as pa

from massact.analysis import head_summary
from massact.io import read_parquet, write_parquet
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    summary = head_summary(read_parquet(sm.input[0]), sm.params.bootstrap, sm.params.seed)
    write_parquet(pa.Table.from_pandas(summary, preserve_index=False), sm.output[0],
                  sort_by=["layer", "head"])
