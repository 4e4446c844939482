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
