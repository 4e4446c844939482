"""Head sets from the config's rules; changes against an independent computation."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from massact.analysis import changes, head_summary, paired_permutation_p
from massact.errors import ConfigError
from massact.heads import HEAD_SAMPLE_SCHEMA
from massact.selection import check, expand, select
from test_analysis import synthetic

# 3 layers × 4 heads with distinct scores: score = 0.01 * (layer * 4 + head) except a few
SCORES = pd.DataFrame([(l, h, 0.01 * (l * 4 + h)) for l in range(3) for h in range(4)],
                      columns=["layer", "head", "score"])
SCORES.loc[(SCORES.layer == 0) & (SCORES["head"] == 2), "score"] = 0.9


def test_rules():
    assert select(SCORES, {"top": 2}) == [[0, 2], [2, 3]]
    assert select(SCORES, {"bottom": 2}) == [[0, 0], [0, 1]]
    assert select(SCORES, {"top_in_layers": [0, 1]}) == [[0, 2], [1, 3]]
    assert select(SCORES, {"heads": [[2, 1], [0, 3]]}) == [[0, 3], [2, 1]]
    a = select(SCORES, {"random": 4, "seed": 7})
    assert a == select(SCORES, {"random": 4, "seed": 7}) and len({tuple(x) for x in a}) == 4
    assert a != select(SCORES, {"random": 4, "seed": 8})


def test_expand_random_seeds():
    sets = expand({"top": {"top": 3}, "random": {"random": 3, "seeds": [0, 5]}})
    assert sets == {"top": {"top": 3}, "random-0": {"random": 3, "seed": 0},
                    "random-5": {"random": 3, "seed": 5}}


@pytest.mark.parametrize("sets,key", [
    ({"x": {"heads": [[0, 0], [3, 0]]}}, r"heads\.sets\.x\.heads\[1\]"),
    ({"x": {"top": 13}}, r"heads\.sets\.x\.top"),
    ({"x": {"top_in_layers": [5]}}, r"heads\.sets\.x\.top_in_layers\[0\]"),
    ({"x": {"top": 1, "bottom": 1}}, r"heads\.sets\.x"),
    ({"summary": {"top": 1}}, r"heads\.sets\.summary.*reserved"),
])
def test_bad_sets(sets, key):
    with pytest.raises(ConfigError, match=key):
        check(sets, 3, 4, "heads.sets")


def test_head_summary_against_numpy():
    rng = np.random.default_rng(0)
    n, L, H = 6, 2, 3
    vals = rng.uniform(0, 1, (n, L, H))
    rows = [(s, l, h, float(vals[s, l, h]), 10) for s in range(n) for l in range(L) for h in range(H)]
    t = pa.table({k: [r[i] for r in rows] for i, k in enumerate(HEAD_SAMPLE_SCHEMA.names)},
                 schema=HEAD_SAMPLE_SCHEMA)
    s = head_summary(t, n_boot=2000, seed=1)
    np.testing.assert_allclose(s["score"], vals.reshape(n, -1).mean(0), rtol=1e-6)
    np.testing.assert_allclose(s["std"], vals.reshape(n, -1).std(0, ddof=1), rtol=1e-5)
    assert (s["ci_low"] <= s["score"]).all() and (s["score"] <= s["ci_high"]).all()
    order = np.argsort(-vals.reshape(n, -1).mean(0), kind="stable")
    assert list(s["rank"].to_numpy()[order]) == list(range(1, L * H + 1))
    for l in range(L):
        sub = s[s.layer == l].sort_values("score", ascending=False)
        assert list(sub["rank_in_layer"]) == [1, 2, 3]


def test_changes_against_direct_computation():
    base = synthetic(n_samples=4, seed=0)
    pruned = synthetic(n_samples=4, seed=1)
    c = changes(base, pruned, n_boot=500, seed=0).set_index("layer")
    b, p = base.to_pandas(), pruned.to_pandas()
    for layer in (0, 1):
        for r in (1, 2, 3):
            bm = b[(b.layer == layer) & (b["rank"] == r)]["value"].mean()
            pm = p[(p.layer == layer) & (p["rank"] == r)]["value"].mean()
            assert np.isclose(c.loc[layer, f"change_top{r}"], pm / bm - 1, rtol=1e-6)
            assert c.loc[layer, f"change_top{r}_lo"] <= c.loc[layer, f"change_top{r}_hi"]
    assert c.loc[1, "baseline_top1_dim"] == 42 and c.loc[1, "top1_moved"] == 0


def test_permutation_test():
    assert paired_permutation_p(np.ones(8)) == pytest.approx(2 / 256)  # only all-+ and all-−
    assert paired_permutation_p(np.array([1.0, -1.0] * 4)) == 1.0
    assert paired_permutation_p(np.ones(40), n_perm=999) == pytest.approx(1 / 1000, abs=2e-3)


def test_nan_scores_are_refused_by_head():
    from massact.errors import UserError
    from massact.sweeps import cumulative_sets

    bad = SCORES.copy()
    bad.loc[(bad.layer == 1) & (bad["head"] == 3), "score"] = np.nan
    for rule in ({"bottom": 2}, {"top": 1}, {"random": 2, "seed": 0}):
        with pytest.raises(UserError, match=r"1 head scores are NaN \(L1H3\)"):
            select(bad, rule)
    with pytest.raises(UserError, match="NaN"):
        cumulative_sets(bad, [1, 4], [0])
    assert select(bad, {"heads": [[1, 3]]}) == [[1, 3]]  # an explicit list needs no score


def test_controls_are_recognised_by_rule_not_name():
    """A random control named anything is a control; a set named random-… that lists its
    heads is not; the bottom comparison uses the bottom rule's set."""
    from massact.analysis import controls, pruning_summary, sample_mean_change

    base = synthetic(n_samples=4, n_layers=3, seed=0)
    runs = {name: synthetic(n_samples=4, n_layers=3, seed=i + 1)
            for i, name in enumerate(["top", "lowest", "shuffle-0", "shuffle-1", "random-pick"])}
    rules = {"top": {"top": 2}, "lowest": {"bottom": 2}, "shuffle-0": {"random": 2, "seed": 0},
             "shuffle-1": {"random": 2, "seed": 1}, "random-pick": {"heads": [[0, 1]]}}
    assert controls(rules) == (["shuffle-0", "shuffle-1"], "lowest", {})
    ch = {e: changes(base, t, 50, 0) for e, t in runs.items()}
    table = pruning_summary(base, runs, ch, rules, n_boot=50).set_index("experiment")
    per = {e: sample_mean_change(base, t) for e, t in runs.items()}
    want = paired_permutation_p(per["top"] - (per["shuffle-0"] + per["shuffle-1"]) / 2)
    assert table.loc["top", "p_vs_random"] == want
    assert table.loc["top", "n_random"] == 2
    assert table.loc["random-pick", "n_random"] == 2  # a tested set, not a control
    assert table.loc["top", "p_vs_bottom"] == paired_permutation_p(per["top"] - per["lowest"])
    assert np.isnan(table.loc["shuffle-0", "n_random"])
    # the test over head sets: the set's mean change ranked among the two random sets'
    r = sorted([per["shuffle-0"].mean(), per["shuffle-1"].mean()])
    t = per["top"].mean()
    below, above = sum(x <= t for x in r), sum(x >= t for x in r)
    assert table.loc["top", "set_p_vs_random"] == min(1.0, 2 * (1 + min(below, above)) / 3)
    assert table.loc["top", "set_p_floor"] == 2 / 3
    assert (table.loc["top", "random_min"], table.loc["top", "random_max"]) == tuple(r)


def _hand_draw(n, k, seed, avoid):
    """The rejection sampler written out: draw k of the n heads (in layer, head order)
    with the seeded generator until a draw avoids ``avoid``."""
    allh = [(l, h) for l in range(3) for h in range(4)]
    rng = np.random.default_rng(seed)
    while True:
        picked = {allh[i] for i in rng.choice(n, k, replace=False)}
        if not picked & avoid:
            return sorted(map(list, picked))


def test_random_controls_avoid_the_tested_heads():
    tested_rules = {"top": {"top": 3}, "mine": {"heads": [[1, 0]]}}
    avoid = {(0, 2), (2, 3), (2, 2), (1, 0)}
    assert {tuple(h) for r in tested_rules.values() for h in select(SCORES, r)} == avoid
    clashed = 0
    for seed in range(40):
        plain = select(SCORES, {"random": 4, "seed": seed})
        fair = select(SCORES, {"random": 4, "seed": seed}, tested_rules)
        assert not {tuple(h) for h in fair} & avoid
        assert fair == _hand_draw(12, 4, seed, avoid)
        if {tuple(h) for h in plain} & avoid:
            clashed += 1
        else:
            assert fair == plain  # a draw that avoided them is unchanged
    assert clashed > 10  # the plain draws did hit tested heads: the test can fail


def test_layer_matched_control():
    """As many heads from each layer of the tested set, none of them tested."""
    sets = {"top": {"top": 3}, "m": {"matched": "top", "seeds": [0, 1, 2]},
            "r": {"random": 2, "seeds": [0]}}
    exp = expand(sets)
    assert exp["m-1"] == {"matched": "top", "seed": 1}
    check(sets, 3, 4, "heads.sets")
    from massact.selection import tested

    top = select(SCORES, {"top": 3})  # [[0, 2], [2, 2], [2, 3]]
    draws = set()
    for name in ("m-0", "m-1", "m-2"):
        got = select(SCORES, exp[name], tested(exp))
        layers = sorted(l for l, _ in got)
        assert layers == sorted(l for l, _ in top)
        assert not {tuple(h) for h in got} & {tuple(h) for h in top}
        draws.add(tuple(map(tuple, got)))
    assert len(draws) > 1  # the seeds differ
    with pytest.raises(ConfigError, match=r"heads.sets.m.matched.*'r' is not a tested head set"):
        check({**sets, "m": {"matched": "r"}}, 3, 4, "heads.sets")


def test_matched_control_in_the_summary():
    from massact.analysis import controls, pruning_summary, sample_mean_change

    base = synthetic(n_samples=4, n_layers=3, seed=0)
    names = ["top", "m-0", "m-1", "random-0"]
    runs = {n: synthetic(n_samples=4, n_layers=3, seed=i + 1) for i, n in enumerate(names)}
    rules = {"top": {"top": 2}, "m-0": {"matched": "top", "seed": 0},
             "m-1": {"matched": "top", "seed": 1}, "random-0": {"random": 2, "seed": 0}}
    assert controls(rules) == (["random-0"], None, {"top": ["m-0", "m-1"]})
    ch = {e: changes(base, t, 50, 0) for e, t in runs.items()}
    table = pruning_summary(base, runs, ch, rules, n_boot=50).set_index("experiment")
    per = {e: sample_mean_change(base, t) for e, t in runs.items()}
    assert table.loc["top", "p_vs_matched"] == paired_permutation_p(
        per["top"] - (per["m-0"] + per["m-1"]) / 2)
    assert table.loc["top", "n_matched"] == 2 and table.loc["top", "n_random"] == 1
    assert np.isnan(table.loc["m-0", "n_random"])  # a control is not tested against random


def test_a_set_can_prune_with_its_own_post_norm():
    sets = {"top": {"top": 2}, "top_frozen": {"top": 2, "post_norm": "frozen"},
            "r": {"random": 2, "seeds": [0, 1], "post_norm": "frozen"}}
    check(sets, 3, 4, "heads.sets")
    exp = expand(sets)
    assert exp["top_frozen"]["post_norm"] == "frozen" and "post_norm" not in exp["top"]
    assert exp["r-1"] == {"random": 2, "seed": 1, "post_norm": "frozen"}
    assert select(SCORES, exp["top_frozen"]) == select(SCORES, exp["top"])


def test_sets_are_compared_with_random_sets_of_their_design():
    """A frozen-norm set is not ranked against live random sets, nor a 2-head set against
    3-head ones; the perplexity ranks and rank test come from the random sets'
    perplexity changes, by hand; with no random set at all there are no such columns."""
    from massact.analysis import pruning_summary
    from massact.resampling import ppl_table, rank_p

    base = synthetic(n_samples=4, n_layers=3, seed=0)
    names = ["top", "top_frozen", "pair", "random-0", "random-1", "random-2"]
    runs = {e: synthetic(n_samples=4, n_layers=3, seed=i + 1) for i, e in enumerate(names)}
    rules = {"top": {"top": 3}, "top_frozen": {"top": 3, "post_norm": "frozen"},
             "pair": {"top": 2}, **{f"random-{i}": {"random": 3, "seed": i} for i in range(3)}}
    designs = {e: (2 if e == "pair" else 3, "frozen" if e == "top_frozen" else "live")
               for e in names}
    ids, tok = list("abcdef"), np.full(6, 10)
    rng = np.random.default_rng(0)
    base_nll = rng.uniform(20, 30, 6)
    nll = {e: base_nll * rng.uniform(1.0, 1.5, 6) for e in names}
    ppl = {e: ppl_table(e, nll[e], tok, 50, 0, ids) for e in names}
    ch = {e: changes(base, t, 20, 0) for e, t in runs.items()}
    table = pruning_summary(base, runs, ch, rules, n_boot=20, ppl_base=ppl_table(
        "base", base_nll, tok, 50, 0, ids), ppl_by=ppl, designs=designs).set_index("experiment")
    assert table.loc["top", "n_random"] == 3
    for e in ("top_frozen", "pair"):  # no random set of their design
        assert np.isnan(table.loc[e, "n_random"]) and np.isnan(table.loc[e, "set_p_vs_random"])
        assert np.isnan(table.loc[e, "ppl_set_p_vs_random"])
    change = {e: np.exp((nll[e].sum() - base_nll.sum()) / tok.sum()) - 1 for e in names}
    rand = [change[f"random-{i}"] for i in range(3)]
    assert table.loc["top", "ppl_change"] == pytest.approx(change["top"])
    assert table.loc["top", "ppl_random_rank"] == 1 + sum(r < change["top"] for r in rand)
    assert table.loc["top", "ppl_set_p_vs_random"] == pytest.approx(rank_p(change["top"], rand))
    assert table.loc["top", "ppl_random_max"] == pytest.approx(max(rand))
    only = {e: runs[e] for e in ("top", "pair")}
    bare = pruning_summary(base, only, ch, {e: rules[e] for e in only}, n_boot=20)
    assert not {"n_random", "random_rank", "set_p_vs_random", "random_min"} & set(bare.columns)
