"""Rule head_tables: the top and bottom heads, as CSV, Markdown and HTML."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import heads_table
from massact.io import read_parquet
from massact.runtime import rule_context
from massact.tables import write_table

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    s = read_parquet(sm.input[0]).to_pandas()
    for name, n, top in (("top", sm.params.n_top, True), ("bottom", sm.params.n_bottom, False)):
        t = heads_table(s, n, top)
        target = "every massive-activation token" if sm.wildcards.target else "the first token"
        write_table(t, csv=sm.output[f"{name}_csv"], md=sm.output[f"{name}_md"],
                    html_path=sm.output[f"{name}_html"], floatfmt="{:.4f}",
                    title=f"{sm.wildcards.model}: the {n} {name} heads by attention to {target}",
                    note="score: the attention probability the queries give to the target "
                         "tokens, averaged over queries and samples (std over samples; ci_low / "
                         "ci_high: bootstrap 95% interval over samples); n_queries: the queries "
                         "that could see a target, per sample.")
