"""Rule head_selection: every named head set, from the scores and the config's rules."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import read_parquet, write_yaml
from massact.runtime import rule_context
from massact.selection import select, tested

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    scores = read_parquet(sm.input[0]).to_pandas()
    rules = dict(sm.params.rules)
    sets = {name: select(scores, rule, tested(rules)) for name, rule in rules.items()}
    write_yaml(sets, sm.output[0])
    for name, heads in sets.items():
        print(name, heads)
