"""Rule pruning_figures: baseline vs pruned per layer, one figure per experiment."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import yaml

from massact import plots
from massact.analysis import head_label
from massact.io import read_parquet
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    for e, changes, heads, out in zip(sm.params.names, sm.input.changes, sm.input.heads,
                                      sm.output):
        with open(heads) as f:
            label = ", ".join(head_label(l, h) for l, h in yaml.safe_load(f)["heads"])
        plots.pruning(read_parquet(changes).to_pandas(), out,
                      title=f"{sm.wildcards.model}: pruning '{e}' ({label})",
                      dpi=sm.params.dpi, log_scale=sm.params.log_scale)
