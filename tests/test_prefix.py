"""A pass that starts at the first block it changes gives, bit for bit, what a full
pass gives: layer statistics and per-window perplexity, for component and head
ablations, on every test architecture."""

import pyarrow as pa
import pytest
import torch

from massact.errors import UserError
from massact.prefix import PrefixCache
from massact.forward import layer_stats
from massact.sweeps import (ablate, component_start, head_set_start, prune_context,
                            run_configs, with_prefix)

COMPONENTS = ["attn-all", "mlp-all", "attn-0", "attn-2", "mlp-1", "mlp-2", "mlp-3"]
HEADS = ["", "3.1", "1.0;3.2", "0.3;2.2"]


def _run(model, tok, windows, heldout, configs, contexts, starts, heads=False):
    return run_configs(model, tok, windows, heldout, configs, k=5, n_boot=50, seed=0,
                       contexts=contexts, starts=starts, heads=heads)


def _same(full, fast):
    assert full.keys() == fast.keys()
    for name in full:
        (s1, p1, h1), (s2, p2, h2) = full[name], fast[name]
        assert s1.equals(s2), name
        assert p1.equals(p2), name
        assert (h1 is None and h2 is None) or h1.equals(h2), name


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
        "attn-all": 0, "mlp-all": 0, "attn-0": 0, "attn-2": 2, "mlp-1": 1, "mlp-2": 2,
        "mlp-3": 3}  # attn-2 and mlp-2 start from the same kept input


@pytest.mark.parametrize("post_norm", ["live", "frozen"])
def test_head_ablations_start_late_bit_identically(tiny, windows, post_norm):
    arch, model, tok = tiny
    heldout = windows[:, :24]
    ctx = prune_context(model, "zero", None, post_norm)
    full = _run(model, tok, windows, heldout, HEADS, ctx, None)
    fast = _run(model, tok, windows, heldout, HEADS, ctx, {h: head_set_start(h) for h in HEADS})
    _same(full, fast)


@pytest.mark.parametrize("post_norm", ["live", "frozen"])
def test_head_scores_of_late_starts_equal_a_full_pass(tiny, windows, post_norm):
    """The pruning job's passes: layer statistics, perplexity and per-sample head scores
    (the probe's attention) of each head set, started late, equal full passes bit for bit,
    the layers before the start taken from the unablated pass."""
    arch, model, tok = tiny
    heldout = windows[:, :24]
    ctx = prune_context(model, "zero", None, post_norm)
    full = _run(model, tok, windows, heldout, HEADS, ctx, None, heads=True)
    fast = _run(model, tok, windows, heldout, HEADS, ctx,
                {h: head_set_start(h) for h in HEADS}, heads=True)
    _same(full, fast)
    scores = full["0.3;2.2"].head_scores.to_pandas()
    assert sorted(scores["layer"].unique()) == list(range(4))
    from massact.arch import adapt

    assert len(scores) == windows.shape[0] * 4 * adapt(model).n_heads
    unablated = full[""].head_scores.to_pandas()
    late = full["1.0;3.2"].head_scores.to_pandas()
    early = late["layer"] < 1  # before the pruned block the scores are the unablated ones
    assert late[early].equals(unablated[early])
    after = late["layer"] >= 2  # after it, the pruned head's output has moved them
    assert not late[after]["score"].equals(unablated[after]["score"])


def test_the_recording_runs_no_output_layer(tiny, windows, monkeypatch):
    """The unablated recording pass needs the blocks' inputs only: the output layer (the
    nll) runs once per configuration and held-out batch, never for the recording."""
    from massact import perplexity

    arch, model, tok = tiny
    heldout = windows[:, :24]
    calls = []
    real = perplexity.nll_from_hidden
    monkeypatch.setattr(perplexity, "nll_from_hidden",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    names = ["attn-2", "mlp-3"]
    _run(model, tok, windows, heldout, names, lambda name: ablate(model, name, 4),
         {c: component_start(c, 4) for c in names})
    assert len(calls) == len(names) * heldout.shape[0]  # batch 1: a call per window


def test_late_start_really_skips_the_early_blocks(tiny_dirs, windows):
    """The inside of a skipped block never runs; a window not recorded is refused; an
    instance-level forward (as accelerate sets under device_map) is put back."""
    from massact.arch import adapt
    from massact.sources import load_model

    model, tok = load_model(tiny_dirs["llama"])
    arch = adapt(model)
    cache = PrefixCache(model, [3])
    with cache.recording(), torch.inference_mode():
        want = model.model(input_ids=windows[:1]).last_hidden_state
    ran = []
    h = arch.mlp[1].register_forward_hook(lambda *a: ran.append(1))
    wrapped = arch.blocks[0].forward  # a bound method, standing in for accelerate's wrapper
    arch.blocks[0].forward = wrapped
    with cache.start(3), torch.inference_mode():
        got = model.model(input_ids=windows[:1]).last_hidden_state
    h.remove()
    assert ran == [] and torch.equal(got, want)
    assert arch.blocks[0].__dict__["forward"] is wrapped
    assert "forward" not in arch.blocks[1].__dict__
    with pytest.raises(UserError, match="did not record"):
        with cache.start(3), torch.inference_mode():
            model.model(input_ids=windows[1:2])


def test_a_memory_cap_keeps_the_latest_starts_and_the_outputs(tiny, windows):
    """With room for two start blocks' inputs, the latest two are kept; the others start
    earlier, and the outputs stay those of full passes."""
    arch, model, tok = tiny
    heldout = windows[:, :24]
    per_start = (windows.numel() + heldout.numel()) * model.config.hidden_size * 4
    cache = PrefixCache(model, [1, 2, 3], max_bytes=2 * per_start,
                        tokens=windows.numel() + heldout.numel())
    assert cache.starts == [2, 3]
    assert [cache.effective(s) for s in (0, 1, 2, 3)] == [0, 0, 2, 3]
    import massact.sweeps as sweeps

    ctx = lambda name: ablate(model, name, 4)  # noqa: E731
    names = ["attn-1", "mlp-2", "attn-3"]
    full = _run(model, tok, windows, heldout, names, ctx, None)
    old = sweeps.PREFIX_BYTES
    sweeps.PREFIX_BYTES = 2 * per_start
    try:
        fast = _run(model, tok, windows, heldout, names, ctx,
                    {c: component_start(c, 4) for c in names})
    finally:
        sweeps.PREFIX_BYTES = old
    _same(full, fast)


def test_with_prefix_keeps_a_full_pass_row_order(tiny, windows):
    arch, model, tok = tiny
    full = layer_stats(model, tok, windows, k=3)
    late = full.filter(pa.compute.greater_equal(full["layer"], 2))
    assert with_prefix(full, late, 2).equals(full)


def test_a_block_that_changes_its_input_in_place_cannot_spoil_the_kept_input(tiny, windows):
    """Two configurations start from the same kept input, and the start block doubles
    its input in place: each pass still starts from the unablated value."""
    from contextlib import contextmanager

    from massact.arch import adapt

    arch, model, tok = tiny
    block = adapt(model).blocks[2]

    @contextmanager
    def in_place(name):
        h = block.register_forward_pre_hook(lambda m, args: args[0].mul_(2.0))
        try:
            yield
        finally:
            h.remove()

    heldout = windows[:, :24]
    names = ["a", "b"]
    full = _run(model, tok, windows, heldout, names, in_place, None)
    fast = _run(model, tok, windows, heldout, names, in_place, {"a": 2, "b": 2})
    _same(full, fast)


def test_batched_passes_start_late_bit_identically(tiny, windows):
    """Batches of windows are recorded and replayed as batches: late starts stay
    bit-identical to full passes of the same batches, and close to batch-1 passes."""
    arch, model, tok = tiny
    heldout = windows[:, :24]
    n = 4
    ctx = lambda name: ablate(model, name, n)  # noqa: E731
    starts = {c: component_start(c, n) for c in COMPONENTS}

    def run(tokens, st):  # 80 tokens: 2 windows of 40 per pass, 3 held-out windows of 24
        return run_configs(model, tok, windows, heldout, COMPONENTS, k=5, n_boot=50, seed=0,
                           contexts=ctx, starts=st, batch_tokens=tokens)

    full, fast = run(80, None), run(80, starts)
    _same(full, fast)
    one = run(None, starts)
    for name in COMPONENTS:
        a, b = one[name][0].to_pandas(), fast[name][0].to_pandas()
        assert a[["sample", "layer", "rank", "token_pos", "dim"]].equals(
            b[["sample", "layer", "rank", "token_pos", "dim"]]), name
        torch.testing.assert_close(torch.tensor(a["value"].to_numpy()),
                                   torch.tensor(b["value"].to_numpy()), rtol=1e-4, atol=1e-5)
