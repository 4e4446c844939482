"""Head scores: how much attention each head gives to target key positions.

**Score** (DESIGN.md): for layer l and head h, the attention probability that the
query positions q ≥ 1 give to key position 0, averaged over q, then over samples.
With a *set* of target keys (e.g. every token that carries a massive activation),
it is the summed probability of the targets, averaged over the queries strictly
after a target they can see.

No attention map is materialized. The fused SDPA kernel computes
``softmax(q kᵀ) v``; appending to every value vector an indicator column, 1 at
the target keys and 0 elsewhere (and a zero column to queries and keys so that
all widths agree), makes that column of the output exactly the probability
each query gives to the targets. The head's real output is the other columns,
unchanged, so the forward pass goes on as usual.

Where a family has no SDPA (Gemma-2, whose soft-capped logits SDPA cannot
compute) the family's own eager attention runs and its weights are read; Falcon
and MPT, which compute attention inside their modules rather than through
transformers' attention functions, run eagerly and their modules' returned
weights are read by hooks. Every route gives the same scores (tests).

Sliding-window layers (Gemma-2/3, Mistral): a query more than ``window - 1``
positions after a target cannot see it; such queries are not scored, and the
number of queries that were (``n_queries``) is recorded per layer.
"""

from __future__ import annotations

from contextlib import contextmanager

import pyarrow as pa
import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

from .arch import adapt, sliding_window_layers

PROBE = "massact_probe"

HEAD_SAMPLE_SCHEMA = pa.schema([
    ("sample", pa.int32()),
    ("layer", pa.int16()),
    ("head", pa.int16()),
    ("score", pa.float32()),       # mean probability given to the targets
    ("n_queries", pa.int32()),     # queries that could see a target (and were averaged)
])


class Probe:
    """Per-forward state: each window's target keys and, after the pass, the per-head
    scores of every window of the batch."""

    def __init__(self, windows: dict[int, int]):
        self.windows = windows  # sliding-window layers: {layer: window}
        self.indicator: torch.Tensor | None = None
        self.targets: list[list[int]] = [[0]]
        self.scores: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def set_targets(self, positions, seqlen: int, device) -> None:
        """``positions``: the target keys of each window of the batch (a list of lists),
        or one list for a batch of one window."""
        if not positions or not isinstance(positions[0], (list, tuple)):
            positions = [positions]
        self.targets = [sorted(set(int(p) for p in pos)) for pos in positions]
        ind = torch.zeros(len(self.targets), seqlen, device=device)
        for b, t in enumerate(self.targets):
            ind[b, t] = 1.0
        self.indicator = ind
        self.scores.clear()

    def eligible(self, layer: int, seqlen: int, device) -> torch.Tensor:
        """(batch, queries): queries strictly after a target they can see (q - t < window)."""
        q = torch.arange(seqlen, device=device)[:, None]
        w = self.windows.get(layer)
        rows = []
        for targets in self.targets:
            t = torch.tensor(targets, dtype=torch.long, device=device)[None, :]
            ok = q > t
            if w is not None:
                ok &= (q - t) < w
            rows.append(ok.any(dim=1))
        return torch.stack(rows)

    def record(self, layer: int, probs: torch.Tensor) -> None:
        """``probs``: (batch, tokens, heads) probability of the targets per query."""
        mask = self.eligible(layer, probs.shape[1], probs.device)  # (batch, tokens)
        n = mask.sum(1)
        m = mask.to(torch.float32)[..., None]
        mean = (probs.float() * m).sum(1) / n.clamp(min=1)[:, None]
        mean[n == 0] = float("nan")
        self.scores[layer] = (mean.cpu(), n.cpu())

    def record_weights(self, layer: int, weights: torch.Tensor) -> None:
        """``weights``: (batch, heads, queries, keys) attention probabilities."""
        ind = self.indicator.to(weights.device, torch.float32)
        self.record(layer, (weights.float() * ind[:, None, None, :]).sum(-1).transpose(1, 2))


def _eager_function(module):
    """The eager attention function of ``module``'s own modeling code (it keeps every
    detail of the family, e.g. Gemma-2's soft-capping of the attention logits)."""
    import sys

    return sys.modules[type(module).__module__].eager_attention_forward


def probe_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kw):
    """The family's attention, plus each head's probability of the target keys.

    SDPA route: an indicator column on the values; eager route (models without SDPA,
    such as Gemma-2 with its soft-capped logits): the attention weights themselves.
    """
    probe: Probe | None = getattr(module, "_massact_probe", None)
    eager = module.config._attn_implementation == PROBE_EAGER
    if eager:
        out, weights = _eager_function(module)(module, query, key, value, attention_mask,
                                               dropout=dropout, scaling=scaling, **kw)
        if probe is not None and probe.indicator is not None:
            probe.record_weights(module.layer_idx, weights)
        return out, weights
    if probe is None or probe.indicator is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kw)
    d = value.shape[-1]
    if scaling is None:
        scaling = query.shape[-1] ** -0.5  # the default for the unpadded width
    b, h_kv, t, _ = value.shape
    ind = probe.indicator.to(value.device, value.dtype)[:, None, :, None].expand(b, h_kv, t, 1)
    out, _ = sdpa_attention_forward(module, F.pad(query, (0, 1)), F.pad(key, (0, 1)),
                                    torch.cat([value, ind], dim=-1), attention_mask,
                                    dropout=dropout, scaling=scaling, **kw)
    # out: (batch, tokens, heads, d + 1)
    probe.record(module.layer_idx, out[..., d])
    return out[..., :d], None


PROBE_EAGER = PROBE + "_eager"
AttentionInterface.register(PROBE, probe_attention)
AttentionMaskInterface.register(PROBE, sdpa_mask)
AttentionInterface.register(PROBE_EAGER, probe_attention)
AttentionMaskInterface.register(PROBE_EAGER, eager_mask)


@contextmanager
def attention_probe(model):
    """Read each head's attention to the targets for the duration; yields the :class:`Probe`.

    Families whose attention goes through transformers' pluggable attention functions
    switch to the probing function (SDPA with an indicator column, or the family's
    eager function where the model has no SDPA); the others (Falcon, MPT) run eagerly
    and their attention modules' returned probabilities are read by forward hooks.
    """
    arch = adapt(model)
    probe = Probe(sliding_window_layers(model))
    before = model.config._attn_implementation
    handles = []
    if arch.probe == "interface":
        model.set_attn_implementation(PROBE if type(model)._supports_sdpa else PROBE_EAGER)
        for attn in arch.attn:
            attn._massact_probe = probe
    else:  # their modules read the config directly (and refuse set_attn_implementation)
        model.config._attn_implementation = "eager"
        for layer, attn in enumerate(arch.attn):
            handles.append(attn.register_forward_hook(
                lambda m, a, out, layer=layer: probe.record_weights(layer, out[1])))
    try:
        yield probe
    finally:
        for h in handles:
            h.remove()
        for attn in arch.attn:
            if hasattr(attn, "_massact_probe"):
                del attn._massact_probe
        if arch.probe == "interface":
            model.set_attn_implementation(before)
        else:
            model.config._attn_implementation = before


def probe_rows(probe: Probe, samples, cols: dict, first_layer: int = 0) -> None:
    """Append the per-head scores of the batch's windows (``samples``: their sample
    numbers, in batch order; an int for a batch of one) to ``cols`` (HEAD_SAMPLE_SCHEMA),
    for layers ``first_layer`` and after."""
    if isinstance(samples, int):
        samples = [samples]
    for b, sample in enumerate(samples):
        for layer in sorted(l for l in probe.scores if l >= first_layer):
            mean, n = probe.scores[layer]
            for h, v in enumerate(mean[b].tolist()):
                cols["sample"].append(sample)
                cols["layer"].append(layer)
                cols["head"].append(h)
                cols["score"].append(v)
                cols["n_queries"].append(int(n[b]))


def empty_columns(schema: pa.Schema) -> dict:
    return {f.name: [] for f in schema}
