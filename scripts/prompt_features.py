"""Rule prompt_features: the full residual stream of every layer for the 3D prompt."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.io import write_parquet
from massact.runtime import rule_context
from massact.sources import load_model
from massact.stats import prompt_features

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    model, tok = load_model(sm.input.model, sm.params.device, device_map=sm.params.device_map)
    write_parquet(prompt_features(model, tok, sm.params.prompt), sm.output[0],
                  sort_by=["layer", "token_pos"])
