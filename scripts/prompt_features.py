"""Rule prompt_features: the full residual stream of every layer for the 3D prompt."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import write_parquet
from massact.runtime import resolve_device, rule_context
from massact.sources import load_model
from massact.stats import prompt_features

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    device = resolve_device(sm.params.device)
    model, tok = load_model(sm.input.model, device)
    write_parquet(prompt_features(model, tok, sm.params.prompt, device), sm.output[0],
                  sort_by=["layer", "token_pos"])
