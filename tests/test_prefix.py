"""A pass that starts at the first block it changes gives, bit for bit, what a full
pass gives: layer statistics and per-window perplexity, for component and head
ablations, on every test architecture."""

import pyarrow as pa
import pytest
import torch

from massact.errors import UserError
from massact.prefix import PrefixCache
from massact.stats import layer_stats
from massact.sweeps import (ablate, component_start, head_set_start, prune_context,
                            run_configs, with_prefix)

COMPONENTS = ["attn-all", "mlp-all", "attn-0", "attn-2", "mlp-1", "mlp-3"]
HEADS = ["", "3.1", "1.0;3.2", "0.3;2.2"]


def _run(model, tok, windows, heldout, configs, contexts, starts):
    return run_configs(model, tok, windows, heldout, configs, k=5, n_boot=50, seed=0,
                       contexts=contexts, starts=starts)


def _same(full, fast):
    assert full.keys() == fast.keys()
    for name in full:
        (s1, p1), (s2, p2) = full[name], fast[name]
        assert s1.equals(s2), name
        assert p1.equals(p2), name


def test_component_ablations_start_late_bit_identically(tiny, windows):
    arch, model, tok = tiny
    heldout = windows[:, :24]
    n = 4
    ctx = lambda name: ablate(model, name, n)  # noqa: E731
    full = _run(model, tok, windows, heldout, COMPONENTS, ctx, None)
    fast = _run(model, tok, windows, heldout, COMPONENTS, ctx,
                {c: component_start(c, n) for c in COMPONENTS})
    _same(full, fast)
    assert {c: component_start(c, n) for c in COMPONENTS} == {
        "attn-all": 0, "mlp-all": 0, "attn-0": 0, "attn-2": 2, "mlp-1": 1, "mlp-3": 3}


@pytest.mark.parametrize("post_norm", ["live", "frozen"])
def test_head_ablations_start_late_bit_identically(tiny, windows, post_norm):
    arch, model, tok = tiny
    heldout = windows[:, :24]
    ctx = prune_context(model, "zero", None, post_norm)
    full = _run(model, tok, windows, heldout, HEADS, ctx, None)
    fast = _run(model, tok, windows, heldout, HEADS, ctx, {h: head_set_start(h) for h in HEADS})
    _same(full, fast)


def test_late_start_really_skips_the_early_blocks(tiny_dirs, windows):
    """The skipped blocks do not run: count block calls."""
    from massact.arch import adapt
    from massact.sources import load_model

    model, tok = load_model(tiny_dirs["llama"])
    blocks = adapt(model).blocks
    calls = [0] * len(blocks)
    hooks = [b.register_forward_pre_hook(lambda m, a, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, b in enumerate(blocks)]
    try:
        cache = PrefixCache(model, [3])
        with cache.recording(), torch.inference_mode():
            model.model(input_ids=windows[:1])
        calls[:] = [0] * len(blocks)
        mlp = adapt(model).mlp
        ran = []
        h = mlp[1].register_forward_hook(lambda *a: ran.append(1))
        with cache.start(3), torch.inference_mode():
            model.model(input_ids=windows[:1])
        h.remove()
    finally:
        for h in hooks:
            h.remove()
    assert ran == []  # the inside of a skipped block never ran
    with pytest.raises(UserError, match="did not record"):
        with cache.start(3), torch.inference_mode():
            model.model(input_ids=windows[1:2])


def test_with_prefix_keeps_a_full_pass_row_order(tiny, windows):
    arch, model, tok = tiny
    full = layer_stats(model, tok, windows, k=3)
    late = full.filter(pa.compute.greater_equal(full["layer"], 2))
    assert with_prefix(full, late, 2).equals(full)
