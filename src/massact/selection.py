"""Named head sets for the pruning experiments, from rules in the config.

A rule is one of
  ``{top: k}`` / ``{bottom: k}``      the k highest / lowest scoring heads;
  ``{top_in_layers: [l, ...]}``       the best head of each listed layer;
  ``{random: k, seeds: [s, ...]}``    k heads drawn among all but the tested heads,
                                      one set per seed, named ``<name>-<seed>``;
  ``{matched: name, seeds: [s, ...]}`` a layer-matched control of the set ``name``: as
                                      many heads from each of its layers, drawn among
                                      that layer's heads but the tested ones, one set
                                      per seed, named ``<name>-<seed>``;
  ``{heads: [[layer, head], ...]}``   an explicit list.

Any rule may add ``post_norm: live | frozen``: that set's pruning.post_norm, so that one
config can prune the same heads both ways.

Random and matched sets are the *controls*; every other set is *tested*. A control
never contains a tested head: a random draw that would is drawn again from the same
seeded generator (so a draw that avoids them is the draw it always was), which samples
uniformly among the head sets that avoid them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError, UserError

if TYPE_CHECKING:  # the workflow reads this module while it parses: no pandas there
    import pandas as pd

KINDS = ("top", "bottom", "top_in_layers", "random", "matched", "heads")
CONTROLS = ("random", "matched")
REJECTION_TRIES = 100_000


def expand(sets: dict) -> dict[str, dict]:
    """One experiment per name; a random rule becomes one experiment per seed."""
    out = {}
    for name, rule in sets.items():
        kind = next((k for k in CONTROLS if k in rule), None)
        if kind:
            extra = {"post_norm": rule["post_norm"]} if "post_norm" in rule else {}
            for seed in rule.get("seeds", [0]):
                out[f"{name}-{seed}"] = {kind: rule[kind], "seed": int(seed), **extra}
        else:
            out[name] = dict(rule)
    return out


def is_control(rule: dict) -> bool:
    return any(k in rule for k in CONTROLS)


def tested(sets: dict[str, dict]) -> dict[str, dict]:
    """The tested sets' rules (every set that is not a control)."""
    return {name: rule for name, rule in sets.items() if not is_control(rule)}


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
        if kind == "matched":
            target = sets.get(rule[kind])
            if target is None or is_control(target):
                raise ConfigError(f"{key}.matched", f"{rule[kind]!r} is not a tested head set "
                                  f"(tested: {', '.join(tested(sets)) or 'none'})")
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


def select(scores: pd.DataFrame, rule: dict, tested_rules: dict[str, dict] | None = None
           ) -> list[list[int]]:
    """The heads ([[layer, head], ...], sorted) a rule picks, given the head scores; a
    control avoids every head of ``tested_rules`` (the tested sets, :func:`tested`)."""
    if "heads" not in rule:
        check_scores(scores)
    if is_control(rule):
        return _control(scores, rule, tested_rules or {})
    ranked = scores.sort_values(["score", "layer", "head"], ascending=[False, True, True])
    if "top" in rule:
        picked = ranked.head(rule["top"])
    elif "bottom" in rule:
        picked = ranked.iloc[::-1].head(rule["bottom"])
    elif "top_in_layers" in rule:
        picked = ranked[ranked["layer"].isin(rule["top_in_layers"])].drop_duplicates("layer")
    elif "heads" in rule:
        return sorted([int(l), int(h)] for l, h in rule["heads"])
    else:
        raise ValueError(f"unknown head-set rule {rule}")
    return sorted([int(l), int(h)] for l, h in zip(picked["layer"], picked["head"]))


def _control(scores: pd.DataFrame, rule: dict, tested_rules: dict[str, dict]) -> list[list[int]]:
    import numpy as np

    avoid = {tuple(h) for r in tested_rules.values() for h in select(scores, r)}
    allh = [(int(l), int(h)) for l, h in
            scores.sort_values(["layer", "head"])[["layer", "head"]].itertuples(index=False)]
    rng = np.random.default_rng(rule.get("seed", 0))
    if "random" in rule:
        pool, k = allh, rule["random"]
        if len(pool) - len(avoid) < k:
            raise UserError(f"a random set of {k} heads cannot avoid the {len(avoid)} tested "
                            f"heads among {len(pool)}")
        for _ in range(REJECTION_TRIES):  # a draw that avoids the tested heads is kept as drawn
            picked = [pool[i] for i in rng.choice(len(pool), k, replace=False)]
            if not avoid.intersection(picked):
                return sorted([l, h] for l, h in picked)
        raise UserError(f"no random set of {k} heads avoiding the {len(avoid)} tested heads "
                        f"came up in {REJECTION_TRIES:,} draws ({len(pool)} heads): ask for "
                        "fewer random heads")
    target = rule["matched"]
    if target not in tested_rules:
        raise UserError(f"the matched control needs the tested set {target!r}")
    from collections import Counter

    picked = []
    for layer, need in sorted(Counter(l for l, _ in select(scores, tested_rules[target])).items()):
        pool = [x for x in allh if x[0] == layer and x not in avoid]
        if len(pool) < need:
            raise UserError(f"layer {layer} has {len(pool)} heads outside the tested sets; "
                            f"the control of {target!r} needs {need} there")
        picked += [pool[i] for i in sorted(rng.choice(len(pool), need, replace=False))]
    return sorted([l, h] for l, h in picked)
