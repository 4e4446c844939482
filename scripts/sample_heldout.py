"""Rule sample_heldout: the held-out perplexity windows, disjoint from the analysis samples."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from transformers import AutoTokenizer

from massact.io import read_parquet, write_parquet
from massact.runtime import rule_context
from massact.sampling import draw_windows, truncate

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    tok = AutoTokenizer.from_pretrained(sm.input.model)
    windows = draw_windows(read_parquet(sm.input.corpus), tok, p.nsamples, p.seqlen, p.seed,
                           split="heldout", n_heldout=p.windows)
    windows = truncate(windows, p.windows, p.ppl_seqlen)
    write_parquet(windows, sm.output[0])
    print(f"{windows.num_rows} held-out windows, their first {p.ppl_seqlen} tokens")
