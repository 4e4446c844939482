"""Setting the massive activations themselves to zero or to their mean (Sun et al., §3).

At one layer (the output of one decoder block) and in every window, the entries
that are *massive* by the config's definition (|x| > ratio × the window's layer
median and > abs) are replaced:

- ``zero``: by 0;
- ``mean``: by a mean over the analysis samples. An entry whose (token position,
  feature dimension) is massive in at least half of the analysis windows (and in at
  least two) recurs at a fixed position, as the first token's massive activations do:
  it gets the mean signed value of that (position, dimension) over the windows where
  it is massive, the fixed bias the paper's reading implies. Any other massive entry
  gets the mean signed value of every massive entry of its feature dimension (0 for a
  dimension never massive there). Those means need every massive entry of the layer,
  not only the top-k the statistics keep, so the analysis windows run once more up
  to that block only.

The control changes the same number of entries per window, drawn at random
(seeded) among the ordinary, non-massive entries: to 0, or (``mean``) to the
mean of their feature dimension over the window's ordinary entries.

*Every layer at once* (``layers`` a list): the same replacement at the output of every
listed block in the same pass, each layer with its own means. A layer's massive entries
are found in the stream as it arrives there, after the layers below were replaced.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from .arch import adapt
from .errors import UserError
from .runtime import batches

MODES = ("zero", "mean")
CONDITIONS = ("massive", "control")


def massive_mask(x: torch.Tensor, ratio: float, abs_threshold: float) -> torch.Tensor:
    """Boolean mask of the massive entries of one window's (tokens, hidden) activations."""
    a = x.detach().to(torch.float32).abs()
    med = a.reshape(-1).median()
    return (a > ratio * med) & (a > abs_threshold)


def control_mask(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """As many entries as ``mask`` holds, drawn at random among the entries outside it."""
    n = int(mask.sum())
    free = (~mask).reshape(-1).nonzero().squeeze(1)
    pick = free[torch.randperm(free.numel(), generator=generator)[:n].to(free.device)]
    out = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    out[pick] = True
    return out.view_as(mask)


def replace(x: torch.Tensor, mask: torch.Tensor, mode: str,
            dim_means: torch.Tensor | None = None,
            exclude: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of ``x`` (tokens, hidden) with the masked entries replaced.

    ``mode="mean"`` takes each entry's value from ``dim_means``: (hidden,), one value
    per feature dimension, or (tokens, hidden), one per entry; if None, the dimension's
    mean over the tokens, leaving out the entries in ``exclude`` (the massive ones, for
    the control).
    """
    y = x.clone()
    if mode == "zero":
        y[mask] = 0
        return y
    if dim_means is not None:
        fill = dim_means
    else:
        keep = ~exclude if exclude is not None else torch.ones_like(mask)
        fill = (x.float() * keep).sum(0) / keep.sum(0).clamp(min=1)
    y[mask] = fill.to(x.dtype).to(x.device).expand_as(x)[mask]
    return y


class _Stop(Exception):
    """Raised after the intervention layer: nothing above it is needed."""


@dataclass
class MassiveMeans:
    """Mean signed values of the massive entries over the analysis samples, one row per
    intervention layer: per feature dimension (``dim``, ``count``: (layers, hidden)) and
    per (token position, dimension) (``pos``, ``pos_count``: (layers, positions, hidden))."""

    dim: torch.Tensor
    count: torch.Tensor
    pos: torch.Tensor
    pos_count: torch.Tensor
    n_windows: int

    def fixed(self, row: int) -> torch.Tensor:
        """(positions, hidden): the pairs massive in at least half of the windows and in
        at least two: they recur at a fixed position."""
        c = self.pos_count[row]
        return (2 * c >= self.n_windows) & (c >= 2)

    def fill(self, row: int, tokens: int) -> torch.Tensor:
        """(tokens, hidden): what each massive entry of a window of ``tokens`` tokens is
        set to: its (position, dimension) mean where that pair is fixed, else its
        dimension's mean."""
        out = self.dim[row].expand(tokens, -1).clone()
        t = min(tokens, self.pos.shape[1])
        fixed = self.fixed(row)[:t]
        out[:t][fixed] = self.pos[row, :t][fixed]
        return out


def massive_means(model, windows: torch.Tensor, layers: list[int], ratio: float,
                  abs_threshold: float, batch_size: int = 1) -> MassiveMeans:
    """The :class:`MassiveMeans` of ``layers`` (a row each, in the order given) over
    ``windows`` (the analysis samples), from passes that stop at the highest of them."""
    arch = adapt(model)
    hidden, tokens = model.config.hidden_size, windows.shape[1]
    sums = torch.zeros(len(layers), tokens, hidden, dtype=torch.float64)
    counts = torch.zeros(len(layers), tokens, hidden, dtype=torch.int64)
    last = max(layers)

    def make(row, block):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            for x in h:  # one window at a time: the median is per window
                mask = massive_mask(x, ratio, abs_threshold)
                sums[row].add_((x.double() * mask).cpu())
                counts[row].add_(mask.cpu())
            if block == last:
                raise _Stop
        return hook

    handles = [arch.blocks[l].register_forward_hook(make(i, l)) for i, l in enumerate(layers)]
    try:
        with torch.inference_mode():
            for batch in batches(windows.shape[0], batch_size):
                try:
                    arch.base(input_ids=windows[batch].to(arch.input_device), use_cache=False)
                except _Stop:
                    pass
    finally:
        for h in handles:
            h.remove()

    def mean(total, n):
        return torch.where(n > 0, total / n.clamp(min=1), torch.zeros_like(total)).float()

    dim_sums, dim_counts = sums.sum(1), counts.sum(1)
    return MassiveMeans(dim=mean(dim_sums, dim_counts), count=dim_counts,
                        pos=mean(sums, counts), pos_count=counts, n_windows=windows.shape[0])


def massive_dim_means(model, windows: torch.Tensor, layer, ratio: float, abs_threshold: float,
                      batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per feature dimension, the mean signed value of the massive entries of ``layer``
    over ``windows`` (the analysis samples), and their count; 0 for a dimension that is
    never massive. Each window runs only up to the highest block asked for.

    ``layer`` an int: (hidden,) tensors; a list of layers: (len(layer), hidden) tensors,
    one row per listed layer, from the same passes."""
    layers = [layer] if isinstance(layer, int) else list(layer)
    m = massive_means(model, windows, layers, ratio, abs_threshold, batch_size)
    if isinstance(layer, int):
        return m.dim[0], m.count[0]
    return m.dim, m.count


@contextmanager
def intervene(model, layer, mode: str, condition: str, ratio: float, abs_threshold: float,
              dim_means: "torch.Tensor | MassiveMeans | None" = None, seed: int = 0):
    """Replace the massive (or, ``condition="control"``, as many ordinary) entries of
    layer ``layer`` in every forward pass; yields a list that receives the number of
    entries changed in each window. ``layer`` a list of layers: at each of them in the
    same pass, the means then one row per listed layer, and the count per window summed
    over the layers.

    ``dim_means`` (``mode="mean"``): a :class:`MassiveMeans` (fixed-position entries get
    their (position, dimension) mean, the others their dimension's), or a tensor of one
    mean per dimension (per layer) used for every massive entry."""
    if mode not in MODES:
        raise UserError(f"intervention mode must be one of {MODES}, not {mode!r}")
    if condition not in CONDITIONS:
        raise UserError(f"intervention condition must be one of {CONDITIONS}")
    if mode == "mean" and condition == "massive" and dim_means is None:
        raise UserError("mean intervention needs the massive activations' mean values")
    arch = adapt(model)
    layers = [layer] if isinstance(layer, int) else list(layer)
    for l in layers:
        if not 0 <= l < arch.n_layers:
            raise UserError(f"intervention layer {l} is outside the model (0..{arch.n_layers - 1})")
    if isinstance(dim_means, torch.Tensor) and isinstance(layer, int):
        dim_means = dim_means.unsqueeze(0)
    counts: list[int] = []
    gen = torch.Generator().manual_seed(seed)
    first = min(layers)  # the first block of a pass to be replaced opens its windows' counts

    def make(row, block):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            if block == first:
                counts.extend([0] * len(h))
            out = []
            for w, x in enumerate(h):  # one window at a time: the median is per window
                massive = massive_mask(x, ratio, abs_threshold)
                mask = control_mask(massive, gen) if condition == "control" else massive
                counts[len(counts) - len(h) + w] += int(mask.sum())
                means = None
                if condition == "massive" and isinstance(dim_means, MassiveMeans):
                    means = dim_means.fill(row, x.shape[0])
                elif condition == "massive" and dim_means is not None:
                    means = dim_means[row]
                out.append(replace(x, mask, mode, means, exclude=massive))
            y = torch.stack(out)
            return (y, *output[1:]) if isinstance(output, tuple) else y
        return hook

    handles = [arch.blocks[l].register_forward_hook(make(i, l)) for i, l in enumerate(layers)]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


INTERVENTION_SCHEMA = pa.schema([
    ("layer", pa.int16()),
    ("mode", pa.string()),
    ("condition", pa.string()),        # baseline | massive | control
    ("n_windows", pa.int32()),
    ("entries_per_window", pa.float64()),   # mean number of entries changed
    ("ppl", pa.float64()),
    ("ppl_lo", pa.float64()),
    ("ppl_hi", pa.float64()),
    ("ppl_change", pa.float64()),      # relative to the baseline, same windows
    ("ppl_change_lo", pa.float64()),
    ("ppl_change_hi", pa.float64()),
    ("p_vs_baseline", pa.float64()),   # sign-flip permutation test over windows
    ("p_vs_control", pa.float64()),    # massive vs control, same test
    ("p_floor", pa.float64()),         # the smallest p-value the test can give (n windows)
    ("window_nll", pa.list_(pa.float64())),
])


def intervention_table(layer: int, mode: str, base: pa.Table, runs: dict[str, pa.Table],
                       counts: dict[str, list[int]], n_boot: int, seed: int) -> pa.Table:
    """Rows baseline, massive, control for one layer and mode."""
    from .resampling import paired_permutation_p
    from .perplexity import compare, window_values

    rows = []
    for cond, t in [("baseline", base), *runs.items()]:
        r = t.to_pylist()[0]
        c = compare(base, t, n_boot, seed)
        row = {"layer": layer, "mode": mode, "condition": cond, "n_windows": r["n_windows"],
               "entries_per_window": float(np.mean(counts[cond])) if cond in counts else 0.0,
               "ppl": r["ppl"], "ppl_lo": r["ppl_lo"], "ppl_hi": r["ppl_hi"],
               "ppl_change": c["ppl_change"], "ppl_change_lo": c["ppl_change_lo"],
               "ppl_change_hi": c["ppl_change_hi"],
               "p_vs_baseline": c["ppl_p"] if cond != "baseline" else float("nan"),
               "p_vs_control": float("nan"),
               "p_floor": c["ppl_p_floor"] if cond != "baseline" else float("nan"),
               "window_nll": r["window_nll"]}
        rows.append(row)
    if "massive" in runs and "control" in runs:
        mn, mt = window_values(runs["massive"])
        cn, _ = window_values(runs["control"])
        row = next(r for r in rows if r["condition"] == "massive")
        row["p_vs_control"] = paired_permutation_p(mn / mt - cn / mt, seed=seed)
    return pa.Table.from_pylist(rows, schema=INTERVENTION_SCHEMA)
