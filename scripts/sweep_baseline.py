"""Rule sweep_baseline: layer statistics of the sweep windows (the first analysis
windows, cut short) for the component and cumulative sweeps to compare against."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.forward import analyse
from massact.io import read_parquet, write_parquet
from massact.runtime import batch_size, rule_context
from massact.sampling import truncate, windows_tensor
from massact.sources import load_model

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    p = sm.params
    model, tok = load_model(sm.input.model, p.device, device_map=p.device_map)
    windows = truncate(read_parquet(sm.input.samples), p.samples, p.seqlen)
    write_parquet(windows, sm.output.windows)
    ids = windows_tensor(windows)
    out = analyse(model, tok, ids, k=p.topk, heads=False, desc="sweep baseline",
                  batch_size=batch_size(p.batch_tokens, ids))
    write_parquet(out["layer_stats"], sm.output.stats, sort_by=["sample", "layer", "rank"])
