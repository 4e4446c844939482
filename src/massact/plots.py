"""Figures. Agg backend, fixed metadata, so the same data gives the same PNG bytes.

Every public function draws under :data:`RC` (font sizes chosen so that text stays
readable at the test configuration's 60 dpi as well as at 150 dpi)."""

from __future__ import annotations

import functools
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from .io import atomic_path  # noqa: E402

#: PNG metadata that does not change between runs or library versions
PNG_METADATA = {"Software": None}

#: the figures' style: 11 pt is the smallest text (≈ 9 px at the test configuration's 60 dpi)
RC = {
    "font.size": 12, "axes.titlesize": 12.5, "axes.labelsize": 12,
    "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 11,
    "figure.titlesize": 13.5, "legend.frameon": False, "axes.unicode_minus": True,
}
#: text inside the plot area (cell values, point labels)
SMALL = 11

STYLE = {
    "top1": dict(color="#c0392b", label="top 1"),
    "top2": dict(color="#e67e22", label="top 2"),
    "top3": dict(color="#f1c40f", label="top 3"),
    "median": dict(color="#2c3e50", label="median"),
}

#: colour map of the 3D pictures (colour = |x|, like the bar height)
FEATURE_CMAP = "viridis"
#: at most this many bars in one 3D picture (the largest entries); more are too slow to draw
MAX_BARS = 20000
#: entries below this fraction of the 3D picture's |x| scale are drawn as a flat floor
FLOOR = 0.01
#: the 3D pictures' view (elevation, azimuth) and token-label rotation, in degrees
FEATURE3D_VIEW = (26, -72)
FEATURE3D_TOKEN_ROTATION = 55


def styled(fn):
    """Run a figure function under :data:`RC`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def save(fig, path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata=PNG_METADATA, bbox_inches="tight")
    plt.close(fig)


def token_label(t: str) -> str:
    """A token as the figures show it: always in single quotes, control characters escaped
    (``'S'``, ``' is'``, ``'\\n'``, ``'<bos>'``)."""
    t = t.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{t}'"


def percent_label(v: float, pos=None) -> str:
    """A change in % as a tick label: ``−100 %``, ``−2.5 %``, ``0``, ``+10 %``, ``+1,000 %``."""
    if abs(v) < 1e-9:
        return "0"
    k = np.log10(abs(v))
    if abs(v) >= 1e5 and abs(k - round(k)) < 1e-6:
        return ("\u2212" if v < 0 else "+") + f"$10^{{{int(round(k))}}}$ %"
    s = f"{v:+,.0f}" if abs(v) >= 1000 else f"{v:+.3g}"
    return s.replace("-", "\u2212") + " %"


def percent_axis(ax, values, axis: str = "y", linear_max: float = 200.0,
                 linthresh: float = 10.0) -> None:
    """Scale one axis for changes in % (``values``: every value to show, CI bounds too).

    Linear while every |value| ≤ ``linear_max``; beyond, symlog (linear within
    ±``linthresh`` %) with ticks at 0 and ±``linthresh``·10^k. Ticks read as percentages;
    the limits leave a margin so that no point sits on the frame."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    lo, hi = (min(float(v.min()), 0.0), max(float(v.max()), 0.0)) if v.size else (-1.0, 1.0)
    if hi - lo == 0:
        lo, hi = -1.0, 1.0
    a = ax.yaxis if axis == "y" else ax.xaxis
    set_lim = ax.set_ylim if axis == "y" else ax.set_xlim
    if max(abs(lo), abs(hi)) <= linear_max:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("linear")
        pad = 0.07 * (hi - lo)
        set_lim(lo - pad, hi + pad)
        a.set_major_locator(mticker.MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]))
    else:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("symlog", linthresh=linthresh,
                                                             linscale=0.6)
        tr = a.get_transform()
        t0, t1 = tr.transform(np.array([lo, hi]))
        pad = 0.06 * (t1 - t0)
        l0, l1 = tr.inverted().transform(np.array([t0 - pad, t1 + pad]))
        set_lim(l0, l1)
        decades = []
        m = linthresh
        while m <= max(abs(l0), abs(l1)) * 1.0001:
            decades.append(m)
            m *= 10
        # every decade below 0 (changes of |x| and perplexity stop at −100 %), at most
        # ~5 above
        up = [m for m in decades if m <= l1]
        step = max(1, int(np.ceil(len(up) / 5)))
        down = [-m for m in decades if -m >= l0][::-1]  # −100 % before −10 %
        # keep ticks in this order of priority while their labels do not collide
        pos = ax.get_position()
        length = 72 * (pos.height * ax.figure.get_figheight() if axis == "y"
                       else pos.width * ax.figure.get_figwidth())  # the axis, in points
        t0, t1 = tr.transform(np.array([l0, l1]))

        def at(t):  # where tick t sits along the axis, in points
            return (tr.transform(np.array([t]))[0] - t0) / (t1 - t0) * length

        size = FontProperties(size=matplotlib.rcParams[f"{axis}tick.labelsize"]).get_size_in_points()
        gap = 1.6 * size if axis == "y" else 5.0 * size
        ticks = []
        for t in [0.0] + down[:1] + up[::step] + down[1:]:
            if all(abs(at(t) - at(u)) >= gap for u in ticks):
                ticks.append(t)
        a.set_major_locator(mticker.FixedLocator(sorted(ticks)))
        a.set_minor_locator(mticker.NullLocator())
    a.set_major_formatter(mticker.FuncFormatter(percent_label))


def layer_ticks(ax, layers, axis: str = "x", most: int = 20) -> None:
    """Integer layer ticks only: every layer up to ``most`` layers, else every few (a
    narrow panel asks for fewer)."""
    layers = np.asarray(layers)
    a = ax.xaxis if axis == "x" else ax.yaxis
    if len(layers) and len(layers) <= most:
        a.set_major_locator(mticker.FixedLocator(np.unique(layers.astype(int))))
    else:
        a.set_major_locator(mticker.MaxNLocator(nbins=min(12, most), integer=True))
    a.set_minor_locator(mticker.NullLocator())


@styled
def layerwise(summary, path, title: str, dpi: int = 150, log_scale: bool = True) -> None:
    """Top-1/2/3 and median |x| per layer: mean over samples, min–max band."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    x = summary["layer"].to_numpy()
    for s, st in STYLE.items():
        ax.plot(x, summary[s], marker="o", ms=4, lw=1.8, **st)
        ax.fill_between(x, summary[f"{s}_min"], summary[f"{s}_max"], color=st["color"],
                        alpha=0.18, lw=0)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("layer (output of decoder block)")
    ax.set_ylabel("|activation|")
    n = int(summary["n_samples"].iloc[0])
    ax.set_title(f"{title}: largest and median |x| per layer\n"
                 f"mean over {n} samples, band = min–max over samples")
    layer_ticks(ax, x)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color="#7f8c8d", alpha=0.3, lw=0))
    labels.append("shaded: min–max over samples")
    ax.legend(handles, labels, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    save(fig, path, dpi)


# ------------------------------------------------------------------ 3D pictures
@styled
def feature3d(values: np.ndarray, tokens: list[str], path, title: str, dpi: int = 150,
              n_labels: int = 3, zmax: float | None = None, ax=None) -> None:
    """The paper's 3D picture: |x| over tokens × feature dimensions for one layer
    (Sun et al. 2024, Fig. 1): one bar per (token, dim), height and colour = |x|."""
    own = ax is None
    if own:
        fig = plt.figure()
        (ax,), cax = _feature3d_layout(fig, len(tokens), 1)
    mappable = draw_feature3d(ax, np.abs(values), tokens, title, n_labels, zmax)
    if own:
        _feature3d_colorbar(fig, mappable, cax)
        save(fig, path, dpi)


def _feature3d_box(n_tok: int) -> tuple:
    """The 3D box's aspect (tokens, dims, |x|): a longer token axis for more tokens."""
    return (max(1.6, min(3.0, n_tok / 10)), 1.2, 1.0)


def _projected_size(ax, aspect) -> tuple[float, float]:
    """Width and height of the 3D box drawn at zoom 1, as fractions of the axes' square."""
    from mpl_toolkits.mplot3d import proj3d

    ax.set_box_aspect(aspect, zoom=1)
    ax.view_init(elev=FEATURE3D_VIEW[0], azim=FEATURE3D_VIEW[1])
    c = np.array([[x, y, z] for x in ax.get_xlim() for y in ax.get_ylim() for z in ax.get_zlim()])
    xs, ys, _ = proj3d.proj_transform(c[:, 0], c[:, 1], c[:, 2], ax.get_proj())
    return float(np.ptp(xs)) / ax.viewLim.width, float(np.ptp(ys)) / ax.viewLim.height


def _feature3d_layout(fig, n_tok: int, n_panels: int):
    """Size ``fig`` for ``n_panels`` 3D pictures side by side and a colour bar, each
    panel's axes shaped like its projected box (so the box fills it); returns
    (the 3D axes, the colour bar's axes). Lengths in inches."""
    probe = fig.add_axes((0, 0, 1, 1), projection="3d")
    pw, ph = _projected_size(probe, _feature3d_box(n_tok))
    fig.delaxes(probe)
    box_w = float(np.clip(4.2 + 0.17 * n_tok, 5.5, 9.5))
    box_h = box_w * ph / pw
    left, gap, right, bottom, top = 0.5, 1.9, 2.9, 1.3, 0.9
    width = left + n_panels * box_w + (n_panels - 1) * gap + right
    height = bottom + box_h + top
    fig.set_size_inches(width, height)
    axes = [fig.add_axes(((left + i * (box_w + gap)) / width, bottom / height,
                          box_w / width, box_h / height), projection="3d")
            for i in range(n_panels)]
    cax = fig.add_axes(((width - right + 1.5) / width, (bottom + 0.1 * box_h) / height,
                        0.2 / width, 0.8 * box_h / height))
    return axes, cax


def _feature3d_colorbar(fig, mappable, cax) -> None:
    cb = fig.colorbar(mappable, cax=cax)
    cb.set_label("|x|  (bar height and colour)")


def draw_feature3d(ax, a: np.ndarray, tokens: list[str], title: str, n_labels: int,
                   zmax: float | None):
    """One bar per (token, dim) entry (tokens along x, feature dims along y), height and
    colour = |x| on the scale 0..``zmax``; the ``n_labels`` largest entries' dimensions
    are labelled. The box is zoomed to fill ``ax``'s rectangle. Returns the colour scale
    (a ScalarMappable) for a colour bar."""
    from mpl_toolkits.mplot3d import proj3d

    n_tok, hidden = a.shape
    top = float(zmax) if zmax else max(float(a.max()) if a.size else 0.0, 1e-6) * 1.05
    norm = Normalize(0.0, top)
    cmap = plt.get_cmap(FEATURE_CMAP)
    # bars for the entries of at least FLOOR of the scale (and at most MAX_BARS, the
    # largest); the others would be flat at this scale: one thin floor per token instead
    cut = FLOOR * top
    if int((a >= cut).sum()) > MAX_BARS:
        cut = float(np.partition(a.ravel(), a.size - MAX_BARS)[a.size - MAX_BARS])
    mask = a >= cut
    note = ""
    w_tok, w_dim = 0.55, 0.8
    if not mask.all():
        note = f"\n(|x| < {cut:.3g}: the flat floor)"
        floor = ax.bar3d(np.arange(n_tok) - w_tok / 2, np.full(n_tok, -0.5), np.zeros(n_tok),
                         w_tok, hidden, 0.004 * top, color=cmap(0.0), shade=True)
        floor.set_clip_on(False)
        floor.set_zorder(1)
    # draw in the order given here (the floor, then the slabs back to front), not sorted by
    # the collections' mean depth, which puts a long flat floor over the bars' feet
    ax.computed_zorder = False
    # one collection per slab of feature dims, back (high dims) to front: the camera looks
    # along the dims, so slabs never overlap wrongly; within a slab the faces are sorted
    chunk = max(1, int(np.ceil(hidden / 48)))
    for z, d0 in enumerate(range((hidden - 1) // chunk * chunk, -1, -chunk)):
        t, d = np.nonzero(mask[:, d0:d0 + chunk])
        if not len(t):
            continue
        d = d + d0
        h = a[t, d]
        bars = ax.bar3d(t - w_tok / 2, d - w_dim / 2, np.zeros(len(t)), w_tok, w_dim, h,
                        color=cmap(norm(h)), shade=True, zsort="average")
        bars.set_clip_on(False)  # the zoomed box reaches beyond the axes' square
        bars.set_zorder(2 + z)
    xlim, ylim = (-0.6, n_tok - 0.4), (-0.5, hidden - 0.5)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_zlim(0, top)
    # the box's corners, invisible: the saved picture's tight bounding box includes the panes
    c = np.array([[x, y, z] for x in xlim for y in ylim for z in (0, top)])
    ax.plot(c[:, 0], c[:, 1], c[:, 2], ls="none", clip_on=False)
    step = max(1, int(np.ceil(n_tok / 40)))
    ax.set_xticks(range(0, n_tok, step))
    ax.set_xticklabels([token_label(tokens[i]) for i in range(0, n_tok, step)],
                       rotation=FEATURE3D_TOKEN_ROTATION, ha="right", va="top",
                       rotation_mode="anchor",
                       fontsize=SMALL + 1)
    ax.yaxis.set_major_locator(mticker.MaxNLocator(nbins=5, integer=True))
    ax.zaxis.set_major_locator(mticker.MaxNLocator(nbins=5))
    ax.set_ylabel("feature dim", labelpad=6)
    ax.set_zlabel("|x|", labelpad=8)
    aspect = _feature3d_box(n_tok)
    pw, ph = _projected_size(ax, aspect)  # zoom the box to fill the axes' rectangle
    fw, fh = ax.figure.get_size_inches()
    pos = ax.get_position(original=True)
    w_in, h_in = pos.width * fw, pos.height * fh
    side = min(w_in, h_in)
    ax.set_box_aspect(aspect, zoom=0.98 * min(w_in / (pw * side), h_in / (ph * side)))
    flat = np.argsort(a.reshape(-1), kind="stable")[::-1]
    seen, marks = [], []
    for i in flat:  # the largest entries' dimensions, labelled beside their bars' tops
        t, d = divmod(int(i), hidden)
        if d in seen:
            continue
        if a[t, d] < 0.05 * a.max():  # too small to see: no label
            break
        seen.append(d)
        x2, y2, _ = proj3d.proj_transform(t, d, a[t, d], ax.get_proj())
        marks.append((x2, y2, f"dim {d}", "black"))
        if len(seen) >= n_labels:
            break
    if marks:
        ax.apply_aspect()
        _place_labels(ax, *zip(*marks), box=True, avoid_points=False)
    ax.set_title(title + note, pad=0)
    return plt.cm.ScalarMappable(norm=norm, cmap=cmap)


# ------------------------------------------------------------------ heads
@styled
def head_heatmap(summary, path, title: str, dpi: int = 150, note: str = "") -> None:
    """Layers × heads, the mean score in each cell (the study's Figure 2)."""
    n_layers = int(summary["layer"].max()) + 1
    n_heads = int(summary["head"].max()) + 1
    grid = np.full((n_layers, n_heads), np.nan)
    grid[summary["layer"], summary["head"]] = summary["score"]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.62 * n_heads + 2.8),
                                    max(3.8, 0.34 * n_layers + 1.8)))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto", origin="upper")
    if n_layers * n_heads <= 400:
        for l in range(n_layers):
            for h in range(n_heads):
                v = grid[l, h]
                ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=SMALL - 1,
                        color="white" if v < 0.6 else "black")
    ax.set_xticks(range(n_heads))
    layer_ticks(ax, np.arange(n_layers), axis="y")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03, label="attention to the target")
    head = f"{title}: mean attention of queries q ≥ 1\nto the first token"
    ax.set_title(head + (f"\n{textwrap.fill(note, 60)}" if note else ""))
    save(fig, path, dpi)


def _place_labels(ax, xs, ys, texts, colors, box: bool = False,
                  avoid_points: bool = True) -> None:
    """Annotate points without overlaps: each label takes the first of a few offsets
    around its point that overlaps no earlier label, no marked point and stays inside."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = (fig.bbox if box else ax.get_window_extent(renderer))
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    r = 6 * fig.dpi / 72
    taken = ([Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in pts]
             if avoid_points else [])
    extra = (dict(bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75))
             if box else {})
    offsets = [(7, 4, "left", "bottom"), (7, -4, "left", "top"), (-7, 4, "right", "bottom"),
               (-7, -4, "right", "top"), (10, 15, "left", "bottom"), (10, -15, "left", "top"),
               (-10, 15, "right", "bottom"), (-10, -15, "right", "top"),
               (14, 27, "left", "bottom"), (14, -27, "left", "top"),
               (-14, 27, "right", "bottom"), (-14, -27, "right", "top")]
    for x, y, text, color in zip(xs, ys, texts, colors):
        chosen, box_px = offsets[0], None
        for off in offsets:
            dx, dy, ha, va = off
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              ha=ha, va=va, fontsize=SMALL, annotation_clip=False, **extra)
            bb = ann.get_window_extent(renderer).padded(2)
            ann.remove()
            inside = (bb.x0 >= frame.x0 and bb.x1 <= frame.x1 and bb.y0 >= frame.y0
                      and bb.y1 <= frame.y1)
            if box_px is None:
                box_px = bb  # nowhere free: the first offset
            if inside and not any(bb.overlaps(o) for o in taken):
                chosen, box_px = off, bb
                break
        dx, dy, ha, va = chosen
        leader = {} if abs(dy) < 10 else dict(arrowprops=dict(
            arrowstyle="-", color=color, lw=0.7, shrinkA=1, shrinkB=3 if box else 5))
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                    fontsize=SMALL, color=color, zorder=1000, annotation_clip=False,
                    **extra, **leader)
        taken.append(box_px)


@styled
def head_ranking(summary, path, title: str, dpi: int = 150, n_mark: int = 3) -> None:
    """Scores of every head by layer (the study's Figure 3), top and bottom heads marked."""
    fig, ax = plt.subplots(figsize=(9, 5))
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.18, 0.18, len(summary))
    s = summary.assign(x=summary["layer"].to_numpy() + jitter)
    ax.errorbar(s["x"], s["score"],
                yerr=[s["score"] - s["ci_low"], s["ci_high"] - s["score"]],
                fmt="none", ecolor="#bdc3c7", lw=0.8, zorder=1)
    ax.scatter(s["x"], s["score"], s=18, color="#7f8c8d", alpha=0.75, lw=0, zorder=2,
               label="head (bar: bootstrap 95% CI over samples)")
    layers = sorted(s["layer"].unique())
    ax.plot(layers, s.groupby("layer")["score"].mean().loc[layers], color="#34495e", lw=1.2,
            zorder=2, label="layer mean")
    ax.set_xlabel("layer (points jittered within a layer)")
    ax.set_ylabel("attention to the first token")
    ax.set_ylim(-0.04, 1.06)
    ax.set_xlim(min(layers) - 0.7, max(layers) + 0.7)
    layer_ticks(ax, layers)
    ax.grid(alpha=0.3, lw=0.5)
    ranked = s.sort_values(["rank", "layer", "head"])
    marked = []
    for sub, color, name in ((ranked.head(n_mark), "#c0392b", "top"),
                             (ranked.tail(n_mark), "#2980b9", "bottom")):
        heads = ", ".join(f"L{int(r.layer)}H{int(r.head)}" for r in sub.itertuples())
        ax.scatter(sub["x"], sub["score"], s=70, facecolor="none", edgecolor=color, lw=1.8,
                   zorder=3, label=f"{name} {n_mark}: {heads}")
        marked += [(r.x, r.score, f"L{int(r.layer)}H{int(r.head)}", color)
                   for r in sub.itertuples()]
    if marked:
        _place_labels(ax, *zip(*marked))
    ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    ax.set_title(f"{title}: head scores by layer")
    save(fig, path, dpi)


# ------------------------------------------------------------------ pruning
@styled
def pruning(changes, path, title: str, dpi: int = 150, log_scale: bool = True) -> None:
    """Baseline vs pruned top-1..3 per layer, and the relative change (Figures 5 and 6)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw=dict(wspace=0.28))
    x = changes["layer"].to_numpy()
    for s in ("top1", "top2", "top3", "median"):
        st = STYLE[s]
        a.plot(x, changes[f"baseline_{s}"], color=st["color"], lw=1.8,
               label=f"{st['label']} baseline")
        a.plot(x, changes[f"pruned_{s}"], color=st["color"], lw=1.3, ls="--", marker="x", ms=5,
               label=f"{st['label']} pruned")
        b.plot(x, 100 * changes[f"change_{s}"], color=st["color"], marker="o", ms=4, lw=1.5,
               label=st["label"])
    b.fill_between(x, 100 * changes["change_top1_lo"], 100 * changes["change_top1_hi"],
                   color=STYLE["top1"]["color"], alpha=0.15, lw=0,
                   label="shaded: top 1, 95% CI over samples")
    b.axhline(0, color="black", lw=0.7)
    if log_scale:
        a.set_yscale("log")
    a.set_ylabel("|activation| (mean over samples)")
    b.set_ylabel("relative change (pruned vs baseline)")
    b.yaxis.set_major_formatter(mticker.FuncFormatter(percent_label))
    for ax in (a, b):
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3, lw=0.5)
        layer_ticks(ax, x)
    a.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14), handlelength=2.2)
    b.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle(textwrap.fill(title, 110))
    save(fig, path, dpi)


@styled
def pruning_overview(changes_by: dict, path, title: str, dpi: int = 150,
                     randoms: list[str] = (), matched: dict | None = None) -> None:
    """Every experiment's top-1 change per layer; the random controls (``randoms``) and
    each set's layer-matched controls (``matched``) as bands (Figure 4)."""
    fig, ax = plt.subplots(figsize=(10, 5))
    matched = matched or {}
    bands = [(randoms, "random heads", "#95a5a6")] + [
        (cs, f"matched to {t}", "#d4ac0d") for t, cs in matched.items()]
    layers = []
    for names, what, color in bands:
        rand = [changes_by[e] for e in names if e in changes_by]
        if not rand:
            continue
        x = rand[0]["layer"].to_numpy()
        layers.append(x)
        r = 100 * np.stack([c["change_top1"].to_numpy() for c in rand])
        ax.fill_between(x, r.min(0), r.max(0), color=color, alpha=0.3, lw=0,
                        label=f"{what}: min–max of {len(rand)} seeds")
        ax.plot(x, r.mean(0), color=color, ls="--", lw=1.3, label=f"{what}: mean of seeds")
    colors = plt.cm.tab10.colors
    controls = set(randoms) | {c for cs in matched.values() for c in cs}
    others = [e for e in changes_by if e not in controls]
    for i, e in enumerate(others):
        c = changes_by[e]
        layers.append(c["layer"].to_numpy())
        # each later set a little thinner, so that sets with the same changes (a frozen
        # norm where the model has none) stay visible under one another
        ax.plot(c["layer"], 100 * c["change_top1"], marker="o", ms=max(2.5, 6 - 1.2 * i),
                lw=max(1.0, 2.8 - 0.6 * i), color=colors[i % 10], label=e)
        ax.fill_between(c["layer"], 100 * c["change_top1_lo"], 100 * c["change_top1_hi"],
                        color=colors[i % 10], alpha=0.12, lw=0)
    ax.axhline(0, color="black", lw=0.7)
    ax.set_xlabel("layer")
    ax.set_ylabel("change of top-1 |x|")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(percent_label))
    if layers:
        layer_ticks(ax, np.unique(np.concatenate(layers)))
    ax.grid(alpha=0.3, lw=0.5)
    handles, labels = ax.get_legend_handles_labels()
    if others:
        handles.append(Patch(color="#7f8c8d", alpha=0.2, lw=0))
        labels.append("shaded around a line:\n95% CI over samples")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{title}: top-1 massive activation after pruning head sets")
    save(fig, path, dpi)


@styled
def feature3d_compare(before, after, tokens, path, title: str, heads_label: str, dpi: int = 150,
                      n_labels: int = 3) -> None:
    """The layer's 3D |x| picture before (left) and after (right) pruning, same scale."""
    zmax = max(float(np.abs(before).max()), float(np.abs(after).max())) * 1.05
    fig = plt.figure()
    axes, cax = _feature3d_layout(fig, len(tokens), 2)
    mappable = None
    for ax, (vals, name) in zip(axes, ((before, "baseline"), (after, f"pruned {heads_label}"))):
        mappable = draw_feature3d(ax, np.abs(vals), tokens, name, n_labels, zmax)
    _feature3d_colorbar(fig, mappable, cax)
    fig.suptitle(title + "  (same |x| scale in both panels)")
    save(fig, path, dpi)


@styled
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
    fig, ax = plt.subplots(figsize=(12, 0.3 * len(tokens) + 3.0))
    im = ax.imshow(diff, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels([token_label(t) for t in tokens],
                       fontsize=SMALL)
    ax.set_ylabel("token")
    ax.set_xlabel("feature dim (vertical lines: the most changed dims)")
    for d in top_dims:
        ax.axvline(d, color="black", lw=0.5, alpha=0.5)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="pruned − baseline")
    dims_txt = ", ".join(f"{d} (Δ{by_dim[d]:.3g})" for d in top_dims)
    ax.set_title(f"{title}, pruned {heads_label}\n"
                 f"top-1 |x| {a0.max():,.1f} at ({token_label(tokens[t0[0]])}, dim {t0[1]}) → "
                 f"{a1.max():,.1f} at ({token_label(tokens[t1[0]])}, dim {t1[1]}): "
                 f"{change:+.2f} %\n"
                 f"most changed dims (max |Δ| over tokens): {dims_txt}")
    save(fig, path, dpi)


def _nice_ceil(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is ≥ v."""
    if not np.isfinite(v) or v <= 0:
        return 1.0
    e = 10.0 ** np.floor(np.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v * (1 - 1e-9):
            return float(m * e)
    return float(10 * e)


@styled
def components(changes_by: dict, summary, path, title: str, dpi: int = 150) -> None:
    """Which component creates the massive activation, and at which layer.

    Left and middle: for each ablated layer (rows), the change of the top-1 |x| at
    every measured layer (columns), in % (ablated / baseline − 1; −100 % = gone), on a
    colour scale symmetric around 0 and capped at ±100 %. Right: the perplexity change
    of each ablation (95% CI), in %.
    """
    from .analysis import change_matrix

    mats = {k: change_matrix(changes_by, k) for k in ("attn", "mlp")}
    fig = plt.figure(figsize=(16, 5.6))
    gs = fig.add_gridspec(1, 5, width_ratios=[1, 1, 0.05, 0.62, 1.1], wspace=0.3)
    axes = [fig.add_subplot(gs[0, i]) for i in (0, 1, 4)]
    cax = fig.add_subplot(gs[0, 2])
    pct = {k: 100 * m for k, (_, _, m) in mats.items()}
    vals = np.concatenate([p.ravel() for p in pct.values()])
    vals = vals[np.isfinite(vals)]
    big = float(np.abs(vals).max()) if vals.size else 1.0
    lim = min(_nice_ceil(big), 100.0)
    norm = Normalize(vmin=-lim, vmax=lim)
    im = None
    for ax, kind, name in ((axes[0], "attn", "attention"), (axes[1], "mlp", "MLP")):
        abl, layers, _ = mats[kind]
        if not len(abl):
            ax.set_axis_off()
            continue
        im = ax.imshow(pct[kind], cmap="RdBu_r", norm=norm, aspect="auto", origin="lower",
                       extent=(layers[0] - 0.5, layers[-1] + 0.5, -0.5, len(abl) - 0.5),
                       interpolation="nearest")
        ax.set_yticks(range(len(abl)))
        ax.set_yticklabels(abl if len(abl) <= 16 else
                           [a if i % 2 == 0 else "" for i, a in enumerate(abl)])
        layer_ticks(ax, layers, most=10)  # the heatmaps are narrow
        ax.set_xlabel("measured layer")
        ax.set_ylabel(f"{name} of this layer removed")
        ax.set_title(f"{name} removed,\none layer at a time")
    if im is not None:
        cb = fig.colorbar(im, cax=cax,
                          extend="max" if vals.size and vals.max() > lim else "neither")
        cb.formatter = mticker.FuncFormatter(percent_label)
        cb.locator = mticker.MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10])
        cb.update_ticks()
        cb.set_label("top-1 |x| change (ablated vs baseline)")
    else:
        cax.set_axis_off()
    ax = axes[2]
    per = summary[summary["layer"] >= 0]
    shown = []
    for kind, color, dx in (("attn", "#2471a3", -0.15), ("mlp", "#c0392b", 0.15)):
        k = per[per["component"] == kind]
        y = 100 * k["ppl_change"].to_numpy()
        lohi = 100 * k[["ppl_change_lo", "ppl_change_hi"]].to_numpy().T
        shown += [y, lohi.ravel()]
        ax.errorbar(k["layer"] + dx, y, yerr=np.abs(lohi - y),
                    fmt="o", ms=5, color=color, label="attention" if kind == "attn" else "MLP",
                    elinewidth=1.0, capsize=0)
    allr = summary[summary["layer"] < 0]
    notes = [f"all {'attention sublayers' if r.component == 'attn' else 'MLPs'} removed: "
             f"top-1 at layer {r.peak_layer} {100 * r.change_at_peak:+.1f}%, perplexity "
             + (f"×{1 + r.ppl_change:.3g}" if r.ppl_change > 1 else f"{100 * r.ppl_change:+.1f}%")
             for r in allr.itertuples()]
    percent_axis(ax, np.concatenate(shown) if shown else [])
    ax.axhline(0, color="k", lw=0.7)
    if len(per):
        layer_ticks(ax, np.unique(per["layer"].to_numpy()), most=12)
    ax.set_xlabel("layer removed")
    ax.set_ylabel("perplexity change")
    ax.set_title("perplexity on held-out windows\n(95% CI over windows)")
    ax.legend()
    ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle(f"{title}: component ablations", y=1.02)
    if notes:
        fig.text(0.5, -0.06, "\n".join(notes), ha="center", va="top")
    save(fig, path, dpi)


CUMULATIVE_STYLE = {"top": dict(color="#c0392b", label="top-k heads"),
                    "bottom": dict(color="#2471a3", label="bottom-k heads"),
                    "random": dict(color="#7f8c8d", label="random-k heads")}


def _all_heads(rows, k: int) -> bool:
    """Whether the ``k`` heads removed at the largest k are all the model's heads: the
    ``heads`` listed (``layer.head;…``) fill the whole layers × heads grid."""
    if "heads" not in rows:
        return False
    try:
        hs = {tuple(int(v) for v in h.split(".")) for h in
              str(rows.loc[rows["k"] == k, "heads"].iloc[0]).split(";") if h}
    except (ValueError, IndexError):
        return False
    if not hs or len(hs) != k:
        return False
    n_layers = max(l for l, _ in hs) + 1
    n_heads = max(h for _, h in hs) + 1
    return len(hs) == n_layers * n_heads


def _k_axis(ax, ks, total: int | None, panel_width_in: float) -> None:
    """Log k axis with a tick at every k, ``all (N)`` at ``total`` (the model's number of
    heads; None: no k removes all), labels thinned so that they do not collide, and a
    margin on both sides."""
    ks = np.unique(np.asarray(ks, dtype=int))
    lo, hi = ks.min() / 1.5, ks.max() * 1.5
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    span = np.log10(hi / lo)
    labels = {int(k): (f"all ({total})" if k == total else str(int(k))) for k in ks}
    width = {k: (0.085 * len(s) + 0.12) / panel_width_in * span for k, s in labels.items()}
    shown, last = {}, None
    for k in ks[::-1]:  # from the largest (all heads) down
        k = int(k)
        if last is None or np.log10(last / k) >= (width[k] + width[last]) / 2:
            shown[k], last = labels[k], k
        elif last == total and len(shown) == 1:  # k just below all: all goes a line down
            shown[total] = "\n" + labels[total]
            shown[k], last = labels[k], k
    ax.xaxis.set_major_locator(mticker.FixedLocator(ks))
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, pos: shown.get(int(round(v)), "")))


@styled
def cumulative(rows, path, title: str, dpi: int = 150) -> None:
    """Change of the massive activation (at its peak layer, and averaged over layers) and
    of the perplexity against the number of heads removed."""
    panels = (("peak_change", "largest top-1 |x| over layers, change",
               "the massive activation\n(95% CI over samples)"),
              ("layer_change", "top-1 |x| change, mean over layers",
               "averaged over layers\n(95% CI over samples)"),
              ("ppl_change", "perplexity change", "held-out perplexity\n(95% CI over windows)"))
    width = 16.0
    fig, axes = plt.subplots(1, 3, figsize=(width, 5.0))
    total = int(rows["k"].max())
    every = _all_heads(rows, total)
    n_seeds = rows.loc[rows["kind"] == "random", "seed"].nunique()
    for ax, (col, label, sub) in zip(axes, panels):
        shown = []
        for kind, st in CUMULATIVE_STYLE.items():
            d = rows[rows["kind"] == kind].sort_values("k")
            if not len(d):
                continue
            if kind == "random":
                g = d.groupby("k")
                k = g[col].mean().index.to_numpy()
                lo, hi = 100 * g[f"{col}_lo"].min(), 100 * g[f"{col}_hi"].max()
                ax.fill_between(k, lo, hi, color=st["color"], alpha=0.2, lw=0,
                                label=f"shaded: {st['label']}, envelope of the {n_seeds} seeds' "
                                      "95% CIs (lowest lower to highest upper bound)")
                ax.plot(k, 100 * g[col].mean(), marker="o", ms=4, lw=1.6,
                        label=f"{st['label']} (mean of {n_seeds} seeds)", color=st["color"])
                shown += [lo.to_numpy(), hi.to_numpy()]
            else:
                lohi = 100 * d[[f"{col}_lo", f"{col}_hi"]].to_numpy().T
                ax.errorbar(d["k"], 100 * d[col], yerr=np.abs(lohi - 100 * d[col].to_numpy()),
                            marker="o", ms=4, lw=1.6, capsize=3, **st)
                shown += [lohi.ravel(), 100 * d[col].to_numpy()]
        percent_axis(ax, np.concatenate(shown) if shown else [])
        _k_axis(ax, rows["k"], total if every else None, width / 3 * 0.8)
        ax.axhline(0, color="k", lw=0.7)
        ax.set_xlabel("heads removed (k, log scale)")
        ax.set_ylabel(label)
        ax.set_title(sub)
        ax.grid(alpha=0.3, lw=0.5)
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("shaded"))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], ncol=2,
               loc="upper center", bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"{title}: cumulative head pruning, up to "
                 + (f"all {total} heads" if every else f"k = {total} heads"))
    fig.tight_layout()
    save(fig, path, dpi)


@styled
def models_layerwise(summaries: dict, path, dpi: int = 150) -> None:
    """Top-1 / median |x| per layer of every model, depth normalized."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, s) in enumerate(summaries.items()):
        n = len(s)
        x = s["layer"].to_numpy() / max(n - 1, 1)
        ax.plot(x, s["ratio"], marker="o", ms=4, lw=1.7, color=colors[i % len(colors)],
                label=f"{name} ({n} layers)")
    ax.set_yscale("log")
    ax.set_xlabel("relative depth (layer / last layer)")
    ax.set_ylabel("top-1 |x| / median |x|")
    ax.set_title("Massive activations across models (mean over samples)")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend()
    save(fig, path, dpi)
