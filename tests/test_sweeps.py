"""Component ablations and cumulative pruning against independent computations."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from massact.arch import adapt
from massact.errors import UserError
from massact.forward import analyse
from massact.perplexity import window_nll
from massact.sweeps import (ablate, component_layers, component_names, cumulative_rows,
                            cumulative_sets, head_set_key, ks_grid, peak_top1, prune_context,
                            run_configs)
from massact.sampling import truncate


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def zero_params(modules, names):
    with torch.no_grad():
        for m in modules:
            for n, p in m.named_parameters():
                if any(k in n for k in names):
                    p.zero_()


def test_names():
    assert component_names(3) == ["attn-all", "mlp-all", "attn-0", "attn-1", "attn-2",
                                  "mlp-0", "mlp-1", "mlp-2"]
    assert component_names(5, [3, 1]) == ["attn-all", "mlp-all", "attn-1", "attn-3",
                                          "mlp-1", "mlp-3"]
    assert component_layers("mlp-all", 3) == {"mlp_layers": [0, 1, 2]}
    assert component_layers("attn-2", 3) == {"attn_layers": [2]}
    with pytest.raises(UserError):
        component_layers("norm-1", 3)


def test_all_mlps_removed_equals_zeroed_mlp_outputs(tiny, windows):
    _, model, _ = tiny
    ref = copy.deepcopy(model)
    zero_params(adapt(ref).mlp, ("c_proj", "down_proj"))  # weight and bias: output is zero
    with ablate(model, "mlp-all", adapt(model).n_layers):
        got = logits(model, windows[:1])
    torch.testing.assert_close(got, logits(ref, windows[:1]), atol=1e-5, rtol=1e-5)


def test_all_attention_removed_equals_zeroed_attention_outputs(tiny, windows):
    _, model, _ = tiny
    ref = copy.deepcopy(model)
    zero_params(adapt(ref).attn_out, ("weight", "bias"))
    with ablate(model, "attn-all", adapt(model).n_layers):
        got = logits(model, windows[:1])
    torch.testing.assert_close(got, logits(ref, windows[:1]), atol=1e-5, rtol=1e-5)


def test_single_layer_mlp_removed(tiny, windows):
    _, model, _ = tiny
    ref = copy.deepcopy(model)
    zero_params([adapt(ref).mlp[2]], ("c_proj", "down_proj"))
    with ablate(model, "mlp-2", adapt(model).n_layers):
        got = logits(model, windows[:1])
    torch.testing.assert_close(got, logits(ref, windows[:1]), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, logits(model, windows[:1]))


def scores_frame(n_layers=3, n_heads=4):
    rng = np.random.default_rng(0)
    rows = [(l, h, float(s)) for (l, h), s in zip(
        [(l, h) for l in range(n_layers) for h in range(n_heads)],
        rng.permutation(n_layers * n_heads) / 100)]
    return pd.DataFrame(rows, columns=["layer", "head", "score"])


def test_cumulative_sets_nested_and_ranked():
    s = scores_frame()
    assert ks_grid([1, 4, 100, "all"], 12) == [1, 4, 12]
    sets = cumulative_sets(s, [1, 4, "all"], seeds=[0, 1])
    assert len(sets) == 4 * 3
    by = {(x["kind"], x["seed"], x["k"]): x["heads"] for x in sets}
    ranked = s.sort_values("score", ascending=False)
    top4 = sorted([int(l), int(h)] for l, h in zip(ranked["layer"][:4], ranked["head"][:4]))
    assert by[("top", -1, 4)] == top4
    bottom1 = [[int(ranked["layer"].iloc[-1]), int(ranked["head"].iloc[-1])]]
    assert by[("bottom", -1, 1)] == bottom1
    for seed in (0, 1):  # random sets grow: the k-set holds the smaller one
        assert set(map(tuple, by[("random", seed, 1)])) <= set(map(tuple, by[("random", seed, 4)]))
    every = {head_set_key(by[(k, sd, 12)]) for k, sd in
             [("top", -1), ("bottom", -1), ("random", 0), ("random", 1)]}
    assert len(every) == 1  # all heads: one set, run once


def test_truncate():
    import pyarrow as pa
    tiny_samples = pa.table({"sample": pa.array([0, 1, 2], pa.int32()),
                             "input_ids": pa.array([list(range(20))] * 3, pa.list_(pa.int32()))})
    t = truncate(tiny_samples, 2, 10)
    assert t.num_rows == 2 and all(len(r) == 10 for r in t.column("input_ids").to_pylist())
    with pytest.raises(UserError, match="windows asked"):
        truncate(tiny_samples, 99, 10)


def cumulative_run(model, tok, windows, seeds, n_boot):
    """Cumulative rows for k = 2 on two short windows (and two held-out ones), with the
    pieces needed to check them: (rows, sets, sweep windows, held-out windows, baseline
    stats, baseline nll, baseline tokens)."""
    from massact.perplexity import ppl_table, window_ids

    arch = adapt(model)
    sets = cumulative_sets(scores_frame(arch.n_layers, arch.n_heads), [2], seeds=seeds)
    keys = sorted({head_set_key(x["heads"]) for x in sets})
    win, held = windows[:2, :24], windows[2:, :16]
    results = run_configs(model, tok, win, held, keys, k=3, n_boot=n_boot, seed=0,
                          contexts=prune_context(model, "zero", None))
    base = analyse(model, tok, win, k=3, heads=False)["layer_stats"]
    bnll, bn = window_nll(model, held)
    rows = cumulative_rows(sets, base, ppl_table("b", bnll, bn, n_boot, 0, window_ids(held)), results, n_boot, 0)
    return rows, sets, win, held, base, bnll, bn


def test_cumulative_rows_against_direct_runs(tiny, windows):
    """The rows equal what separate ablated passes give."""
    _, model, tok = tiny
    rows, sets, win, held, base, bnll, bn = cumulative_run(model, tok, windows, [0], 50)
    top = rows[rows["kind"] == "top"].iloc[0]
    heads = next(x["heads"] for x in sets if x["kind"] == "top")
    from massact.ablation import ablate_heads
    with ablate_heads(model, heads):
        pruned = analyse(model, tok, win, k=3, heads=False)["layer_stats"]
        pnll, _ = window_nll(model, held)
    expect = peak_top1(pruned).mean() / peak_top1(base).mean() - 1
    assert top["peak_change"] == pytest.approx(expect, rel=1e-6)
    assert top["ppl_change"] == pytest.approx(np.exp((pnll.sum() - bnll.sum()) / bn.sum()) - 1,
                                              rel=1e-6)
    assert top["peak_change_lo"] <= top["peak_change"] <= top["peak_change_hi"]


def test_cumulative_tests_against_random_and_bottom(tiny, windows):
    _, model, tok = tiny
    rows = cumulative_run(model, tok, windows, [0, 1], 20)[0]
    top = rows[rows["kind"] == "top"].iloc[0]
    bottom = rows[rows["kind"] == "bottom"].iloc[0]
    # 2 samples: the exact sign-flip test can only give 0.5 or 1
    assert top["layer_p_vs_random"] in (0.5, 1.0) and top["layer_p_vs_bottom"] in (0.5, 1.0)
    assert top["ppl_p_vs_random"] in (0.5, 1.0)
    assert bottom["layer_p_vs_random"] in (0.5, 1.0) and np.isnan(bottom["layer_p_vs_bottom"])
    assert rows[rows["kind"] == "random"]["layer_p_vs_random"].isna().all()
    # the ranks among the random orders of the same k, counted by hand
    for row in (top, bottom):
        rand = rows[(rows["kind"] == "random") & (rows["k"] == row["k"])]
        assert row["n_random"] == len(rand) == 2
        assert row["ppl_random_rank"] == 1 + int((rand["ppl_change"] < row["ppl_change"]).sum())
        assert row["layer_random_rank"] == 1 + int(
            (rand["layer_change"] < row["layer_change"]).sum())
