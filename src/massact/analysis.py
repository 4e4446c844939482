"""Summaries of layer statistics: the layer-wise table and the massive activations."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from .resampling import (against_sets, bootstrap_ci, p_floor,  # noqa: F401  (public here too)
                         paired_permutation_p, rank_p_floor)

log = logging.getLogger(__name__)

STATS = ["top1", "top2", "top3", "median"]


def per_sample(stats: pa.Table) -> pd.DataFrame:
    """One row per (sample, layer): top1..3, median, mean, and the top-1's location."""
    df = stats.to_pandas()
    top = df[df["rank"] <= 3].pivot(index=["sample", "layer"], columns="rank", values="value")
    top.columns = [f"top{r}" for r in top.columns]
    first = df[df["rank"] == 1].set_index(["sample", "layer"])
    out = top.join(first[["median", "mean", "token_pos", "token_text", "dim"]])
    return out.reset_index().sort_values(["sample", "layer"], kind="stable")


def modal_top1(frame: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the most common (token_pos, dim) of the top-1 over samples and its count
    ``n``; ties go to the lower position, then the lower dim."""
    loc = frame.groupby(["layer", "token_pos", "dim"], sort=True).size().rename("n").reset_index()
    loc = loc.sort_values(["layer", "n", "token_pos", "dim"], ascending=[True, False, True, True])
    return loc.drop_duplicates("layer").set_index("layer")


def layerwise_summary(stats: pa.Table) -> pd.DataFrame:
    """Per layer: mean and spread over samples of top1..3 and median, ratio, top-1 location.

    ``ratio`` is mean(top1) / mean(median); ``top1_share`` is the fraction of
    samples whose top-1 sits at the most common (token position, dim).
    """
    ps = per_sample(stats)
    g = ps.groupby("layer", sort=True)
    out = pd.DataFrame(index=g.size().index)
    for s in STATS:
        out[s] = g[s].mean()
        out[f"{s}_std"] = g[s].std(ddof=1).fillna(0.0)
        out[f"{s}_min"] = g[s].min()
        out[f"{s}_max"] = g[s].max()
    out["ratio"] = out["top1"] / out["median"]
    best = modal_top1(ps)
    out["top1_token_pos"] = best["token_pos"]
    out["top1_dim"] = best["dim"]
    out["top1_share"] = best["n"] / g.size()
    # the most common token text at that position (windows differ in their tokens)
    texts = ps.merge(best[["token_pos", "dim"]].reset_index(), on=["layer", "token_pos", "dim"])
    out["top1_token"] = texts.groupby("layer")["token_text"].agg(lambda s: s.value_counts().index[0])
    out["n_samples"] = g.size()
    return out.reset_index()


def massive_activations(stats: pa.Table, ratio_threshold: float, abs_threshold: float) -> pd.DataFrame:
    """Every recorded entry with |x| > ratio_threshold × median and |x| > abs_threshold."""
    df = stats.to_pandas()
    df["ratio"] = df["value"] / df["median"]
    m = df[(df["value"] > ratio_threshold * df["median"]) & (df["value"] > abs_threshold)]
    kmax = int(df["rank"].max()) if len(df) else 0
    full = m[m["rank"] == kmax]
    if len(full):
        log.warning("%d (sample, layer) pairs have all %d recorded entries massive: raise "
                    "extraction.topk to see them all", len(full), kmax)
    cols = ["sample", "layer", "rank", "token_pos", "token_text", "dim", "value", "median", "ratio"]
    return m[cols].sort_values(["sample", "layer", "rank"], kind="stable").reset_index(drop=True)


def massive_positions(stats: pa.Table, ratio_threshold: float, abs_threshold: float,
                      n_samples: int) -> list[list[int]]:
    """Per sample, the token positions that carry a massive activation in any layer."""
    m = massive_activations(stats, ratio_threshold, abs_threshold)
    by = m.groupby("sample")["token_pos"].agg(lambda s: sorted(set(int(p) for p in s)))
    return [by.get(s, []) for s in range(n_samples)]


def in_percent(df: pd.DataFrame, cols) -> pd.DataFrame:
    """A copy with the relative-change columns ``cols`` ×100 and renamed ``<col> (%)``."""
    out = df.copy()
    for c in cols:
        out[c] = 100 * out[c]
    return out.rename(columns={c: f"{c} (%)" for c in cols})


def layerwise_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The statistics table as published: per layer top-1..3, median, ratio, top-1 location."""
    t = summary[["layer", "top1", "top2", "top3", "median", "ratio", "top1_token_pos",
                 "top1_token", "top1_dim", "top1_share"]].copy()
    t["top1_token"] = t["top1_token"].map(repr)
    return t


# ------------------------------------------------------------------ head scores
def head_summary(per_sample: pa.Table, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (layer, head): mean score over samples, std, bootstrap 95% CI, ranks.

    ``rank`` is 1 for the highest mean score of all heads; ``rank_in_layer``
    likewise within the layer. ``n_queries`` is the mean number of scored queries.
    """
    df = per_sample.to_pandas()
    wide = df.pivot(index="sample", columns=["layer", "head"], values="score").sort_index(axis=1)
    lo, hi = bootstrap_ci(wide.to_numpy(), n_boot, seed, stat=np.nanmean)
    out = pd.DataFrame({
        "layer": wide.columns.get_level_values(0).astype(int),
        "head": wide.columns.get_level_values(1).astype(int),
        "score": np.nanmean(wide.to_numpy(), axis=0),
        "std": np.nanstd(wide.to_numpy(), axis=0, ddof=1) if len(wide) > 1 else 0.0,
        "ci_low": lo, "ci_high": hi,
        "n_samples": wide.notna().sum(axis=0).to_numpy(),
    })
    nq = df.groupby(["layer", "head"])["n_queries"].mean()
    out["n_queries"] = nq.loc[list(zip(out["layer"], out["head"]))].to_numpy()
    order = out.sort_values(["score", "layer", "head"], ascending=[False, True, True]).index
    out.loc[order, "rank"] = np.arange(1, len(out) + 1)
    out["rank_in_layer"] = (out.sort_values(["score", "head"], ascending=[False, True])
                            .groupby("layer").cumcount() + 1)
    out = out.astype({"rank": int, "rank_in_layer": int})
    return out.sort_values(["layer", "head"]).reset_index(drop=True)


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def heads_table(summary: pd.DataFrame, n: int, top: bool) -> pd.DataFrame:
    """The study's tables: the n highest (or lowest) scoring heads."""
    s = summary.sort_values("rank", ascending=top).head(n)
    return pd.DataFrame({
        "rank": s["rank"], "head": [head_label(l, h) for l, h in zip(s["layer"], s["head"])],
        "layer": s["layer"], "head_index": s["head"], "score": s["score"], "std": s["std"],
        "ci_low": s["ci_low"], "ci_high": s["ci_high"], "n_queries": s["n_queries"],
    }).reset_index(drop=True)


# ------------------------------------------------------------------ changes
CHANGE_STATS = ["top1", "top2", "top3", "median"]


def paired(baseline: pa.Table, pruned: pa.Table):
    """Per-sample (sample × layer) frames of the two runs, aligned."""
    b = per_sample(baseline).set_index(["sample", "layer"]).sort_index()
    p = per_sample(pruned).set_index(["sample", "layer"]).sort_index()
    if not b.index.equals(p.index):
        raise ValueError("baseline and pruned statistics cover different samples or layers")
    return b, p


def changes(baseline: pa.Table, pruned: pa.Table, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per layer: baseline and pruned top1..3 and median (means over samples), their
    relative change (pruned − baseline) / baseline with a paired bootstrap 95% CI over
    samples, and where the top-1 sits in both runs (``top1_moved``: share of samples
    whose top-1 (token, dim) differs)."""
    b, p = paired(baseline, pruned)
    layers = b.index.get_level_values("layer").unique().sort_values()
    out = pd.DataFrame({"layer": layers})
    for s in CHANGE_STATS:
        bw = b[s].unstack("layer")[layers].to_numpy()  # samples × layers
        pw = p[s].unstack("layer")[layers].to_numpy()
        out[f"baseline_{s}"] = bw.mean(0)
        out[f"pruned_{s}"] = pw.mean(0)
        out[f"change_{s}"] = pw.mean(0) / bw.mean(0) - 1
        lo, hi = bootstrap_ci(np.stack([bw, pw], -1), n_boot, seed,
                              stat=lambda v, axis: v[..., 1].mean(axis) / v[..., 0].mean(axis) - 1)
        out[f"change_{s}_lo"], out[f"change_{s}_hi"] = lo, hi
    for name, frame in (("baseline", b), ("pruned", p)):
        best = modal_top1(frame).loc[layers]
        out[f"{name}_top1_pos"] = best["token_pos"].to_numpy()
        out[f"{name}_top1_dim"] = best["dim"].to_numpy()
    same = (b["token_pos"] == p["token_pos"]) & (b["dim"] == p["dim"])
    out["top1_moved"] = 1 - same.groupby(level="layer").mean().loc[layers].to_numpy()
    return out


def sample_mean_change(baseline: pa.Table, pruned: pa.Table, stat: str = "top1") -> np.ndarray:
    """Per sample: the relative change of ``stat`` averaged over layers."""
    b, p = paired(baseline, pruned)
    return ((p[stat] / b[stat] - 1).groupby(level="sample").mean()).to_numpy()


def controls(rules: dict[str, dict]) -> tuple[list[str], str | None, dict[str, list[str]]]:
    """(the random controls, the bottom set or None, {tested set: its layer-matched
    controls}), recognised by their head-set rule (massact.selection), not their name."""
    randoms = sorted(e for e, r in rules.items() if "random" in r)
    bottoms = [e for e, r in rules.items() if "bottom" in r]
    matched: dict[str, list[str]] = {}
    for e, r in sorted(rules.items()):
        if "matched" in r:
            matched.setdefault(r["matched"], []).append(e)
    return randoms, bottoms[0] if len(bottoms) == 1 else None, matched


def pruning_summary(baseline: pa.Table, runs: dict[str, pa.Table], changes_by: dict[str, pd.DataFrame],
                    rules: dict[str, dict], n_boot: int = 1000, seed: int = 0,
                    ppl_base: pa.Table | None = None,
                    ppl_by: dict[str, pa.Table] | None = None,
                    designs: dict[str, tuple] | None = None) -> pd.DataFrame:
    """Per experiment: mean top-1 change over layers (95% CI over samples), the largest
    change and its layer, and where it stands against the random control; with
    ``ppl_by``, the perplexity change (95% CI over held-out windows) and the same tests
    on the per-window mean nll. ``rules`` (experiment → head-set rule) tells the random
    controls and the bottom set (massact.selection). ``designs`` (experiment → e.g.
    (number of heads, post-attention norm)): a set is compared only with random and
    bottom sets of the same design, so that a difference is the heads', not the size's
    or the norm's; a set with none has no such comparison."""
    per = {e: sample_mean_change(baseline, t) for e, t in runs.items()}
    randoms, bottom, matched = controls({e: rules[e] for e in runs})
    is_control = set(randoms) | {c for cs in matched.values() for c in cs}

    def like(e, others):
        return [o for o in others if designs is None or designs[o] == designs[e]]

    rows = []
    for e in runs:
        c = changes_by[e]
        i = int(np.argmax(np.abs(c["change_top1"].to_numpy())))
        lo, hi = bootstrap_ci(per[e], n_boot, seed)
        row = {"experiment": e, "mean_change": per[e].mean(), "mean_change_lo": float(lo),
               "mean_change_hi": float(hi), "max_change": float(c["change_top1"].iloc[i]),
               "max_change_layer": int(c["layer"].iloc[i]), "n_samples": len(per[e])}
        rand = [] if e in is_control else like(e, randoms)
        rand = [r for r in rand if not np.isnan(per[r].mean())]
        if rand:
            # over head sets: is this set's mean change unusual among the random sets?
            rank, lo_r, hi_r, p_set = against_sets(per[e].mean(), [per[r].mean() for r in rand])
            row["random_rank"], row["n_random"] = rank, len(rand)  # rank 1 = below all
            row["random_min"], row["random_max"], row["set_p_vs_random"] = lo_r, hi_r, p_set
            row["set_p_floor"] = rank_p_floor(len(rand))
            row["p_vs_random"] = paired_permutation_p(
                per[e] - np.mean([per[r] for r in rand], axis=0), seed=seed)
        # the bottom set as a comparison: for a tested set of its design, not itself
        vs_bottom = (bottom if bottom and e not in is_control and e != bottom
                     and like(e, [bottom]) else None)
        if vs_bottom:
            row["p_vs_bottom"] = paired_permutation_p(per[e] - per[vs_bottom], seed=seed)
        if matched.get(e):
            mine = matched[e]
            row["n_matched"] = len(mine)
            row["p_vs_matched"] = paired_permutation_p(
                per[e] - np.mean([per[c] for c in mine], axis=0), seed=seed)
        if e not in is_control:
            row["p_floor"] = p_floor(len(per[e]))
        if ppl_by is not None:
            row.update(_ppl_columns(e, ppl_base, ppl_by, rand, vs_bottom, n_boot, seed,
                                    matched.get(e, []), is_control))
        rows.append(row)
    return pd.DataFrame(rows)


def _ppl_columns(e, base, ppl_by, randoms, bottom, n_boot, seed, matched, is_control) -> dict:
    from .resampling import compare, window_values

    r = ppl_by[e].to_pylist()[0]
    c = compare(base, ppl_by[e], n_boot, seed)
    out = {"ppl": r["ppl"], "ppl_lo": r["ppl_lo"], "ppl_hi": r["ppl_hi"],
           "ppl_change": c["ppl_change"], "ppl_change_lo": c["ppl_change_lo"],
           "ppl_change_hi": c["ppl_change_hi"], "n_windows": r["n_windows"]}
    nll = {k: np.divide(*window_values(t)) for k, t in ppl_by.items()}  # mean nll per window
    if randoms and e not in is_control:
        (out["ppl_random_rank"], out["ppl_random_min"], out["ppl_random_max"],
         out["ppl_set_p_vs_random"]) = against_sets(
            c["ppl_change"], [compare(base, ppl_by[x], 0, seed)["ppl_change"] for x in randoms])
        out["ppl_p_vs_random"] = paired_permutation_p(
            nll[e] - np.mean([nll[x] for x in randoms], axis=0), seed=seed)
    if bottom:
        out["ppl_p_vs_bottom"] = paired_permutation_p(nll[e] - nll[bottom], seed=seed)
    if matched:
        out["ppl_p_vs_matched"] = paired_permutation_p(
            nll[e] - np.mean([nll[x] for x in matched], axis=0), seed=seed)
    if e not in is_control:
        out["ppl_p_floor"] = c["ppl_p_floor"]
    return out


# ------------------------------------------------------------------ components
def components_summary(changes_by: dict[str, pd.DataFrame], ppl_by: dict[str, dict]) -> pd.DataFrame:
    """Per component ablation: the change of the top-1 at the peak layer (where the
    baseline top-1 is largest: ``change_at_peak``) and at the last layer (``change_at_last``), the largest change and its
    layer (95% CIs over samples), and the perplexity change (95% CI over windows, p).

    ``ppl_by[name]`` is :func:`massact.perplexity.compare`'s dict plus ``ppl``/``ppl_lo``/``ppl_hi``.
    """
    rows = []
    for name, c in changes_by.items():
        peak = int(np.argmax(c["baseline_top1"].to_numpy()))
        last = len(c) - 1
        i = int(np.argmax(np.abs(c["change_top1"].to_numpy())))
        kind, _, which = name.partition("-")
        row = {"ablation": name, "component": kind, "layer": -1 if which == "all" else int(which),
               "peak_layer": int(c["layer"].iloc[peak])}
        for tag, j in (("peak", peak), ("last", last)):
            row[f"change_at_{tag}"] = float(c["change_top1"].iloc[j])
            row[f"change_at_{tag}_lo"] = float(c["change_top1_lo"].iloc[j])
            row[f"change_at_{tag}_hi"] = float(c["change_top1_hi"].iloc[j])
        row["max_change"] = float(c["change_top1"].iloc[i])
        row["max_change_layer"] = int(c["layer"].iloc[i])
        row["median_change_last"] = float(c["change_median"].iloc[last])
        row.update({k: ppl_by[name][k] for k in ("ppl", "ppl_lo", "ppl_hi", "ppl_change",
                                                  "ppl_change_lo", "ppl_change_hi", "ppl_p",
                                                  "ppl_p_floor")})
        rows.append(row)
    df = pd.DataFrame(rows)
    df["order"] = df["layer"].where(df["layer"] >= 0, -1)
    df = df.sort_values(["order", "component"]).drop(columns="order")
    return df.reset_index(drop=True)


def long_changes(by: dict[str, pd.DataFrame]) -> pa.Table:
    """Per-ablation change frames (:func:`changes`) as one table, an ``ablation`` column
    first, in the order given."""
    frames = [f.assign(ablation=a)[["ablation", *f.columns]] for a, f in by.items()]
    return pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)


def components_from_files(ablations: list[str], changes, ppl, ppl_baseline,
                          n_boot: int, seed: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Read a model's component ablations (the long tables of rule component_ablations):
    ``({ablation: changes frame}, components_summary)``, in the order of ``ablations``."""
    from .io import read_parquet
    from .resampling import compare

    base = read_parquet(ppl_baseline)
    long = read_parquet(changes).to_pandas()
    runs = read_parquet(ppl)
    rows = {r: i for i, r in enumerate(runs["run"].to_pylist())}
    ch, by = {}, {}
    for a in ablations:
        if a not in rows:
            raise ValueError(f"{ppl} has no run {a!r}")
        ch[a] = long[long["ablation"] == a].drop(columns="ablation").reset_index(drop=True)
        t = runs.slice(rows[a], 1)
        by[a] = {**t.select(["ppl", "ppl_lo", "ppl_hi"]).to_pylist()[0],
                 **compare(base, t, n_boot, seed)}
    return ch, components_summary(ch, by)


def change_matrix(changes_by: dict[str, pd.DataFrame], kind: str, stat: str = "top1") -> tuple:
    """(ablated layers, measured layers, matrix of ``change_<stat>``) for ``kind``-<l> runs."""
    names = sorted((n for n in changes_by if n.startswith(kind + "-") and n != f"{kind}-all"),
                   key=lambda n: int(n.split("-")[1]))
    if not names:
        return [], [], np.zeros((0, 0))
    layers = changes_by[names[0]]["layer"].to_numpy()
    m = np.stack([changes_by[n][f"change_{stat}"].to_numpy() for n in names])
    return [int(n.split("-")[1]) for n in names], layers, m


# ------------------------------------------------------------------ across models
def model_headlines(model: str, layerwise: pd.DataFrame, massive: pd.DataFrame,
                    heads_top: pd.DataFrame, pruning: pd.DataFrame | None,
                    components: pd.DataFrame | None, intervention: pd.DataFrame | None,
                    n_layers: int) -> dict:
    """One row of the cross-model table: where and how large the massive activations
    are, the top head, and the pruning, component and intervention headlines."""
    peak = layerwise.loc[layerwise["top1"].idxmax()]
    mlayers = sorted(massive["layer"].unique().tolist()) if len(massive) else []
    dims = (massive.groupby("dim").size().rename("n").reset_index()
            .sort_values(["n", "dim"], ascending=[False, True])["dim"].head(3).tolist()
            if len(massive) else [])
    row = {"model": model, "layers": n_layers,
           "massive_layers": _ranges(mlayers) if mlayers else "none",
           "peak_top1": float(peak["top1"]), "peak_layer": int(peak["layer"]),
           "peak_ratio": float(peak["ratio"]), "top1_token_pos": int(peak["top1_token_pos"]),
           "dims": " ".join(map(str, dims)) if dims else "-"}
    t = heads_top.iloc[0]
    row["top_head"] = f"{t['head']} ({t['score']:.3f})"
    if pruning is not None:
        for e in ("top", "bottom"):
            r = pruning[pruning["experiment"] == e]
            if len(r):
                row[f"prune_{e}_change"] = float(r["mean_change"].iloc[0])
                if "ppl_change" in r:
                    row[f"prune_{e}_ppl_change"] = float(r["ppl_change"].iloc[0])
    if components is not None and len(components):
        per = components[components["layer"] >= 0]
        for kind in ("attn", "mlp"):
            k = per[per["component"] == kind]
            if len(k):
                w = k.loc[k["change_at_peak"].idxmin()]
                row[f"{kind}_layer_most_needed"] = f"{int(w['layer'])} ({100 * w['change_at_peak']:+.1f}%)"
    if intervention is not None and len(intervention):
        for mode in ("zero", "mean"):
            r = intervention[(intervention["mode"] == mode) & (intervention["condition"] == "massive")]
            one, every = r[r["layer"] >= 0], r[r["layer"] == -1]  # -1: every layer at once
            if len(one):
                row[f"ppl_{mode}_massive"] = float(one["ppl_change"].iloc[0])
            if len(every):
                row[f"ppl_{mode}_massive_every"] = float(every["ppl_change"].iloc[0])
    return row


def _ranges(layers: list[int]) -> str:
    """[1, 2, 3, 7] → '1–3, 7'."""
    out, start = [], layers[0]
    for a, b in zip(layers, layers[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}–{a}" if a != start else str(a))
            start = b
    return ", ".join(out)


def features_array(table: pa.Table, layer: int):
    """(tokens × hidden numpy array, token texts) of one layer of a prompt-features table."""
    t = table.filter(pa.compute.equal(table["layer"], layer)).sort_by("token_pos")
    return np.array(t.column("values").to_pylist(), dtype=np.float32), t.column("token_text").to_pylist()
