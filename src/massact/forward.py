"""The forward-pass driver: one pass per batch of windows, every requested reduction
inside it.

Layer statistics, head scores and head-output means are all computed in the
same pass, so a study never runs the model twice on the same window for them.
Ablations compose from outside: ``with ablate_heads(model, heads): analyse(...)``.
"""

from __future__ import annotations

from contextlib import ExitStack

import pyarrow as pa
import torch

from .arch import adapt
from .heads import HEAD_SAMPLE_SCHEMA, attention_probe, empty_columns, probe_rows
from .runtime import batches, progress
from .stats import StatsRecorder, forward_base


class HeadMeanRecorder:
    """Sum of each head's output (the attention projection's input) over tokens and windows."""

    def __init__(self, arch):
        self.arch = arch
        self.sums = [torch.zeros(arch.n_heads * arch.head_dim, dtype=torch.float64)
                     for _ in arch.blocks]
        self.count = 0

    def hooks(self):
        stack = ExitStack()
        for i, proj in enumerate(self.arch.attn_out):
            h = proj.register_forward_pre_hook(self._hook(i))
            stack.callback(h.remove)
        return stack

    def _hook(self, i):
        def hook(module, args):  # returns None: the input passes unchanged
            x = args[0]
            self.sums[i].add_(x.reshape(-1, x.shape[-1]).sum(0, dtype=torch.float64).cpu())
        return hook

    def table(self) -> pa.Table:
        a = self.arch
        rows = {"layer": [], "head": [], "mean": []}
        for layer, s in enumerate(self.sums):
            m = (s / max(self.count, 1)).float().view(a.n_heads, a.head_dim)
            for h in range(a.n_heads):
                rows["layer"].append(layer)
                rows["head"].append(h)
                rows["mean"].append(m[h].tolist())
        return pa.table(rows, schema=HEAD_MEAN_SCHEMA)


HEAD_MEAN_SCHEMA = pa.schema([("layer", pa.int16()), ("head", pa.int16()),
                              ("mean", pa.list_(pa.float32()))])


def analyse(model, tokenizer, windows: torch.Tensor, *, k: int = 10, stats: bool = True,
            heads: bool = True, targets: list[list[int]] | None = None, head_means: bool = False,
            desc: str = "forward", first_layer: int = 0,
            batch_size: int = 1) -> dict[str, pa.Table]:
    """Run every window once, ``batch_size`` windows per pass; return the requested
    tables (the same, to float32 rounding, for any batch size).

    - ``layer_stats`` (stats): top-k |x|, median and mean per sample and layer;
    - ``head_scores`` (heads): per sample, layer and head, the attention given to
      ``targets[sample]`` (default: key 0);
    - ``head_means`` (head_means): each head's output averaged over tokens and windows.

    ``first_layer`` > 0 (a pass that starts late, inside ``PrefixCache.start``): the layer
    statistics and head scores hold layers ``first_layer`` and after only.
    """
    arch = adapt(model)
    if first_layer and head_means:
        raise ValueError("head means need every layer (first_layer=0)")
    rec = StatsRecorder(arch, tokenizer, k, first_layer) if stats else None
    means = HeadMeanRecorder(arch) if head_means else None
    cols = empty_columns(HEAD_SAMPLE_SCHEMA)
    with ExitStack() as stack:
        if rec:
            stack.enter_context(rec.hooks())
        if means:
            stack.enter_context(means.hooks())
        probe = stack.enter_context(attention_probe(model)) if heads else None
        stack.enter_context(torch.inference_mode())
        bar = progress(None, desc=desc, total=windows.shape[0], unit="window")
        for batch in batches(windows.shape[0], batch_size):
            ids = windows[batch].to(arch.input_device)
            if probe:
                probe.set_targets([targets[s] if targets is not None else [0] for s in batch],
                                  ids.shape[1], ids.device)
            forward_base(arch, ids)
            if rec:
                rec.collect(batch, windows[batch].tolist())
            if probe:
                probe_rows(probe, batch, cols, first_layer)
            if means:
                means.count += ids.numel()
            bar.update(len(batch))
        bar.close()
    out = {}
    if rec:
        out["layer_stats"] = rec.table()
    if probe:
        out["head_scores"] = pa.table(cols, schema=HEAD_SAMPLE_SCHEMA)
    if means:
        out["head_means"] = means.table()
    return out


def layer_stats(model, tokenizer, windows: torch.Tensor, k: int = 10,
                batch_size: int = 1) -> pa.Table:
    """Layer statistics of every window (``batch_size`` windows per forward pass): the
    notebook entry point."""
    return analyse(model, tokenizer, windows, k=k, heads=False,
                   batch_size=batch_size)["layer_stats"]


def head_scores(model, windows: torch.Tensor, targets: list[list[int]] | None = None,
                batch_size: int = 1) -> pa.Table:
    """Per-sample head scores (no layer statistics): the notebook entry point."""
    return analyse(model, None, windows, stats=False, heads=True, targets=targets,
                   desc="score heads", batch_size=batch_size)["head_scores"]
