"""Summaries of layer statistics: the layer-wise table and the massive activations."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

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
    loc = ps.groupby(["layer", "token_pos", "dim"], sort=True).size().rename("n").reset_index()
    loc = loc.sort_values(["layer", "n", "token_pos", "dim"], ascending=[True, False, True, True])
    best = loc.drop_duplicates("layer").set_index("layer")
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


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:,.2f}") -> str:
    """A GitHub-flavoured Markdown table (no optional dependency)."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return floatfmt.format(v)
        return str(v).replace("|", "\\|").replace("\n", "\\n")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows]) + "\n"


def layerwise_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The statistics table as published: per layer top-1..3, median, ratio, top-1 location."""
    t = summary[["layer", "top1", "top2", "top3", "median", "ratio", "top1_token_pos",
                 "top1_token", "top1_dim", "top1_share"]].copy()
    t["top1_token"] = t["top1_token"].map(repr)
    return t
