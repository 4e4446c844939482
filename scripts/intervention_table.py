"""Rule intervention_table: the paper's table, perplexity with the massive activations set
to zero or to their mean, against as many random ordinary activations."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pandas as pd

from massact.analysis import in_percent
from massact.io import read_parquet
from massact.tables import write_table
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    paths = [f for f in sm.input if f.endswith(".parquet")]
    df = pd.concat([read_parquet(f).to_pandas() for f in paths]).drop(columns="window_nll")
    show = in_percent(df, ("ppl_change", "ppl_change_lo", "ppl_change_hi"))
    show["layer"] = show["layer"].map(lambda l: "every" if l == -1 else str(l))
    note = ("\nPerplexity on the held-out windows with the entries of one layer's output replaced. "
            "massive: every entry above the config's thresholds in each window; control: as many "
            "random ordinary entries. zero: set to 0; mean: set to a mean signed value over the "
            "analysis samples: an entry whose (position, dimension) is massive in at least half "
            "of them (and in two) gets that pair's mean, as a fixed bias would; any other its "
            "dimension's mean over all its massive entries (control: the dimension's mean over "
            "the window's ordinary entries). entries_per_window: entries replaced per window. "
            "95% intervals: bootstrap over windows; p_vs_baseline / p_vs_control: two-sided "
            "paired sign-flip permutation test on the per-window mean nll; p_floor: the "
            "smallest p-value that test can give with n_windows windows. "
            "Layer every (-1 in the CSV): the same at the output of every block at once, in one "
            "pass, each layer with its own means and thresholds applied to the stream as it "
            "arrives there.\n")
    write_table(df, shown=show, csv=sm.output.csv, md=sm.output.md, html_path=sm.output.html,
                floatfmt="{:.3f}", note=note,
                title=f"{sm.wildcards.model}: the massive activations set to zero or their mean")
