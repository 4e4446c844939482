"""One small adapter per architecture: where the named hook sites are.

Like TransformerLens's hook points, but only the handful the study needs:

- ``blocks[i]``     decoder block i; its output is *layer i* (residual stream
                    after the block, before the final norm);
- ``attn_out[i]``   the attention output projection of block i, whose *input*
                    is the concatenation of the heads' outputs (ablation site);
- ``attn[i]``       the attention module of block i (its output is added to
                    the residual stream);
- ``mlp[i]``        the MLP of block i.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import UserError


@dataclass(frozen=True)
class Arch:
    name: str
    base: nn.Module  # the decoder stack without the LM head
    blocks: list[nn.Module]
    attn: list[nn.Module]
    attn_out: list[nn.Module]
    mlp: list[nn.Module]
    n_heads: int
    head_dim: int
    final_norm: nn.Module

    @property
    def n_layers(self) -> int:
        return len(self.blocks)


def _gpt2(model) -> Arch:
    t = model.transformer
    cfg = model.config
    return Arch("gpt2", t, list(t.h), [b.attn for b in t.h], [b.attn.c_proj for b in t.h],
                [b.mlp for b in t.h], cfg.n_head, cfg.n_embd // cfg.n_head, t.ln_f)


def _llama_like(model) -> Arch:
    m = model.model
    cfg = model.config
    layers = list(m.layers)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return Arch(cfg.model_type, m, layers, [b.self_attn for b in layers],
                [b.self_attn.o_proj for b in layers], [b.mlp for b in layers],
                cfg.num_attention_heads, head_dim, m.norm)


ADAPTERS = {
    "gpt2": _gpt2,
    "llama": _llama_like,
    "gemma3_text": _llama_like,
}


def adapt(model) -> Arch:
    """The hook sites of a Hugging Face causal LM."""
    kind = model.config.model_type
    if kind not in ADAPTERS:
        raise UserError(f"unsupported architecture {kind!r}; supported: {sorted(ADAPTERS)}")
    return ADAPTERS[kind](model)


def sliding_window_layers(model) -> dict[int, int]:
    """Layers whose attention only sees the last ``window`` keys: {layer: window}."""
    cfg = model.config
    types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)
    if not types or not window:
        return {}
    return {i: int(window) for i, t in enumerate(types) if t == "sliding_attention"}
