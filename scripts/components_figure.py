"""Rule components_figure: which component creates the massive activation, at which layer."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import components_summary
from massact.io import read_parquet
from massact.perplexity import compare
from massact.plots import components
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    base = read_parquet(sm.input.ppl_baseline)
    ch = {a: read_parquet(f).to_pandas() for a, f in zip(p.ablations, sm.input.changes)}
    ppl = {}
    for a, f in zip(p.ablations, sm.input.ppl):
        t = read_parquet(f)
        ppl[a] = {**t.select(["ppl", "ppl_lo", "ppl_hi"]).to_pylist()[0],
                  **compare(base, t, p.bootstrap, p.seed)}
    components(ch, components_summary(ch, ppl), sm.output[0], sm.wildcards.model, dpi=p.dpi)
