"""Rule components_table: per component ablation, the change of the massive activation
and of the perplexity, with their intervals."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import components_from_files, in_percent
from massact.io import read_parquet
from massact.tables import write_table
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    _, table = components_from_files(p.ablations, sm.input.changes, sm.input.ppl,
                                     sm.input.ppl_baseline, p.bootstrap, p.seed)
    pct = in_percent(table, [c for c in table.columns if "change" in c and not c.endswith("layer")])
    base_ppl = read_parquet(sm.input.ppl_baseline)["ppl"][0].as_py()
    note = (f"\nBaseline perplexity {base_ppl:.3f} on the held-out windows. layer -1: every layer "
            "at once. change_at_peak: change of the top-1 |x| at the layer where the baseline's "
            "top-1 is largest (peak_layer); change_at_last: at the last layer; max_change: the largest "
            "change over layers. 95% intervals: paired percentile bootstrap over the sweep "
            "windows (changes) and the held-out windows (perplexity); ppl_p: two-sided paired "
            "sign-flip permutation test over windows on the per-window mean nll; ppl_p_floor: "
            "the smallest p-value it can give with that many windows.\n")
    write_table(table, shown=pct, csv=sm.output.csv, md=sm.output.md, html_path=sm.output.html,
                floatfmt="{:.3f}", note=note,
                title=f"{sm.wildcards.model}: attention and MLP sublayers removed one at a time")
