"""Rule component_ablation: one component ablation's changes and perplexity, taken from
the model's long tables, as files of their own."""

import _srcpath  # noqa: F401  (src/ on sys.path)

import pyarrow.compute as pc

from massact.io import read_parquet, write_parquet
from massact.errors import UserError
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    a = sm.wildcards.ablation
    ch = read_parquet(sm.input.changes)
    ppl = read_parquet(sm.input.ppl)
    one = ch.filter(pc.equal(ch["ablation"], a))
    if not one.num_rows:
        raise UserError(f"{a} is not one of this model's component ablations "
                        f"({', '.join(dict.fromkeys(ch['ablation'].to_pylist()))})")
    write_parquet(one.drop_columns(["ablation"]), sm.output.changes)
    write_parquet(ppl.filter(pc.equal(ppl["run"], a)), sm.output.ppl)
