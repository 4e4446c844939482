"""Ablating (pruning) heads and whole components with hooks; no weight is ever edited.

A head's output is removed from the sum that the attention output projection
forms: a forward pre-hook sets that head's slice of the projection's *input* to
zero (or to the head's mean output, for mean-ablation). The projection's bias
stays. For GPT-2 this is what ``prune_heads`` computed; for Llama and Gemma it
equals zeroing the projection's input columns of the head. Leaving the context
removes every hook: the model is exactly as before.

Where a norm follows the attention output (Gemma-2/3's ``post_attention_layernorm``),
removing heads also rescales the remaining ones through that norm. ``post_norm="frozen"``
keeps the norm's scale at the value the unablated output gives in the same pass (the
norm becomes linear in the heads, so the removed heads' share is subtracted and nothing
else moves); ``"live"`` (the default) lets the norm see the ablated output.

Components: ``attn`` removes a whole attention sublayer's contribution to the
residual stream (its output, bias included), ``mlp`` a whole MLP's.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack, contextmanager

import torch

from .arch import adapt
from .errors import UserError

MODES = ("zero", "mean")
POST_NORMS = ("live", "frozen")


def _check(heads, n_layers, n_heads):
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise UserError(f"head L{layer}H{head} is outside the model "
                            f"({n_layers} layers × {n_heads} heads)")


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@contextmanager
def ablate_heads(model, heads, mode: str = "zero", means: dict | None = None,
                 post_norm: str = "live"):
    """Remove ``heads`` ([(layer, head), ...]) for the duration of the context.

    ``mode="mean"`` replaces each head's output by ``means[(layer, head)]`` (a
    vector of head_dim, e.g. from :func:`massact.forward.analyse` ``head_means``).
    ``post_norm`` matters only where an RMS norm follows the attention output (see the
    module's docstring).
    """
    if mode not in MODES:
        raise UserError(f"ablation mode must be one of {MODES}, not {mode!r}")
    if post_norm not in POST_NORMS:
        raise UserError(f"post_norm must be one of {POST_NORMS}, not {post_norm!r}")
    arch = adapt(model)
    heads = sorted({(int(l), int(h)) for l, h in heads})
    _check(heads, arch.n_layers, arch.n_heads)
    if mode == "mean" and means is None:
        raise UserError("mean-ablation needs the heads' mean outputs")
    by_layer = defaultdict(list)
    for layer, head in heads:
        by_layer[layer].append(head)
    d = arch.head_dim
    frozen = post_norm == "frozen" and arch.attn_norm is not None
    scale: dict[int, torch.Tensor] = {}  # per layer: RMS of the unablated attention output

    def make_hook(layer, hs):
        idx = torch.tensor(hs)
        fill = (torch.stack([torch.as_tensor(means[(layer, h)], dtype=torch.float32) for h in hs])
                if mode == "mean" else None)
        norm = arch.attn_norm[layer] if frozen else None

        def hook(module, args):
            x = args[0]
            if norm is not None:  # .forward: the unablated output, without the hooks
                scale[layer] = _rms(module.forward(x), _eps(norm))
            y = x.reshape(*x.shape[:-1], arch.n_heads, d).clone()
            if fill is None:
                y[..., idx, :] = 0
            else:
                y[..., idx, :] = fill.to(y.dtype).to(y.device)
            return (y.reshape(x.shape), *args[1:])

        return hook

    def freeze(layer):
        def hook(module, args, output):  # norm(x) = x / rms(x) · g  →  x / rms(unablated) · g
            ratio = _rms(args[0], _eps(module)) / scale.pop(layer)
            return (output.float() * ratio).to(output.dtype)
        return hook

    with ExitStack() as stack:
        for layer, hs in by_layer.items():
            h = arch.attn_out[layer].register_forward_pre_hook(make_hook(layer, hs))
            stack.callback(h.remove)
            if frozen:
                h = arch.attn_norm[layer].register_forward_hook(freeze(layer))
                stack.callback(h.remove)
        yield heads


def post_norm_used(model, post_norm: str) -> str:
    """What a head ablation of ``model`` did with a post-attention norm: ``live``,
    ``frozen``, or ``none`` (the family has no norm after the attention output)."""
    return post_norm if adapt(model).attn_norm is not None else "none"


def _eps(norm) -> float:
    for name in ("eps", "variance_epsilon", "epsilon"):
        if hasattr(norm, name):
            return float(getattr(norm, name))
    raise UserError(f"cannot freeze {type(norm).__name__}: it declares no epsilon")


def _zero_output(module, args, output):
    if isinstance(output, tuple):
        return (torch.zeros_like(output[0]), *output[1:])
    return torch.zeros_like(output)


@contextmanager
def ablate_components(model, attn_layers=(), mlp_layers=()):
    """Remove whole attention sublayers and/or MLPs (their output becomes zero)."""
    arch = adapt(model)
    with ExitStack() as stack:
        for kind, layers, mods in (("attn", attn_layers, arch.attn), ("mlp", mlp_layers, arch.mlp)):
            for layer in layers:
                if not 0 <= layer < arch.n_layers:
                    raise UserError(f"{kind} layer {layer} is outside the model (0..{arch.n_layers - 1})")
                h = mods[layer].register_forward_hook(_zero_output)
                stack.callback(h.remove)
        yield


def means_from_table(table) -> dict:
    """{(layer, head): mean vector} from a head_means table."""
    d = table.to_pydict()
    return {(l, h): m for l, h, m in zip(d["layer"], d["head"], d["mean"])}
