"""Rule pruning_figure: baseline vs pruned per layer for one experiment."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import yaml

from massact import plots
from massact.analysis import head_label
from massact.io import read_parquet
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    with open(sm.input.heads) as f:
        heads = yaml.safe_load(f)["heads"]
    label = ", ".join(head_label(l, h) for l, h in heads)
    plots.pruning(read_parquet(sm.input.changes).to_pandas(), sm.output[0],
                  title=f"{sm.wildcards.model}: pruning '{sm.wildcards.experiment}' ({label})",
                  dpi=sm.params.dpi, log_scale=sm.params.log_scale)
