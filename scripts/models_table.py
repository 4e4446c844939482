"""Rule models_table: per model, where the massive activations form, their size and
dimensions, the top head, and the pruning, component and intervention headlines."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pandas as pd

from massact.analysis import in_percent, model_headlines
from massact.tables import write_table
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    i = sm.input
    rows = []
    for j, m in enumerate(sm.params.models):
        lw = pd.read_csv(i.layerwise[j])
        rows.append(model_headlines(m, lw, pd.read_csv(i.massive[j]), pd.read_csv(i.heads[j]),
                                    pd.read_csv(i.pruning[j]), pd.read_csv(i.components[j]),
                                    pd.read_csv(i.intervention[j]), n_layers=len(lw)))
    table = pd.DataFrame(rows)
    pct = in_percent(table, [c for c in table.columns if c.startswith(("prune_", "ppl_"))])
    note = ("\nmassive_layers: layers with an entry above the config's thresholds in any sample; "
            "peak_top1: the largest mean top-1 |x| over layers (peak_ratio: over the median); "
            "dims: the most frequent massive dimensions; top_head: the highest first-token "
            "score. prune_top/bottom_change: mean top-1 change over layers when the top/bottom "
            "head set is removed, and its perplexity change. attn/mlp_layer_most_needed: the "
            "single layer whose removal lowers the peak-layer top-1 most. ppl_zero/mean_massive: "
            "perplexity change with the massive activations set to zero / their mean at the "
            "first intervention layer (_every: at every layer at once). Intervals and tests: "
            "the per-model tables.\n")
    write_table(table, shown=pct, csv=sm.output.csv, md=sm.output.md, html_path=sm.output.html,
                floatfmt="{:,.2f}", note=note, title="Every model: the headlines")
