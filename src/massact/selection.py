"""Named head sets for the pruning experiments, from rules in the config.

A rule is one of
  ``{top: k}`` / ``{bottom: k}``      the k highest / lowest scoring heads;
  ``{top_in_layers: [l, ...]}``       the best head of each listed layer;
  ``{random: k, seeds: [s, ...]}``    k heads drawn among all, one set per seed,
                                      named ``<name>-<seed>``;
  ``{heads: [[layer, head], ...]}``   an explicit list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError, UserError

if TYPE_CHECKING:  # the workflow reads this module while it parses: no pandas there
    import pandas as pd

KINDS = ("top", "bottom", "top_in_layers", "random", "heads")


def expand(sets: dict) -> dict[str, dict]:
    """One experiment per name; a random rule becomes one experiment per seed."""
    out = {}
    for name, rule in sets.items():
        if "random" in rule:
            for seed in rule.get("seeds", [0]):
                out[f"{name}-{seed}"] = {"random": rule["random"], "seed": int(seed)}
        else:
            out[name] = dict(rule)
    return out


def check(sets: dict, n_layers: int, n_heads: int, where: str) -> None:
    """Raise ConfigError (naming the key) for a rule that cannot apply to the model."""
    total = n_layers * n_heads
    for name, rule in sets.items():
        key = f"{where}.{name}"
        if name == "summary":
            raise ConfigError(key, "'summary' is reserved (figures/pruning_summary.png)")
        kinds = [k for k in KINDS if k in rule]
        if len(kinds) != 1:
            raise ConfigError(key, f"a head set needs exactly one of {', '.join(KINDS)}")
        kind = kinds[0]
        if kind in ("top", "bottom", "random") and not 1 <= rule[kind] <= total:
            raise ConfigError(f"{key}.{kind}", f"{rule[kind]} heads asked, the model has {total}")
        if kind == "top_in_layers":
            for i, layer in enumerate(rule[kind]):
                if not 0 <= layer < n_layers:
                    raise ConfigError(f"{key}.top_in_layers[{i}]",
                                      f"layer {layer} is outside the model (0..{n_layers - 1})")
        if kind == "heads":
            for i, (layer, head) in enumerate(rule[kind]):
                if not (0 <= layer < n_layers and 0 <= head < n_heads):
                    raise ConfigError(f"{key}.heads[{i}]",
                                      f"head [{layer}, {head}] is outside the model "
                                      f"(layers 0..{n_layers - 1}, heads 0..{n_heads - 1})")


def check_scores(scores: pd.DataFrame) -> None:
    """Refuse scores with a NaN: it would sort as the lowest (a "bottom" head) or the
    highest depending on the sort, silently."""
    bad = scores[scores["score"].isna()]
    if len(bad):
        heads = ", ".join(f"L{int(l)}H{int(h)}" for l, h in zip(bad["layer"], bad["head"]))
        raise UserError(f"{len(bad)} head scores are NaN ({heads}): the attention of those heads "
                        "is not a number on these windows (an overflow in float16, or a fully "
                        "masked row); rerun in float32 or bfloat16, or check the model")


def select(scores: pd.DataFrame, rule: dict) -> list[list[int]]:
    """The heads ([[layer, head], ...], sorted) a rule picks, given the head scores."""
    if "heads" not in rule:
        check_scores(scores)
    ranked = scores.sort_values(["score", "layer", "head"], ascending=[False, True, True])
    if "top" in rule:
        picked = ranked.head(rule["top"])
    elif "bottom" in rule:
        picked = ranked.iloc[::-1].head(rule["bottom"])
    elif "top_in_layers" in rule:
        picked = ranked[ranked["layer"].isin(rule["top_in_layers"])].drop_duplicates("layer")
    elif "random" in rule:
        import numpy as np

        allh = scores.sort_values(["layer", "head"])
        idx = np.random.default_rng(rule.get("seed", 0)).choice(len(allh), rule["random"],
                                                                 replace=False)
        picked = allh.iloc[idx]
    elif "heads" in rule:
        return sorted([int(l), int(h)] for l, h in rule["heads"])
    else:
        raise ValueError(f"unknown head-set rule {rule}")
    return sorted([int(l), int(h)] for l, h in zip(picked["layer"], picked["head"]))
