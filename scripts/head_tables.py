"""Rule head_tables: the top and bottom heads, as CSV and Markdown."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import heads_table, to_markdown
from massact.io import read_parquet, write_text
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    s = read_parquet(sm.input[0]).to_pandas()
    for name, n, top in (("top", sm.params.n_top, True), ("bottom", sm.params.n_bottom, False)):
        t = heads_table(s, n, top)
        write_text(t.to_csv(index=False, float_format="%.6g"), sm.output[f"{name}_csv"])
        write_text(to_markdown(t, floatfmt="{:.4f}"), sm.output[f"{name}_md"])
