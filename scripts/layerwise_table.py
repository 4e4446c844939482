"""Rule layerwise_table: the per-layer statistics table (CSV and Markdown)."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import analysis
from massact.io import read_parquet, write_text
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = analysis.layerwise_table(analysis.layerwise_summary(read_parquet(sm.input[0])))
    write_text(table.to_csv(index=False, float_format="%.6g"), sm.output.csv)
    write_text(analysis.to_markdown(table), sm.output.md)
