"""Rule prune_prompt: the prompt's residual stream with the compared heads removed."""

import _srcpath  # noqa: F401  (src/ on sys.path)

from massact.ablation import ablate_heads, means_from_table, post_norm_used
from massact.io import read_parquet, write_parquet, write_yaml
from massact.runtime import rule_context
from massact.selection import select
from massact.sources import load_model
from massact.stats import prompt_features

with rule_context(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    layer = int(sm.wildcards.layer)
    heads = sm.params.heads or select(read_parquet(sm.input.scores).to_pandas(),
                                      {"top_in_layers": [layer]})
    model, tok = load_model(sm.input.model, sm.params.device, device_map=sm.params.device_map)
    means = means_from_table(read_parquet(sm.input.means)) if sm.params.mode == "mean" else None
    with ablate_heads(model, heads, mode=sm.params.mode, means=means,
                      post_norm=sm.params.post_norm):
        table = prompt_features(model, tok, sm.params.prompt)
    write_parquet(table, sm.output.features, sort_by=["layer", "token_pos"])
    write_yaml({"layer": layer, "heads": heads, "mode": sm.params.mode,
                "post_norm": post_norm_used(model, sm.params.post_norm)}, sm.output.heads)
