"""massact: find, score and ablate the massive activations of causal language models.

The notebook API, the same functions the workflow's rules call::

    import massact
    model, tok = massact.load("smollm2-135m")            # resources/models/<key>
    windows = massact.windows_tensor(massact.read_parquet("results/smollm2-135m/samples.parquet"))
    per_sample = massact.head_scores(model, windows)      # attention to token 0, per sample
    scores = massact.head_summary(per_sample)             # = results/<model>/heads/scores.parquet
    stats = massact.layer_stats(model, tok, windows)      # = activations/layer_stats.parquet
    with massact.ablate_heads(model, [(11, 3)]):
        pruned = massact.layer_stats(model, tok, windows)
    massact.changes(stats, pruned)                        # = pruning/<experiment>/changes.parquet
    held = massact.windows_tensor(massact.read_parquet("results/smollm2-135m/heldout.parquet"))
    with massact.ablate_components(model, mlp_layers=[11]):
        nll, tokens = massact.window_nll(model, held)     # per-window nll, as perplexity/*.parquet
"""

from pathlib import Path

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "sources", "materialize_model": "sources", "materialize_corpus": "sources",
    "draw_windows": "sampling", "windows_tensor": "sampling",
    "layer_stats": "forward", "prompt_features": "stats",
    "analyse": "forward", "head_scores": "forward",
    "ablate_heads": "ablation", "ablate_components": "ablation",
    "head_summary": "analysis", "layerwise_summary": "analysis", "changes": "analysis",
    "massive_activations": "analysis",
    "select": "selection", "read_parquet": "io", "adapt": "arch",
    "window_nll": "perplexity", "run_ppl": "perplexity",
    "intervene": "intervention", "massive_mask": "intervention",
    "massive_dim_means": "intervention", "truncate": "sampling",
}


def load(key: str, root: str | Path = ".", device: str = "cpu"):
    """Load the materialized model ``key`` (``<root>/resources/models/<key>``)."""
    from .sources import load_model

    return load_model(Path(root) / "resources" / "models" / key, device=device)


def __getattr__(name):  # lazy: importing massact does not import torch
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["load", *_EXPORTS]
