"""Rule score_heads_massive: attention to every token that carries a massive activation."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.analysis import massive_positions
from massact.forward import head_scores
from massact.io import read_parquet, write_parquet
from massact.runtime import batch_size, rule_context
from massact.sampling import windows_tensor
from massact.sources import load_model

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    model, _ = load_model(sm.input.model, sm.params.device, device_map=sm.params.device_map,
                          tokenizer=False)
    windows = windows_tensor(read_parquet(sm.input.samples))
    targets = massive_positions(read_parquet(sm.input.stats), sm.params.ratio_threshold,
                                sm.params.abs_threshold, windows.shape[0])
    print("massive-token positions per sample:", targets)
    table = head_scores(model, windows, targets=targets, 
                        batch_size=batch_size(sm.params.batch_tokens, windows))
    write_parquet(table, sm.output[0], sort_by=["sample", "layer", "head"])
