"""Head scores from the fused-SDPA probe equal eager attention maps."""

import numpy as np
import pytest
import torch

from massact.arch import sliding_window_layers
from massact.forward import analyse, head_scores
from massact.heads import attention_probe
from massact.sources import load_model


def eager_scores(model_dir, ids, targets):
    """Independent: explicit attention maps from eager attention, averaged by hand."""
    model, _ = load_model(model_dir, attn_implementation="eager")
    windows = sliding_window_layers(model)
    with torch.no_grad():
        att = model(ids, output_attentions=True).attentions
    out = {}
    T = ids.shape[1]
    for layer, a in enumerate(att):
        a = a[0].numpy()  # heads × queries × keys
        w = windows.get(layer)
        qs = [q for q in range(T) if any(t < q and (w is None or q - t < w) for t in targets)]
        out[layer] = (a[:, qs][:, :, targets].sum(-1).mean(-1), len(qs))
    return out


@pytest.mark.parametrize("targets", [[0], [0, 5, 17]])
def test_scores_equal_eager_attention(tiny, tiny_dirs, windows, targets):
    arch, model, tok = tiny
    table = head_scores(model, windows, targets=[targets] * windows.shape[0]).to_pandas()
    for s in range(windows.shape[0]):
        ref = eager_scores(tiny_dirs[arch], windows[s:s + 1], targets)
        for layer, (scores, n) in ref.items():
            got = table[(table["sample"] == s) & (table["layer"] == layer)].sort_values("head")
            np.testing.assert_allclose(got["score"], scores, atol=1e-5)
            assert (got["n_queries"] == n).all()


def test_gemma_sliding_window_counts(tiny_dirs, windows):
    model, _ = load_model(tiny_dirs["gemma3"])
    win = sliding_window_layers(model)
    assert win and set(win.values()) == {16}
    t = head_scores(model, windows[:1]).to_pandas()
    T = windows.shape[1]
    for layer, n in t.groupby("layer")["n_queries"].first().items():
        # a sliding layer's queries 1..15 see key 0; a global layer's all T-1 do
        assert n == (15 if layer in win else T - 1)


def test_probe_changes_nothing_and_restores(tiny, windows):
    _, model, tok = tiny
    ids = windows[:1]
    impl = model.config._attn_implementation
    with torch.no_grad():
        ref = model(ids).logits
        with attention_probe(model) as probe:
            probe.set_targets([0], ids.shape[1], "cpu")
            got = model(ids).logits
        after = model(ids).logits
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert model.config._attn_implementation == impl
    torch.testing.assert_close(after, ref, atol=0, rtol=0)


def test_one_pass_gives_stats_and_scores(tiny, windows):
    _, model, tok = tiny
    both = analyse(model, tok, windows, k=4)
    alone = head_scores(model, windows)
    assert both["head_scores"].equals(alone)
    assert both["layer_stats"].num_rows == windows.shape[0] * model.config.num_hidden_layers * 4


def test_head_means_equal_captured_projection_inputs(tiny, windows):
    """head_means: each head's output averaged over every token of every window."""
    from massact.arch import adapt

    _, model, tok = tiny
    arch = adapt(model)
    got = analyse(model, tok, windows, stats=False, heads=False, head_means=True)["head_means"]
    captured = {i: [] for i in range(arch.n_layers)}
    hooks = [p.register_forward_pre_hook(lambda m, a, i=i: captured[i].append(a[0][0].clone()))
             for i, p in enumerate(arch.attn_out)]
    with torch.no_grad():
        for s in range(windows.shape[0]):
            model(windows[s:s + 1])
    for h in hooks:
        h.remove()
    d = got.to_pydict()
    for layer, head, mean in zip(d["layer"], d["head"], d["mean"]):
        x = torch.cat(captured[layer]).view(-1, arch.n_heads, arch.head_dim)[:, head]
        np.testing.assert_allclose(mean, x.mean(0).numpy(), rtol=1e-4, atol=1e-6)
