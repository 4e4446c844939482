"""Rule layerwise_figure: top-1/2/3 and median |x| per layer."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import analysis, plots
from massact.io import read_parquet
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    summary = analysis.layerwise_summary(read_parquet(sm.input[0]))
    plots.layerwise(summary, sm.output[0], title=sm.wildcards.model, dpi=sm.params.dpi,
                    log_scale=sm.params.log_scale)
