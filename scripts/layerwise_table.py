"""Rule layerwise_table: the per-layer statistics table (CSV, Markdown, HTML)."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import analysis
from massact.io import read_parquet
from massact.runtime import rule_context
from massact.tables import write_table

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = analysis.layerwise_table(analysis.layerwise_summary(read_parquet(sm.input[0])))
    write_table(table, csv=sm.output.csv, md=sm.output.md, html_path=sm.output.html,
                title=f"{sm.wildcards.model}: |x| per layer",
                note="Per layer (the residual stream after each block): the mean over samples of "
                     "the three largest |x| and of the median |x|; ratio = top1 / median; where "
                     "the top-1 sits (token position, token, feature dimension) in most samples "
                     "and in what share of them (top1_share).")
