"""Rule massive_table: every massive activation found, by the configured thresholds."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact import analysis
from massact.io import read_parquet, write_text
from massact.runtime import rule_context

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    found = analysis.massive_activations(read_parquet(sm.input[0]), sm.params.ratio_threshold,
                                         sm.params.abs_threshold)
    write_text(found.to_csv(index=False, float_format="%.6g"), sm.output[0])
    print(f"{len(found)} massive activations")
