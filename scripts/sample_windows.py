"""Rule sample_windows: seeded token windows of the corpus for one model."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from transformers import AutoTokenizer

from massact.io import read_parquet, write_parquet
from massact.runtime import rule_context
from massact.sampling import draw_windows

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    tok = AutoTokenizer.from_pretrained(sm.input.model)
    windows = draw_windows(read_parquet(sm.input.corpus), tok, sm.params.nsamples,
                           sm.params.seqlen, sm.params.seed)
    write_parquet(windows, sm.output[0])
    print(f"{windows.num_rows} windows of {sm.params.seqlen} tokens")
