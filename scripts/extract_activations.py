"""Rule extract_activations: per-sample, per-layer statistics of |x| → Parquet."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import read_parquet, write_parquet
from massact.runtime import resolve_device, rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model
from massact.stats import layer_stats

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    device = resolve_device(sm.params.device)
    model, tok = load_model(sm.input.model, device)
    windows = windows_tensor(read_parquet(sm.input.samples))
    table = layer_stats(model, tok, windows, k=sm.params.topk, device=device)
    write_parquet(table, sm.output[0], sort_by=["sample", "layer", "rank"])
