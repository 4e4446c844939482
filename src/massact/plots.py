"""Figures. Agg backend, fixed metadata, so the same data gives the same PNG bytes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import atomic_path  # noqa: E402

#: PNG metadata that does not change between runs or library versions
PNG_METADATA = {"Software": None}

STYLE = {
    "top1": dict(color="#c0392b", label="top 1"),
    "top2": dict(color="#e67e22", label="top 2"),
    "top3": dict(color="#f1c40f", label="top 3"),
    "median": dict(color="#2c3e50", label="median"),
}


def save(fig, path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata=PNG_METADATA, bbox_inches="tight")
    plt.close(fig)


def token_label(t: str) -> str:
    t = t.replace("\n", "\\n")
    return repr(t) if t.strip() != t or not t else t


def layerwise(summary, path, title: str, dpi: int = 150, log_scale: bool = True) -> None:
    """Top-1/2/3 and median |x| per layer: mean over samples, min–max band."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = summary["layer"].to_numpy()
    for s, st in STYLE.items():
        ax.plot(x, summary[s], marker="o", ms=3, lw=1.6, **st)
        ax.fill_between(x, summary[f"{s}_min"], summary[f"{s}_max"], color=st["color"],
                        alpha=0.18, lw=0)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("layer (output of decoder block)")
    ax.set_ylabel("|activation|")
    n = int(summary["n_samples"].iloc[0])
    ax.set_title(f"{title}: largest and median |x| per layer\n"
                 f"mean over {n} samples, band = min–max", fontsize=10)
    ax.set_xticks(x if len(x) <= 16 else x[::2])
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(frameon=False, fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    save(fig, path, dpi)


def feature3d(values: np.ndarray, tokens: list[str], path, title: str, dpi: int = 150,
              n_labels: int = 3, zmax: float | None = None, ax=None) -> None:
    """The paper's 3D picture: |x| over tokens × feature dimensions for one layer."""
    own = ax is None
    if own:
        fig = plt.figure(figsize=(7, 5))
        ax = fig.add_subplot(projection="3d")
    draw_feature3d(ax, np.abs(values), tokens, title, n_labels, zmax)
    if own:
        save(fig, path, dpi)


def draw_feature3d(ax, a: np.ndarray, tokens: list[str], title: str, n_labels: int,
                   zmax: float | None) -> None:
    """One vertical stem per (token, dim) entry, coloured by token."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    n_tok, hidden = a.shape
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, n_tok))
    d = np.arange(hidden)
    for t in range(n_tok):
        segs = np.stack([np.stack([d, np.full(hidden, t), np.zeros(hidden)], 1),
                         np.stack([d, np.full(hidden, t), a[t]], 1)], 1)
        ax.add_collection3d(Line3DCollection(segs, colors=colors[t], linewidths=0.8))
    ax.set_xlim(0, hidden)
    ax.set_ylim(-0.5, n_tok - 0.5)
    ax.set_yticks(range(n_tok))
    ax.set_yticklabels([token_label(t) for t in tokens], fontsize=7,
                       rotation=-15, va="center", ha="left")
    ax.set_xlabel("feature dim", fontsize=8)
    ax.set_zlabel("|x|", fontsize=8)
    ax.tick_params(axis="both", labelsize=7)
    ax.set_zlim(0, zmax if zmax else max(float(a.max()), 1e-6) * 1.05)
    flat = np.argsort(a.reshape(-1))[::-1]
    seen = set()
    for i in flat:  # label the largest entries' dimensions
        t, d = divmod(int(i), hidden)
        if d in seen:
            continue
        seen.add(d)
        ax.text(d, t, a[t, d], f" dim {d}", fontsize=7, color="black")
        if len(seen) >= n_labels:
            break
    ax.view_init(elev=25, azim=-60)
    ax.set_title(title, fontsize=10)


# ------------------------------------------------------------------ heads
def head_heatmap(summary, path, title: str, dpi: int = 150, note: str = "") -> None:
    """Layers × heads, the mean score in each cell (the study's Figure 2)."""
    n_layers = int(summary["layer"].max()) + 1
    n_heads = int(summary["head"].max()) + 1
    grid = np.full((n_layers, n_heads), np.nan)
    grid[summary["layer"], summary["head"]] = summary["score"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * n_heads + 2), max(3.0, 0.3 * n_layers + 1.5)))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto", origin="upper")
    if n_layers * n_heads <= 400:
        for l in range(n_layers):
            for h in range(n_heads):
                v = grid[l, h]
                ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 else "black")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="attention to the target")
    ax.set_title(f"{title}: mean attention of queries q ≥ 1 to the first token" + (f"\n{note}" if note else ""),
                 fontsize=9)
    save(fig, path, dpi)


def head_ranking(summary, path, title: str, dpi: int = 150, n_mark: int = 3) -> None:
    """Scores of every head by layer (the study's Figure 3), top and bottom heads marked."""
    fig, ax = plt.subplots(figsize=(8, 4))
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.18, 0.18, len(summary))
    ax.scatter(summary["layer"] + jitter, summary["score"], s=14, color="#7f8c8d", alpha=0.7,
               lw=0, label="head")
    ax.errorbar(summary["layer"] + jitter, summary["score"],
                yerr=[summary["score"] - summary["ci_low"], summary["ci_high"] - summary["score"]],
                fmt="none", ecolor="#bdc3c7", lw=0.6, zorder=0)
    layers = sorted(summary["layer"].unique())
    ax.plot(layers, summary.groupby("layer")["score"].mean().loc[layers], color="#34495e", lw=1,
            label="layer mean")
    ranked = summary.sort_values("rank")
    for sub, color, name in ((ranked.head(n_mark), "#c0392b", "top"),
                             (ranked.tail(n_mark), "#2980b9", "bottom")):
        ax.scatter(sub["layer"], sub["score"], s=40, facecolor="none", edgecolor=color, lw=1.5,
                   label=f"{name} {n_mark}")
        for _, r in sub.iterrows():
            ax.annotate(f"L{int(r['layer'])}H{int(r['head'])}", (r["layer"], r["score"]), fontsize=7, color=color,
                        xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("layer")
    ax.set_ylabel("attention to the first token")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xticks(layers if len(layers) <= 16 else layers[::2])
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(frameon=False, fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax.set_title(f"{title}: head scores by layer (bars: bootstrap 95% CI over samples)", fontsize=9)
    save(fig, path, dpi)


# ------------------------------------------------------------------ pruning
def pruning(changes, path, title: str, dpi: int = 150, log_scale: bool = True) -> None:
    """Baseline vs pruned top-1..3 per layer, and the relative change (Figures 5 and 6)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    x = changes["layer"].to_numpy()
    for s in ("top1", "top2", "top3", "median"):
        st = STYLE[s]
        a.plot(x, changes[f"baseline_{s}"], color=st["color"], lw=1.6, label=f"{st['label']} baseline")
        a.plot(x, changes[f"pruned_{s}"], color=st["color"], lw=1.2, ls="--", marker="x", ms=3,
               label=f"{st['label']} pruned")
        b.plot(x, 100 * changes[f"change_{s}"], color=st["color"], marker="o", ms=3, lw=1.3,
               label=st["label"])
    b.fill_between(x, 100 * changes["change_top1_lo"], 100 * changes["change_top1_hi"],
                   color=STYLE["top1"]["color"], alpha=0.15, lw=0, label="top 1, 95% CI")
    b.axhline(0, color="black", lw=0.6)
    if log_scale:
        a.set_yscale("log")
    a.set_ylabel("|activation| (mean over samples)")
    b.set_ylabel("relative change (%)")
    for ax in (a, b):
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3, lw=0.5)
        ax.set_xticks(x if len(x) <= 16 else x[::2])
    a.legend(frameon=False, fontsize=7, ncol=2)
    b.legend(frameon=False, fontsize=7, ncol=3)
    fig.suptitle(title, fontsize=10)
    save(fig, path, dpi)


def pruning_overview(changes_by: dict, path, title: str, dpi: int = 150,
                     randoms: list[str] = (), matched: dict | None = None) -> None:
    """Every experiment's top-1 change per layer; the random controls (``randoms``) and
    each set's layer-matched controls (``matched``) as bands (Figure 4)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    matched = matched or {}
    bands = [(randoms, "random heads", "#95a5a6")] + [
        (cs, f"matched to {t}", "#d4ac0d") for t, cs in matched.items()]
    for names, what, color in bands:
        rand = [changes_by[e] for e in names if e in changes_by]
        if not rand:
            continue
        x = rand[0]["layer"].to_numpy()
        r = 100 * np.stack([c["change_top1"].to_numpy() for c in rand])
        ax.fill_between(x, r.min(0), r.max(0), color=color, alpha=0.3, lw=0,
                        label=f"{what} ({len(rand)} seeds, min–max)")
        ax.plot(x, r.mean(0), color=color, ls="--", lw=1, label=f"{what}, mean")
    colors = plt.cm.tab10.colors
    controls = set(randoms) | {c for cs in matched.values() for c in cs}
    others = [e for e in changes_by if e not in controls]
    for i, e in enumerate(others):
        c = changes_by[e]
        ax.plot(c["layer"], 100 * c["change_top1"], marker="o", ms=3, lw=1.5,
                color=colors[i % 10], label=e)
        ax.fill_between(c["layer"], 100 * c["change_top1_lo"], 100 * c["change_top1_hi"],
                        color=colors[i % 10], alpha=0.12, lw=0)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel("change of top-1 |x| (%)")
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(frameon=False, fontsize=8, ncol=2)
    ax.set_title(f"{title}: top-1 massive activation after pruning head sets", fontsize=10)
    save(fig, path, dpi)


def feature3d_compare(before, after, tokens, path, title: str, heads_label: str, dpi: int = 150,
                      n_labels: int = 3) -> None:
    """The layer's 3D |x| picture before (left) and after (right) pruning, same scale."""
    zmax = max(float(np.abs(before).max()), float(np.abs(after).max())) * 1.05
    fig = plt.figure(figsize=(12, 5))
    for i, (vals, name) in enumerate(((before, "baseline"), (after, f"pruned {heads_label}"))):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        draw_feature3d(ax, np.abs(vals), tokens, name, n_labels, zmax)
    fig.suptitle(title, fontsize=10)
    save(fig, path, dpi)


def feature3d_difference(before, after, tokens, path, title: str, heads_label: str,
                         dpi: int = 150, n_dims: int = 5) -> None:
    """pruned − baseline over tokens × dims, with the top-1 before/after and the most changed dims."""
    diff = after - before
    a0, a1 = np.abs(before), np.abs(after)
    t0 = np.unravel_index(np.argmax(a0), a0.shape)
    t1 = np.unravel_index(np.argmax(a1), a1.shape)
    change = 100 * (a1.max() / a0.max() - 1)
    by_dim = np.abs(diff).max(axis=0)
    top_dims = np.argsort(by_dim)[::-1][:n_dims]
    lim = float(np.abs(diff).max()) or 1.0
    fig, ax = plt.subplots(figsize=(11, 0.35 * len(tokens) + 2.2))
    im = ax.imshow(diff, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels([token_label(t) for t in tokens], fontsize=7)
    ax.set_xlabel("feature dim")
    for d in top_dims:
        ax.axvline(d, color="black", lw=0.4, alpha=0.5)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="pruned − baseline")
    dims_txt = ", ".join(f"{d} ({by_dim[d]:+.3g})".replace("+", "Δ") for d in top_dims)
    ax.set_title(f"{title}, pruned {heads_label}\n"
                 f"top-1 |x| {a0.max():,.1f} at ({token_label(tokens[t0[0]])}, dim {t0[1]}) → "
                 f"{a1.max():,.1f} at ({token_label(tokens[t1[0]])}, dim {t1[1]}): {change:+.2f} %;"
                 f"  most changed dims: {dims_txt}", fontsize=8)
    save(fig, path, dpi)


def components(changes_by: dict, summary, path, title: str, dpi: int = 150) -> None:
    """Which component creates the massive activation, and at which layer.

    Left and middle: for each ablated layer (rows), the change of the top-1 |x| at
    every measured layer (columns), as log10(ablated / baseline) (0 = unchanged,
    −1 = ten times smaller). Right: the perplexity change of each ablation (95% CI).
    """
    from matplotlib.colors import TwoSlopeNorm

    from .analysis import change_matrix

    mats = {k: change_matrix(changes_by, k) for k in ("attn", "mlp")}
    fig = plt.figure(figsize=(13.5, 4.8))
    gs = fig.add_gridspec(1, 5, width_ratios=[1, 1, 0.05, 0.35, 1.0], wspace=0.3)
    axes = [fig.add_subplot(gs[0, i]) for i in (0, 1, 4)]
    cax = fig.add_subplot(gs[0, 2])
    vmax = 0.1
    logs = {}
    for kind, (abl, layers, m) in mats.items():
        logs[kind] = np.log10(np.clip(1 + m, 1e-6, None))
        if logs[kind].size:
            vmax = max(vmax, float(np.nanmax(np.abs(logs[kind]))))
    vmax = min(vmax, 6.0)
    norm = TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
    im = None
    for ax, kind, name in ((axes[0], "attn", "attention"), (axes[1], "mlp", "MLP")):
        abl, layers, _ = mats[kind]
        if not len(abl):
            ax.set_axis_off()
            continue
        im = ax.imshow(logs[kind], cmap="RdBu_r", norm=norm, aspect="auto", origin="lower",
                       extent=(layers[0] - 0.5, layers[-1] + 0.5, -0.5, len(abl) - 0.5),
                       interpolation="nearest")
        ax.set_yticks(range(len(abl)))
        ax.set_yticklabels(abl if len(abl) <= 16 else [a if i % 2 == 0 else "" for i, a in enumerate(abl)],
                           fontsize=7)
        ax.set_xlabel("measured layer")
        ax.set_ylabel(f"{name} of this layer removed")
        ax.set_title(f"{name} removed, one layer at a time", fontsize=9)
    if im is not None:
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("log10(top-1 |x| ablated / baseline)", fontsize=8)
    else:
        cax.set_axis_off()
    ax = axes[2]
    per = summary[summary["layer"] >= 0]
    for kind, color, dx in (("attn", "#2471a3", -0.2), ("mlp", "#c0392b", 0.2)):
        k = per[per["component"] == kind]
        y = 100 * k["ppl_change"].to_numpy()
        err = 100 * np.abs(k[["ppl_change_lo", "ppl_change_hi"]].to_numpy().T - k["ppl_change"].to_numpy())
        ax.errorbar(k["layer"] + dx, y, yerr=err,
                    fmt="o", ms=3, color=color, label="attention" if kind == "attn" else "MLP",
                    elinewidth=0.8, capsize=0)
    allr = summary[summary["layer"] < 0]
    notes = [f"all {'attention sublayers' if r.component == 'attn' else 'MLPs'} removed: "
             f"top-1 at layer {r.peak_layer} {100 * r.change_at_peak:+.1f}%, perplexity "
             + (f"×{1 + r.ppl_change:.3g}" if r.ppl_change > 1 else f"{100 * r.ppl_change:+.1f}%")
             for r in allr.itertuples()]
    ax.set_yscale("symlog", linthresh=1.0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("layer removed")
    ax.set_ylabel("perplexity change (%)")
    ax.set_title("perplexity on held-out windows (95% CI)", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle(f"{title}: component ablations", fontsize=10, y=1.02)
    fig.text(0.5, -0.04, "; ".join(notes), ha="center", fontsize=8)
    save(fig, path, dpi)


CUMULATIVE_STYLE = {"top": dict(color="#c0392b", label="top-k heads"),
                    "bottom": dict(color="#2471a3", label="bottom-k heads"),
                    "random": dict(color="#7f8c8d", label="random-k heads")}


def cumulative(rows, path, title: str, dpi: int = 150) -> None:
    """Change of the massive activation (at its peak layer, and averaged over layers) and
    of the perplexity against the number of heads removed."""
    panels = (("peak_change", "largest top-1 |x| over layers, change (%)",
               "the massive activation (95% CI over samples)"),
              ("layer_change", "top-1 |x| change, mean over layers (%)",
               "averaged over layers (95% CI over samples)"),
              ("ppl_change", "perplexity change (%)", "held-out perplexity (95% CI over windows)"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (col, label, sub) in zip(axes, panels):
        for kind, st in CUMULATIVE_STYLE.items():
            d = rows[rows["kind"] == kind]
            if not len(d):
                continue
            if kind == "random":
                g = d.groupby("k")
                k = g[col].mean().index.to_numpy()
                ax.fill_between(k, 100 * g[f"{col}_lo"].min(), 100 * g[f"{col}_hi"].max(),
                                color=st["color"], alpha=0.2, lw=0)
                ax.plot(k, 100 * g[col].mean(), marker="o", ms=3, lw=1.4,
                        label=f"{st['label']} (mean of {d['seed'].nunique()} seeds)", color=st["color"])
            else:
                ax.errorbar(d["k"], 100 * d[col],
                            yerr=100 * np.abs(d[[f"{col}_lo", f"{col}_hi"]].to_numpy().T - d[col].to_numpy()),
                            marker="o", ms=3, lw=1.4, capsize=2, **st)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("heads removed (k)")
        ax.set_ylabel(label)
        ax.set_title(sub, fontsize=9)
        ax.grid(alpha=0.3, which="both", lw=0.5)
    axes[0].legend(frameon=False, fontsize=8)
    total = int(rows["k"].max())
    fig.suptitle(f"{title}: cumulative head pruning, up to all {total} heads", fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi)


def models_layerwise(summaries: dict, path, dpi: int = 150) -> None:
    """Top-1 / median |x| per layer of every model, depth normalized."""
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, s) in enumerate(summaries.items()):
        n = len(s)
        x = s["layer"].to_numpy() / max(n - 1, 1)
        ax.plot(x, s["ratio"], marker="o", ms=3, lw=1.5, color=colors[i % len(colors)],
                label=f"{name} ({n} layers)")
    ax.set_yscale("log")
    ax.set_xlabel("relative depth (layer / last layer)")
    ax.set_ylabel("top-1 |x| / median |x|")
    ax.set_title("Massive activations across models (mean over samples)", fontsize=10)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(frameon=False, fontsize=8)
    save(fig, path, dpi)
