"""Rule feature3d_compare: a layer's 3D picture before/after pruning, and the difference."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import yaml

from massact import plots
from massact.analysis import head_label
from massact.io import read_parquet
from massact.runtime import rule_context
from massact.analysis import features_array

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    layer = int(sm.wildcards.layer)
    before, tokens = features_array(read_parquet(sm.input.baseline), layer)
    after, _ = features_array(read_parquet(sm.input.pruned), layer)
    with open(sm.input.heads) as f:
        label = ", ".join(head_label(l, h) for l, h in yaml.safe_load(f)["heads"])
    title = f"{sm.wildcards.model}, layer {layer}: {sm.params.prompt!r}"
    plots.feature3d_compare(before, after, tokens, sm.output.compare, title, label,
                            dpi=sm.params.dpi, n_labels=sm.params.labels)
    plots.feature3d_difference(before, after, tokens, sm.output.difference, title, label,
                               dpi=sm.params.dpi)
