"""Many-run sweeps: component ablations and cumulative head pruning.

A sweep runs the model once per configuration on the *sweep windows* (the
first ``sweeps.samples`` analysis windows cut to their first ``sweeps.seqlen``
tokens; their baseline statistics come from one pass, rule sweep_baseline) and
on the held-out perplexity windows. Causal attention makes a window's prefix
see exactly what it saw in the full window, so the first-token massive
activations are the same as in the analysis; the median covers fewer tokens.

Components (names are stable file names):
  ``attn-all`` / ``mlp-all``   every attention sublayer / every MLP removed;
  ``attn-<l>`` / ``mlp-<l>``   the attention / the MLP of block l removed.

Cumulative pruning removes the k highest-scoring heads (``top``), the k lowest
(``bottom``) or k random heads (``random``, one nested order per seed: the
random k-set grows with k), for each k of a grid; identical head sets run once.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from .ablation import ablate_components, ablate_heads
from .analysis import bootstrap_ci, paired
from .names import component_names  # noqa: F401  (re-exported: the names of the sweep)
from .errors import UserError

KINDS = ("top", "bottom", "random")
log = logging.getLogger("massact")


def component_layers(name: str, n_layers: int) -> dict[str, list[int]]:
    """``{"attn_layers": [...], "mlp_layers": [...]}`` removed by a component ablation."""
    kind, _, which = name.partition("-")
    if kind not in ("attn", "mlp") or not which:
        raise UserError(f"unknown component ablation {name!r} (attn-all, mlp-all, attn-<l>, mlp-<l>)")
    layers = list(range(n_layers)) if which == "all" else [int(which)]
    return {f"{kind}_layers": layers}


def ablate(model, name: str, n_layers: int):
    return ablate_components(model, **component_layers(name, n_layers))


def ks_grid(ks: list, total: int) -> list[int]:
    """The grid's k values (``"all"`` = every head), capped at ``total``, sorted, unique."""
    return sorted({total if k == "all" else min(int(k), total) for k in ks})


def cumulative_sets(scores: pd.DataFrame, ks: list, seeds: list[int]) -> list[dict]:
    """One entry per (kind, seed, k): its heads, sorted; ``seed`` is -1 for top and bottom."""
    from .selection import check_scores

    check_scores(scores)
    ranked = scores.sort_values(["score", "layer", "head"], ascending=[False, True, True])
    order = {"top": ranked, "bottom": ranked.iloc[::-1]}
    allh = scores.sort_values(["layer", "head"]).reset_index(drop=True)
    for s in seeds:
        order[("random", s)] = allh.iloc[np.random.default_rng(s).permutation(len(allh))]
    out = []
    for key, frame in order.items():
        kind, seed = (key, -1) if isinstance(key, str) else key
        for k in ks_grid(ks, len(scores)):
            picked = frame.head(k)
            heads = sorted([int(l), int(h)] for l, h in zip(picked["layer"], picked["head"]))
            out.append({"kind": kind, "seed": seed, "k": k, "heads": heads})
    return out


def head_set_key(heads: list[list[int]]) -> str:
    return ";".join(f"{l}.{h}" for l, h in heads)


def peak_top1(stats: pa.Table) -> pd.Series:
    """Per sample: the largest top-1 |x| over layers (the model's massive activation)."""
    df = stats.to_pandas()
    return df[df["rank"] == 1].groupby("sample")["value"].max().sort_index()


def component_start(name: str, n_layers: int) -> int:
    """The first block a component ablation changes."""
    return min(min(v) for v in component_layers(name, n_layers).values())


def head_set_heads(key: str) -> list[tuple[int, int]]:
    """The (layer, head) pairs of a :func:`head_set_key`."""
    return [tuple(map(int, p.split("."))) for p in key.split(";")] if key else []


def head_set_start(key: str) -> int:
    """The first block that removing a head set (a :func:`head_set_key`) changes."""
    return min((layer for layer, _ in head_set_heads(key)), default=0)


def with_prefix(unablated: pa.Table, stats: pa.Table, first: int, within: str = "rank"
                ) -> pa.Table:
    """Per-layer rows of a pass that started at block ``first`` (layer statistics, or
    per-sample head scores with ``within="head"``), completed with the unablated pass's
    layers before it (which the ablation cannot change), in the row order of a full
    pass: by sample, layer, then ``within``."""
    import pyarrow.compute as pc

    if not first:
        return stats
    before = unablated.filter(pc.less(unablated["layer"], first))
    return pa.concat_tables([before, stats]).sort_by(
        [("sample", "ascending"), ("layer", "ascending"), (within, "ascending")])


#: Host memory the kept block inputs of a sweep may take; beyond it, fewer start blocks are
#: kept and some configurations start earlier (same outputs, more compute).
PREFIX_BYTES = 2**30


class Run(NamedTuple):
    """One configuration's outputs: layer statistics, perplexity table and (when asked
    for) per-sample head scores."""

    stats: pa.Table
    ppl: pa.Table
    head_scores: pa.Table | None = None


def record_blocks(model, windows, batch_size: int, desc: str) -> None:
    """An unablated pass of the decoder blocks only (no output layer) over ``windows``, in
    the batches the configurations' passes will use: what a :class:`PrefixCache` records."""
    import torch

    from .arch import adapt
    from .runtime import batches, progress
    from .stats import forward_base

    arch = adapt(model)
    bar = progress(None, desc=desc, total=windows.shape[0], unit="window")
    with torch.inference_mode():
        for batch in batches(windows.shape[0], batch_size):
            forward_base(arch, windows[batch].to(arch.input_device))
            bar.update(len(batch))
    bar.close()


def run_configs(model, tokenizer, windows, heldout, configs, *, k: int, n_boot: int,
                seed: int, contexts, starts: dict | None = None,
                batch_tokens: int | None = None, heads: bool = False) -> dict[str, Run]:
    """Run each configuration (name → anything ``contexts(name)`` turns into a context
    manager); return ``{name: Run}``: its layer statistics on ``windows``, its perplexity
    table on ``heldout`` (the run named after the configuration) and, with ``heads``, its
    per-sample head scores on ``windows``.

    ``starts`` (name → the first block the configuration changes): one unablated pass
    over the windows and the held-out windows keeps the start blocks' inputs, and each
    configuration then starts at its block (massact.prefix), its statistics and head
    scores before that block taken from the unablated pass. The results are
    bit-identical to full passes. ``batch_tokens``: as many windows per pass as fit in
    that many tokens (massact.runtime.batch_size; None: one). The recording and the
    configurations' passes run the same batches, and the same attention (the head
    probe's when ``heads``), which is how the kept inputs are found again and why they
    are the inputs a full pass would give.
    """
    from .forward import analyse
    from .perplexity import run_ppl
    from .prefix import PrefixCache
    from .runtime import batch_size

    bs_w = batch_size(batch_tokens, windows) if batch_tokens else 1
    bs_h = batch_size(batch_tokens, heldout) if batch_tokens else 1

    starts = {name: int(starts.get(name, 0)) for name in configs} if starts else {}
    cache = PrefixCache(model, starts.values(), max_bytes=PREFIX_BYTES,
                        tokens=int(windows.numel() + heldout.numel()))
    starts = {name: cache.effective(first) for name, first in starts.items()}
    unablated = {}
    if cache.starts:
        with cache.recording():
            unablated = analyse(model, tokenizer, windows, k=k, heads=heads,
                                desc="unablated", batch_size=bs_w)
            record_blocks(model, heldout, bs_h, "unablated (held-out windows)")
    out = {}
    for i, name in enumerate(configs):
        label = name if len(name) < 24 else f"run {i + 1}/{len(configs)}"
        first = starts.get(name, 0)
        with contexts(name) if contexts else nullcontext(), cache.start(first):
            res = analyse(model, tokenizer, windows, k=k, heads=heads, desc=label,
                          first_layer=first, batch_size=bs_w)
            ppl = run_ppl(model, heldout, name, n_boot, seed, batch_size=bs_h,
                          desc=f"perplexity {label}")
        out[name] = Run(with_prefix(unablated.get("layer_stats"), res["layer_stats"], first),
                        ppl,
                        with_prefix(unablated.get("head_scores"), res["head_scores"], first,
                                    within="head") if heads else None)
        log.info("configuration %d of %d done: %s (from block %d), perplexity %.4g",
                 i + 1, len(configs), name, first, ppl["ppl"][0].as_py())
    return out


def cumulative_rows(sets: list[dict], baseline: pa.Table, base_ppl: pa.Table, results: dict,
                    n_boot: int, seed: int) -> pd.DataFrame:
    """Per (kind, seed, k): change of the peak top-1 and of the layer-averaged top-1
    (paired bootstrap 95% CIs over samples), the perplexity and its change (over
    windows); for top and bottom, sign-flip permutation p-values against the mean of
    the random sets of the same k (and top against bottom), on the per-sample layer
    change and on the per-window mean nll."""
    from .resampling import against_sets, p_floor, paired_permutation_p
    from .perplexity import compare, window_values

    base_peak = peak_top1(baseline).to_numpy()
    rows, per_layer, per_nll = [], {}, {}
    for s in sets:
        stats, ppl, _ = results[head_set_key(s["heads"])]
        peak = peak_top1(stats).to_numpy()
        pair = np.stack([base_peak, peak], -1)
        lo, hi = bootstrap_ci(pair, n_boot, seed,
                              stat=lambda v, axis: v[..., 1].mean(axis) / v[..., 0].mean(axis) - 1)
        b, p = paired(baseline, stats)
        per = (p["top1"] / b["top1"] - 1).groupby(level="sample").mean().to_numpy()
        mlo, mhi = bootstrap_ci(per, n_boot, seed)
        key = (s["kind"], s["seed"], s["k"])
        per_layer[key] = per
        per_nll[key] = np.divide(*window_values(ppl))
        r = ppl.to_pylist()[0]
        rows.append({"kind": s["kind"], "seed": s["seed"], "k": s["k"],
                     "peak_top1": float(peak.mean()), "baseline_peak_top1": float(base_peak.mean()),
                     "peak_change": float(peak.mean() / base_peak.mean() - 1),
                     "peak_change_lo": float(lo), "peak_change_hi": float(hi),
                     "layer_change": float(per.mean()), "layer_change_lo": float(mlo),
                     "layer_change_hi": float(mhi),
                     "ppl": r["ppl"], "ppl_lo": r["ppl_lo"], "ppl_hi": r["ppl_hi"],
                     **compare(base_ppl, ppl, n_boot, seed),
                     "heads": head_set_key(s["heads"])})
    for row in rows:
        kind, k = row["kind"], row["k"]
        if kind == "random":
            continue
        rand = [key for key in per_layer if key[0] == "random" and key[2] == k]
        mine = (kind, -1, k)
        for name, other in (("random", rand), ("bottom", [("bottom", -1, k)] if kind == "top" else [])):
            other = [o for o in other if o in per_layer]
            if not other:
                continue
            row[f"layer_p_vs_{name}"] = paired_permutation_p(
                per_layer[mine] - np.mean([per_layer[o] for o in other], axis=0), seed=seed)
            row[f"ppl_p_vs_{name}"] = paired_permutation_p(
                per_nll[mine] - np.mean([per_nll[o] for o in other], axis=0), seed=seed)
        row["layer_p_floor"] = p_floor(len(per_layer[(kind, -1, k)]))
        if rand:  # over head sets: where this set stands among the random orders at this k
            pr = [r["ppl_change"] for r in rows if r["kind"] == "random" and r["k"] == k]
            row["n_random"] = len(rand)
            row["layer_random_rank"] = against_sets(per_layer[mine].mean(),
                                                    [per_layer[o].mean() for o in rand])[0]
            row["ppl_random_rank"] = against_sets(row["ppl_change"], pr)[0]
    cols = ["layer_p_vs_random", "ppl_p_vs_random", "layer_p_vs_bottom", "ppl_p_vs_bottom",
            "layer_p_floor", "n_random", "layer_random_rank", "ppl_random_rank"]
    out = pd.DataFrame(rows)
    for c in cols:
        if c not in out:
            out[c] = np.nan
    return out.sort_values(["kind", "seed", "k"]).reset_index(drop=True)


def prune_context(model, mode: str, means, post_norm: str = "live"):
    """name (a head-set key) → the context manager that removes those heads."""
    def ctx(name):
        return ablate_heads(model, head_set_heads(name), mode=mode, means=means,
                            post_norm=post_norm)
    return ctx
