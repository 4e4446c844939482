"""Rule feature3d_figure: the 3D |x| picture of one layer for the prompt."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import plots
from massact.errors import UserError
from massact.io import read_parquet
from massact.runtime import rule_context
from massact.analysis import features_array

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    layer = int(sm.wildcards.layer)
    values, tokens = features_array(read_parquet(sm.input[0]), layer)
    if values.size == 0:
        raise UserError(f"model {sm.wildcards.model} has no layer {layer}")
    plots.feature3d(values, tokens, sm.output[0], dpi=sm.params.dpi, n_labels=sm.params.labels,
                    title=f"{sm.wildcards.model}, layer {layer}: |x| for {sm.params.prompt!r}")
