"""Rule extract_activations: one pass per sample → layer statistics, head scores, head means."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import read_parquet, write_parquet
from massact.runtime import batch_size, rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model
from massact.forward import analyse

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    model, tok = load_model(sm.input.model, sm.params.device, device_map=sm.params.device_map)
    windows = windows_tensor(read_parquet(sm.input.samples))
    out = analyse(model, tok, windows, k=sm.params.topk, heads=True, head_means=True,
                  batch_size=batch_size(sm.params.batch_tokens, windows))
    write_parquet(out["layer_stats"], sm.output.stats, sort_by=["sample", "layer", "rank"])
    write_parquet(out["head_scores"], sm.output.heads, sort_by=["sample", "layer", "head"])
    write_parquet(out["head_means"], sm.output.means, sort_by=["layer", "head"])
