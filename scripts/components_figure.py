"""Rule components_figure: which component creates the massive activation, at which layer."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import components_from_files
from massact.plots import components
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    ch, summary = components_from_files(p.ablations, sm.input.changes, sm.input.ppl,
                                        sm.input.ppl_baseline, p.bootstrap, p.seed)
    components(ch, summary, sm.output[0], sm.wildcards.model, dpi=p.dpi)
