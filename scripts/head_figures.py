"""Rule head_figures: the heads' scores as a heatmap and by layer."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import plots
from massact.io import read_parquet
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    s = read_parquet(sm.input[0]).to_pandas()
    title = sm.wildcards.model + (" (massive tokens)" if sm.wildcards.target else "")
    # sliding-window layers score only the queries that can see the target: say so
    nq = s.groupby("layer")["n_queries"].mean()
    short = nq[nq < nq.max()]
    note = ""
    if len(short):
        note = (f"sliding-window layers {', '.join(map(str, short.index))} scored only the "
                f"~{short.mean():.0f} queries (of {nq.max():.0f}) that can see the target")
    plots.head_heatmap(s, sm.output.heatmap, title, dpi=sm.params.dpi, note=note)
    plots.head_ranking(s, sm.output.ranking, title, dpi=sm.params.dpi)
