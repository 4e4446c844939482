"""One small adapter per architecture family: where the named hook sites are.

Like TransformerLens's hook points, but only the handful the study needs:

- ``blocks[i]``     decoder block i; its output is *layer i* (residual stream
                    after the block, before the final norm);
- ``attn_out[i]``   the attention output projection of block i, whose *input*
                    is the concatenation of the heads' outputs (head ablation site);
- ``attn[i]``       the attention module of block i (its output is the attention
                    sublayer's contribution to the residual stream);
- ``mlp[i]``        the module whose output is block i's MLP contribution: the MLP
                    itself, Mixtral's sparse mixture-of-experts block, OPT's ``fc2``,
                    MPT's ``ffn.down_proj`` (MPT's ``ffn`` adds the residual itself);
- ``attn_norm[i]``  a norm between the attention output and the residual stream
                    (Gemma-2/3's ``post_attention_layernorm``), or None.

A family is a :class:`Layout` of attribute paths: adding one is a line in ``LAYOUTS``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from .errors import UserError


@dataclass(frozen=True)
class Layout:
    """Attribute paths of one family's hook sites."""

    base: str  # the decoder stack without the LM head, from the model
    blocks: str  # the list of blocks, from ``base``
    attn: str  # the attention module, from a block
    attn_out: str  # the attention output projection, from a block
    mlp: str  # the module whose output is the MLP's contribution, from a block
    final_norm: str | None  # from ``base``
    attn_norm: str | None = None  # norm applied to the attention output, from a block
    #: attention and MLP read the same input (a callable of the config where it depends)
    parallel: bool | Callable = False
    #: how head scores are read: "interface" (transformers' pluggable attention functions)
    #: or "weights" (the attention module returns its probabilities, eager mode)
    probe: str = "interface"


LLAMA = Layout("model", "layers", "self_attn", "self_attn.o_proj", "mlp", "norm")
GEMMA = replace(LLAMA, attn_norm="post_attention_layernorm")

LAYOUTS = {
    "llama": LLAMA,
    "mistral": LLAMA,
    "mixtral": LLAMA,  # mlp is the sparse mixture-of-experts block
    "qwen2": LLAMA,
    "qwen3": LLAMA,
    "gemma2": GEMMA,
    "gemma3_text": GEMMA,
    "phi": Layout("model", "layers", "self_attn", "self_attn.dense", "mlp", "final_layernorm",
                  parallel=True),
    "gpt_neox": Layout("gpt_neox", "layers", "attention", "attention.dense", "mlp",
                       "final_layer_norm", parallel=lambda c: c.use_parallel_residual),
    "falcon": Layout("transformer", "h", "self_attention", "self_attention.dense", "mlp", "ln_f",
                     parallel=lambda c: c.parallel_attn or c.new_decoder_architecture,
                     probe="weights"),
    "opt": Layout("model.decoder", "layers", "self_attn", "self_attn.out_proj", "fc2",
                  "final_layer_norm"),
    "mpt": Layout("transformer", "blocks", "attn", "attn.out_proj", "ffn.down_proj", "norm_f",
                  probe="weights"),
    "gpt2": Layout("transformer", "h", "attn", "attn.c_proj", "mlp", "ln_f"),
    "gptj": Layout("transformer", "h", "attn", "attn.out_proj", "mlp", "ln_f", parallel=True),
}


@dataclass(frozen=True)
class Arch:
    name: str
    base: nn.Module  # the decoder stack without the LM head
    blocks: list[nn.Module]
    attn: list[nn.Module]
    attn_out: list[nn.Module]
    mlp: list[nn.Module]
    attn_norm: list[nn.Module] | None
    n_heads: int
    head_dim: int
    final_norm: nn.Module | None
    parallel: bool
    probe: str

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def input_device(self) -> torch.device:
        """Where input ids go (the embedding's device; models may span several GPUs)."""
        return self.base.get_input_embeddings().weight.device


def _get(obj, path: str | None):
    return operator.attrgetter(path)(obj) if path else None


def adapt(model) -> Arch:
    """The hook sites of a Hugging Face causal LM."""
    cfg = model.config
    kind = cfg.model_type
    if kind not in LAYOUTS:
        raise UserError(f"unsupported architecture {kind!r}; supported: {', '.join(sorted(LAYOUTS))}")
    lay = LAYOUTS[kind]
    base = _get(model, lay.base)
    blocks = list(_get(base, lay.blocks))
    n_heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    parallel = lay.parallel(cfg) if callable(lay.parallel) else lay.parallel
    return Arch(kind, base, blocks, [_get(b, lay.attn) for b in blocks],
                [_get(b, lay.attn_out) for b in blocks], [_get(b, lay.mlp) for b in blocks],
                [_get(b, lay.attn_norm) for b in blocks] if lay.attn_norm else None,
                n_heads, head_dim, _get(base, lay.final_norm), bool(parallel), lay.probe)


def sliding_window_layers(model) -> dict[int, int]:
    """Layers whose attention only sees the last ``window`` keys: {layer: window}.

    Gemma-2/3 and Qwen2/3 name each layer's kind in ``layer_types``; Mistral declares
    ``sliding_window`` alone, and then every layer slides.
    """
    cfg = model.config
    window = getattr(cfg, "sliding_window", None)
    if not window:
        return {}
    types = getattr(cfg, "layer_types", None)
    if types:
        return {i: int(window) for i, t in enumerate(types) if t == "sliding_attention"}
    if getattr(cfg, "use_sliding_window", True) is False:
        return {}
    return {i: int(window) for i in range(cfg.num_hidden_layers)}
