"""Rule perplexity_baseline: the unmodified model's perplexity on the held-out windows."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import read_parquet, write_parquet
from massact.perplexity import run_ppl
from massact.runtime import batch_size, rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    model, _ = load_model(sm.input.model, sm.params.device, device_map=sm.params.device_map,
                          tokenizer=False)
    heldout = windows_tensor(read_parquet(sm.input.heldout))
    table = run_ppl(model, heldout, "baseline", sm.params.bootstrap, sm.params.seed,
                    batch_size=batch_size(sm.params.batch_tokens, heldout))
    write_parquet(table, sm.output[0])
    print(f"baseline perplexity {table['ppl'][0].as_py():.3f}")
