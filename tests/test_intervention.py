"""The intervention changes the massive entries of one layer, and only those."""

import pytest
import torch

from massact.arch import adapt
from massact.errors import UserError
from massact.intervention import (control_mask, intervene, massive_dim_means, massive_mask,
                                  replace)
from massact.stats import block_hooks


def planted(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 16, generator=g)
    x[0, 3] = 500.0
    x[0, 7] = -300.0
    x[5, 3] = 250.0
    return x


def test_massive_mask_by_definition():
    x = planted()
    a = x.abs()
    med = torch.sort(a.reshape(-1)).values[(a.numel() - 1) // 2]  # the lower middle value
    expected = (a > 100 * med) & (a > 100)
    got = massive_mask(x, 100, 100)
    assert torch.equal(got, expected)
    assert got.sum() == 3 and got[0, 3] and got[0, 7] and got[5, 3]
    assert massive_mask(x, 100, 400).sum() == 1  # the absolute threshold applies too


def test_replace_changes_only_masked_entries():
    x = planted()
    mask = massive_mask(x, 100, 100)
    z = replace(x, mask, "zero")
    assert (z[mask] == 0).all() and torch.equal(z[~mask], x[~mask])
    means = torch.zeros(16)
    means[3], means[7] = 400.0, -350.0
    m = replace(x, mask, "mean", means)
    assert m[0, 3] == 400 and m[5, 3] == 400 and m[0, 7] == -350
    assert torch.equal(m[~mask], x[~mask])
    c = replace(x, mask, "mean")  # the dimension's mean over the tokens
    assert c[0, 3] == pytest.approx(float(x[:, 3].mean()))
    ctl = torch.zeros_like(mask)
    ctl[2, 3] = True  # an ordinary entry of a dimension that also holds massive ones
    c = replace(x, ctl, "mean", exclude=mask)  # control: ordinary entries' mean only
    ordinary = x[:, 3][~mask[:, 3]]
    assert c[2, 3] == pytest.approx(float(ordinary.mean()))
    assert abs(float(c[2, 3])) < 5  # not pulled up by the 500 and 250


def test_control_mask_same_count_outside():
    x = planted()
    mask = massive_mask(x, 100, 100)
    ctl = control_mask(mask, torch.Generator().manual_seed(0))
    assert ctl.sum() == mask.sum() and not (ctl & mask).any()
    again = control_mask(mask, torch.Generator().manual_seed(0))
    assert torch.equal(ctl, again)  # seeded


def block_outputs(model, ids):
    out = {}
    with block_hooks(adapt(model), lambda i, h: out.__setitem__(i, h.detach().clone())), \
            torch.no_grad():
        model(ids)
    return out


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_intervention_in_the_model(tiny, windows, mode):
    """At the chosen layer exactly the massive entries change; earlier layers not at all."""
    _, model, _ = tiny
    ids = windows[:1]
    layer = 1
    base = block_outputs(model, ids)
    x = base[layer][0]
    # thresholds that make a handful of this random model's entries massive
    ratio = float(torch.topk(x.abs().reshape(-1), 4).values[-1] / x.abs().median()) * 0.99
    mask = massive_mask(x, ratio, 0.0)
    assert 1 <= mask.sum() <= 6
    means = torch.full((x.shape[-1],), 0.25)
    with intervene(model, layer, mode, "massive", ratio, 0.0, dim_means=means) as counts:
        got = block_outputs(model, ids)
    assert counts == [int(mask.sum())]
    y = got[layer][0]
    assert torch.equal(y[~mask], x[~mask])
    assert torch.equal(y[mask], torch.zeros_like(y[mask]) if mode == "zero"
                       else torch.full_like(y[mask], 0.25))
    for l in range(layer):
        assert torch.equal(got[l], base[l])
    assert not torch.equal(got[layer + 1], base[layer + 1])  # the change propagates
    after = block_outputs(model, ids)  # the hook is gone
    assert torch.equal(after[layer], base[layer])


def test_intervention_control_in_the_model(tiny, windows):
    _, model, _ = tiny
    ids = windows[:1]
    base = block_outputs(model, ids)[1][0]
    ratio = float(torch.topk(base.abs().reshape(-1), 3).values[-1] / base.abs().median()) * 0.99
    mask = massive_mask(base, ratio, 0.0)
    with intervene(model, 1, "zero", "control", ratio, 0.0, seed=5) as counts:
        y = block_outputs(model, ids)[1][0]
    changed = y != base
    assert counts == [int(mask.sum())]
    assert not (changed & mask).any()              # massive entries untouched
    assert changed.sum() <= mask.sum()             # as many entries (some may already be 0)
    assert (y[changed] == 0).all()


def test_intervention_errors(tiny):
    _, model, _ = tiny
    with pytest.raises(UserError, match="outside the model"):
        with intervene(model, 99, "zero", "massive", 100, 100):
            pass
    with pytest.raises(UserError, match="mean values"):
        with intervene(model, 0, "mean", "massive", 100, 100):
            pass


def test_dim_means_against_full_block_outputs(tiny, windows):
    """The means equal those gathered from complete forward passes."""
    _, model, _ = tiny
    layer = 1
    outs = [block_outputs(model, windows[s:s + 1])[layer][0] for s in range(windows.shape[0])]
    ratio = float(torch.topk(outs[0].abs().reshape(-1), 5).values[-1] / outs[0].abs().median())
    sums = torch.zeros(outs[0].shape[-1], dtype=torch.float64)
    n = torch.zeros_like(sums)
    for x in outs:
        mask = massive_mask(x, ratio * 0.9, 0.0)
        sums += (x.double() * mask).sum(0)
        n += mask.sum(0)
    means, counts = massive_dim_means(model, windows, layer, ratio * 0.9, 0.0)
    assert torch.equal(counts.double(), n) and n.sum() > 0
    expected = torch.where(n > 0, sums / n.clamp(min=1), 0.0).float()
    torch.testing.assert_close(means, expected)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_every_layer_at_once_against_hand_hooks(tiny, windows, mode):
    """Every layer at once equals hooks written out by hand: at each block output, in
    order, the entries above both thresholds in the stream as it arrives are replaced
    (by 0, or by that layer's mean of its dimension); the counts are summed per window."""
    _, model, _ = tiny
    arch = adapt(model)
    n = arch.n_layers
    layers = list(range(n))
    ids = windows[:2]
    ratio, abs_t = 3.0, 0.05
    means, counts = massive_dim_means(model, windows, layers, ratio, abs_t)
    assert means.shape == (n, model.config.hidden_size)
    for l in (0, n - 1):  # the rows equal the single-layer means
        m1, c1 = massive_dim_means(model, windows, l, ratio, abs_t)
        assert torch.equal(means[l], m1) and torch.equal(counts[l], c1)

    hand_counts = [0, 0]

    def hand(layer):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            y = h.clone()
            for w in range(h.shape[0]):
                a = h[w].float().abs()
                med = torch.sort(a.reshape(-1)).values[(a.numel() - 1) // 2]
                mask = (a > ratio * med) & (a > abs_t)
                hand_counts[w] += int(mask.sum())
                if mode == "zero":
                    y[w][mask] = 0
                else:
                    y[w][mask] = means[layer].to(h.dtype).expand_as(h[w])[mask]
            return (y, *output[1:]) if isinstance(output, tuple) else y
        return hook

    handles = [arch.blocks[l].register_forward_hook(hand(l)) for l in layers]
    with torch.no_grad():
        want = model(ids).logits
    for h in handles:
        h.remove()
    with intervene(model, layers, mode, "massive", ratio, abs_t, dim_means=means) as changed, \
            torch.no_grad():
        got = model(ids).logits
    assert changed == hand_counts and sum(changed) > 0
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with torch.no_grad():
        assert not torch.equal(model(ids).logits, got)  # the hooks are gone


def test_fixed_position_means_against_a_hand_computation(tiny, windows):
    """(position, dim) pairs massive in at least half of the windows (and in two) get
    their own mean; every other massive entry its dimension's mean; any batch size
    gives the same means; the intervention writes exactly those values."""
    from massact.intervention import massive_means

    _, model, _ = tiny
    layer, n = 1, windows.shape[0]
    outs = [block_outputs(model, windows[s:s + 1])[layer][0] for s in range(n)]
    ratio = float(torch.topk(outs[0].abs().reshape(-1), 6).values[-1] / outs[0].abs().median())
    ratio *= 0.8
    masks = [massive_mask(x, ratio, 0.0) for x in outs]
    pos_count = sum(m.long() for m in masks)
    pos_sum = sum(x.double() * m for x, m in zip(outs, masks))
    fixed = (2 * pos_count >= n) & (pos_count >= 2)
    assert fixed.any() and (pos_count > 0).sum() > fixed.sum()  # both kinds occur
    dim_mean = pos_sum.sum(0) / pos_count.sum(0).clamp(min=1)
    want = torch.where(fixed, pos_sum / pos_count.clamp(min=1), dim_mean.expand_as(pos_sum))

    m = massive_means(model, windows, [layer], ratio, 0.0, batch_size=1)
    assert torch.equal(m.fixed(0), fixed)
    torch.testing.assert_close(m.fill(0, windows.shape[1]), want.float())
    mb = massive_means(model, windows, [layer], ratio, 0.0, batch_size=3)
    assert torch.equal(mb.pos_count, m.pos_count)
    torch.testing.assert_close(mb.pos, m.pos, rtol=1e-5, atol=1e-6)

    with intervene(model, layer, "mean", "massive", ratio, 0.0, dim_means=m):
        got = block_outputs(model, windows[:1])[layer][0]
    x, mask = outs[0], masks[0]
    assert torch.equal(got[~mask], x[~mask])
    torch.testing.assert_close(got[mask], want.float()[mask])
    # a window shorter than the analysis windows takes the first positions' means
    short = windows[:1, :10]
    with intervene(model, layer, "mean", "massive", ratio, 0.0, dim_means=m):
        got = block_outputs(model, short)[layer][0]
    ref = block_outputs(model, short)[layer][0]
    smask = massive_mask(ref, ratio, 0.0)
    torch.testing.assert_close(got[smask], want.float()[:10][smask])
