"""Rule cumulative_figure: how many heads must go before the massive activation or the
model breaks."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import read_parquet
from massact.plots import cumulative
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    cumulative(read_parquet(sm.input.rows).to_pandas(), sm.output[0], sm.wildcards.model,
               dpi=sm.params.dpi)
