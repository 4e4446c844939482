"""Rule pruning_overview: every experiment's top-1 change per layer, random as a band."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import plots
from massact.analysis import controls
from massact.io import read_parquet
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    ch = {e: read_parquet(p).to_pandas() for e, p in zip(sm.params.experiments, sm.input.changes)}
    randoms, _, matched = controls(dict(sm.params.rules))
    plots.pruning_overview(ch, sm.output[0], sm.wildcards.model, dpi=sm.params.dpi,
                           randoms=randoms, matched=matched)
