"""Rule models_layerwise: the top-1/median ratio per layer of every model, depth normalized."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pandas as pd

from massact.plots import models_layerwise
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    csvs = [f for f in sm.input if f.endswith(".csv")]
    models_layerwise({m: pd.read_csv(f) for m, f in zip(sm.params.models, csvs)}, sm.output[0],
                     dpi=sm.params.dpi)
