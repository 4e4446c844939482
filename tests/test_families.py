"""Every model family, each stage against an independent reference, on tiny random models
built from each family's transformers config class (no download).

Every bias and norm of these models is random (massact.sources.build_random), so a hook
that drops a bias or a norm's shift changes the numbers. The references below come from
the model's own forward pass (hidden states, eager attention maps, ``labels=`` loss) or
from copies whose weights were edited by hand, with the parameter names written out per
family here, not taken from the adapters under test.
"""

import contextlib
import copy

import numpy as np
import pytest
import torch

from massact.ablation import ablate_components, ablate_heads
from massact.arch import LAYOUTS, adapt, sliding_window_layers
from massact.forward import analyse, head_scores
from massact.intervention import intervene
from massact.perplexity import window_nll
from conftest import materialize_random
from massact.sources import load_model

#: per family (random-source arch name, model_type): the attention output projection and
#: the parameters whose zeroing silences the MLP, relative to a block; written by hand
FAMILIES = {
    "gpt2": ("gpt2", "attn.c_proj", ["mlp.c_proj"]),
    "llama": ("llama", "self_attn.o_proj", ["mlp.down_proj"]),
    "mistral": ("mistral", "self_attn.o_proj", ["mlp.down_proj"]),
    "mixtral": ("mixtral", "self_attn.o_proj", ["mlp.experts.down_proj"]),
    "qwen2": ("qwen2", "self_attn.o_proj", ["mlp.down_proj"]),
    "qwen3": ("qwen3", "self_attn.o_proj", ["mlp.down_proj"]),
    "gemma2": ("gemma2", "self_attn.o_proj", ["mlp.down_proj"]),
    "gemma3": ("gemma3_text", "self_attn.o_proj", ["mlp.down_proj"]),
    "phi": ("phi", "self_attn.dense", ["mlp.fc2"]),
    "gpt_neox": ("gpt_neox", "attention.dense", ["mlp.dense_4h_to_h"]),
    "falcon": ("falcon", "self_attention.dense", ["mlp.dense_4h_to_h"]),
    "opt": ("opt", "self_attn.out_proj", ["fc2"]),
    "mpt": ("mpt", "attn.out_proj", ["ffn.down_proj"]),
    "gptj": ("gptj", "attn.out_proj", ["mlp.fc_out"]),
}
BLOCKS = {"gpt2": "transformer.h", "gpt_neox": "gpt_neox.layers", "falcon": "transformer.h",
          "opt": "model.decoder.layers", "mpt": "transformer.blocks", "gptj": "transformer.h"}
HEADS = [(0, 1), (2, 3), (2, 0)]


def test_every_layout_is_tested():
    assert sorted(t for t, _, _ in FAMILIES.values()) == sorted(LAYOUTS)


#: families whose attention and MLP read the same input (from each modeling file)
PARALLEL = {"phi", "gpt_neox", "falcon", "gptj"}


def test_parallel_blocks_and_the_final_norm(fam, ids):
    """The adapter's parallel flag, and its final norm: applied to the last block's
    output it gives HF's last hidden state."""
    family, model, _, _ = fam
    a = adapt(model)
    assert a.parallel == (family in PARALLEL)
    last = {}
    h = blocks(model, family)[-1].register_forward_hook(
        lambda m, args, out: last.update(x=out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        hidden = model(ids[:1], output_hidden_states=True).hidden_states[-1]
        h.remove()
        torch.testing.assert_close(a.final_norm(last["x"]), hidden, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("families")
    materialize_random(base, FAMILIES)
    return base


@pytest.fixture(params=list(FAMILIES))
def fam(request, family_dirs):
    """(family, model, tokenizer, model directory)"""
    model, tok = load_model(family_dirs / request.param)
    assert model.config.model_type == FAMILIES[request.param][0]
    return request.param, model, tok, family_dirs / request.param


@pytest.fixture
def ids():
    # 40 tokens: longer than the tiny models' sliding window (16)
    return torch.randint(0, 256, (3, 40), generator=torch.Generator().manual_seed(1))


def blocks(model, family):
    import operator

    return operator.attrgetter(BLOCKS.get(family, "model.layers"))(model)


def param(module, path):
    import operator

    return operator.attrgetter(path)(module)


def logits(model, x):
    with torch.no_grad():
        return model(x).logits


# ----------------------------------------------------------------- statistics
def test_layer_statistics_equal_the_block_outputs(fam, ids):
    """Top-k |x|, positions, dims and the lower median, against hidden states from a
    plain forward (every layer but the last: HF's last entry has the final norm)."""
    family, model, tok, _ = fam
    k = 5
    got = analyse(model, tok, ids, k=k, heads=False)["layer_stats"].to_pandas()
    n_layers = len(blocks(model, family))
    for s in range(ids.shape[0]):
        with torch.no_grad():
            hidden = model(ids[s:s + 1], output_hidden_states=True).hidden_states
        for layer in range(n_layers - 1):
            x = hidden[layer + 1][0].float().numpy()
            a = np.abs(x).ravel()
            order = np.argsort(-a, kind="stable")[:k]
            rows = got[(got["sample"] == s) & (got["layer"] == layer)].sort_values("rank")
            np.testing.assert_allclose(rows["value"], a[order], rtol=1e-5)
            np.testing.assert_allclose(rows["x"], x.ravel()[order], rtol=1e-5)
            assert list(rows["token_pos"]) == list(order // x.shape[1])
            assert list(rows["dim"]) == list(order % x.shape[1])
            assert rows["median"].iloc[0] == pytest.approx(np.sort(a)[(a.size - 1) // 2], rel=1e-6)


# ----------------------------------------------------------------- head scores
def eager_reference(model_dir, x, targets):
    """Per layer: each head's mean probability of the targets over the queries that can
    see one, from eager attention maps; eligibility is read off the maps themselves (a
    key a query cannot see has probability exactly 0)."""
    model, _ = load_model(model_dir, attn_implementation="eager")
    with torch.no_grad():
        att = model(x, output_attentions=True).attentions
    out = {}
    for layer, a in enumerate(att):
        a = a[0].float()  # heads × queries × keys
        t = torch.tensor(targets)
        seen = (a[:, :, t] > 0).any(0)  # queries × targets
        seen &= torch.arange(x.shape[1])[:, None] > t[None, :]  # strictly after a target
        qs = seen.any(1)
        out[layer] = (a[:, qs][:, :, t].sum(-1).mean(-1).numpy(), int(qs.sum()))
    return out


@pytest.mark.parametrize("targets", [[0], [0, 5, 17]])
def test_head_scores_equal_eager_attention(fam, ids, targets):
    family, model, _, model_dir = fam
    table = head_scores(model, ids, targets=[targets] * ids.shape[0]).to_pandas()
    for s in range(ids.shape[0]):
        for layer, (scores, n) in eager_reference(model_dir, ids[s:s + 1], targets).items():
            got = table[(table["sample"] == s) & (table["layer"] == layer)].sort_values("head")
            np.testing.assert_allclose(got["score"], scores, atol=1e-5)
            assert (got["n_queries"] == n).all(), (family, layer)


def test_sliding_windows_are_found(fam, ids):
    """Mistral slides every layer (it declares sliding_window alone), Gemma-2/3 every
    other one; the probe scores only the queries within the window of key 0."""
    family, model, _, _ = fam
    expected = {"mistral": {0, 1, 2, 3}, "gemma2": {0, 2}, "gemma3": {0, 2}}.get(family, set())
    assert set(sliding_window_layers(model)) == expected
    t = head_scores(model, ids[:1]).to_pandas()
    for layer, n in t.groupby("layer")["n_queries"].first().items():
        assert n == (15 if layer in expected else ids.shape[1] - 1)


# ----------------------------------------------------------------- head ablation
def zeroed_heads(model, family, heads, d):
    """A copy with the heads' input columns of the output projection set to zero (rows of
    GPT-2's Conv1D); the projection's bias stays."""
    ref = copy.deepcopy(model)
    proj_path = FAMILIES[family][1]
    with torch.no_grad():
        for layer, head in heads:
            w = param(blocks(ref, family)[layer], proj_path).weight
            if family == "gpt2":
                w[head * d:(head + 1) * d, :] = 0
            else:
                w[:, head * d:(head + 1) * d] = 0
    return ref


def test_head_ablation_equals_zeroed_projection_columns(fam, ids):
    family, model, _, _ = fam
    d = adapt(model).head_dim
    x = ids[:2]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base = logits(model, x)
    ref = logits(zeroed_heads(model, family, HEADS, d), x)
    with ablate_heads(model, HEADS):
        got = logits(model, x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, base, atol=1e-4)  # the ablation did something
    for k, v in model.state_dict().items():  # and left nothing behind
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(logits(model, x), base, atol=0, rtol=0)


def test_projection_bias_stays(fam, ids):
    """Removing every head leaves exactly the output projection's bias (where it has one)."""
    family, model, _, _ = fam
    a = adapt(model)
    every = [(l, h) for l in range(a.n_layers) for h in range(a.n_heads)]
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for b in blocks(ref, family):
            param(b, FAMILIES[family][1]).weight.zero_()
    with ablate_heads(model, every):
        got = logits(model, ids[:1])
    torch.testing.assert_close(got, logits(ref, ids[:1]), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------ component ablation
def test_component_ablation_equals_zeroed_weights(fam, ids):
    """attn-2 and mlp-1 removed = their output projections (weights and biases) zeroed."""
    family, model, _, _ = fam
    ref = copy.deepcopy(model)
    _, proj, mlp = FAMILIES[family]
    with torch.no_grad():
        for p in param(blocks(ref, family)[2], proj).parameters():
            p.zero_()
        for path in mlp:
            m = param(blocks(ref, family)[1], path)
            for p in (m.parameters() if isinstance(m, torch.nn.Module) else [m]):
                p.zero_()
    with ablate_components(model, attn_layers=[2], mlp_layers=[1]):
        got = logits(model, ids[:1])
    torch.testing.assert_close(got, logits(ref, ids[:1]), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, logits(model, ids[:1]), atol=1e-4)


# ------------------------------------------------------------------- perplexity
def test_perplexity_equals_the_models_own_loss(fam, ids):
    family, model, _, _ = fam
    nll, n = window_nll(model, ids)
    with torch.no_grad():
        losses = [float(model(ids[i:i + 1], labels=ids[i:i + 1]).loss) for i in range(len(ids))]
    np.testing.assert_allclose(nll / n, losses, rtol=1e-5)
    assert (n == ids.shape[1] - 1).all()


# ----------------------------------------------------------------- intervention
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_intervention_equals_a_hand_edit(fam, ids, mode):
    """At block 1: the entries with |x| > 3 × the window's (lower) median and > 0.05,
    found by hand in the hidden state of a plain forward, replaced, and the edited state
    injected in place of the block's output; the logits must agree."""
    family, model, _, _ = fam
    layer, ratio, thr = 1, 3.0, 0.05
    x = ids[:1]
    with torch.no_grad():
        h = model(x, output_hidden_states=True).hidden_states[layer + 1][0].clone()
    a = h.abs().numpy().ravel()
    med = np.sort(a)[(a.size - 1) // 2]
    mask = torch.from_numpy(((a > ratio * med) & (a > thr)).reshape(h.shape))
    assert 0 < int(mask.sum()) < mask.numel() // 4
    means = torch.linspace(-2, 2, h.shape[1])
    edited = h.clone()
    edited[mask] = 0 if mode == "zero" else means.expand_as(h)[mask]

    def inject(module, args, output):
        return (edited[None], *output[1:]) if isinstance(output, tuple) else edited[None]

    handle = blocks(model, family)[layer].register_forward_hook(inject)
    ref = logits(model, x)
    handle.remove()
    with intervene(model, layer, mode, "massive", ratio, thr, dim_means=means) as counts:
        got = logits(model, x)
    assert counts == [int(mask.sum())]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------- post-attention norm
@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_frozen_post_norm_removes_exactly_the_heads_share(family, family_dirs, ids):
    """With the norm's scale frozen, the norm is linear in the heads: at the first ablated
    layer its output loses exactly (W_h z_h) · g / rms(unablated), and nothing else."""
    model, _ = load_model(family_dirs / family)
    a = adapt(model)
    layer, head, d = 2, 1, a.head_dim
    block = blocks(model, family)[layer]
    seen = {}

    def run(ctx):
        """Capture the projection's input and the norm's output, hooks registered after
        the ablation's own (forward hooks run in the order they were registered)."""
        with ctx:
            hooks = [block.self_attn.o_proj.register_forward_pre_hook(
                         lambda m, args: None if "z" in seen else seen.update(z=args[0][0].clone())),
                     block.post_attention_layernorm.register_forward_hook(
                         lambda m, args, out: seen.setdefault("out", []).append(out[0].clone()))]
            with torch.no_grad():
                model(ids[:1])
            for h in hooks:
                h.remove()

    run(contextlib.nullcontext())
    run(ablate_heads(model, [(layer, head)], post_norm="frozen"))
    run(ablate_heads(model, [(layer, head)], post_norm="live"))
    base, frozen, live = seen["out"]
    w, bias = block.self_attn.o_proj.weight, block.self_attn.o_proj.bias
    assert bias is not None and bias.abs().sum() > 0  # the bias stays in every run
    z = seen["z"]
    full = z @ w.T + bias
    norm = block.post_attention_layernorm
    rms = torch.sqrt(full.pow(2).mean(-1, keepdim=True) + norm.eps)
    share = (z[:, head * d:(head + 1) * d] @ w[:, head * d:(head + 1) * d].T) / rms
    gain = 1 + norm.weight
    torch.testing.assert_close(frozen, base - share * gain, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(live, frozen, atol=1e-4)  # the live norm rescales the rest


def test_post_norm_choice_only_matters_where_a_norm_follows(family_dirs, ids):
    model, _ = load_model(family_dirs / "llama")
    with ablate_heads(model, HEADS, post_norm="live"):
        live = logits(model, ids[:1])
    with ablate_heads(model, HEADS, post_norm="frozen"):
        frozen = logits(model, ids[:1])
    torch.testing.assert_close(live, frozen, atol=0, rtol=0)


def test_passes_start_late_bit_identically(fam, ids):
    """Component and head ablations that start at their first changed block equal full
    passes, bit for bit, on every family (massact.prefix); head ablations with the
    per-sample head scores too (the pruning job's passes, through the head probe)."""
    from massact.sweeps import ablate, component_start, head_set_start, prune_context, run_configs

    family, model, tok, _ = fam
    n = adapt(model).n_layers
    heldout = ids[:, :16]
    for configs, ctx, start, heads in (
            (["attn-1", "mlp-2", "attn-2", "mlp-all"], lambda c: ablate(model, c, n),
             lambda c: component_start(c, n), False),
            (["2.1", "1.0;3.1"], prune_context(model, "zero", None), head_set_start, False),
            (["2.1", "1.0;3.1"], prune_context(model, "zero", None), head_set_start, True)):
        full = run_configs(model, tok, ids, heldout, configs, k=3, n_boot=10, seed=0,
                           contexts=ctx, heads=heads)
        fast = run_configs(model, tok, ids, heldout, configs, k=3, n_boot=10, seed=0,
                           contexts=ctx, starts={c: start(c) for c in configs}, heads=heads)
        for c in configs:
            assert full[c].stats.equals(fast[c].stats), (family, c)
            assert full[c].ppl.equals(fast[c].ppl), (family, c)
            if heads:
                assert full[c].head_scores.equals(fast[c].head_scores), (family, c)
                assert sorted(set(fast[c].head_scores["layer"].to_pylist())) == list(range(n))


# ----------------------------------------------------------------- batches
def _close_tables(a, b, exact: list[str], rtol=1e-4, atol=1e-5):
    a, b = a.to_pandas(), b.to_pandas()
    assert len(a) == len(b) and list(a.columns) == list(b.columns)
    for c in a.columns:
        if c in exact:
            assert a[c].tolist() == b[c].tolist(), c
        elif a[c].dtype.kind == "f":
            np.testing.assert_allclose(a[c], b[c], rtol=rtol, atol=atol, err_msg=c)


def test_batches_give_the_same_numbers(fam):
    """Every window's layer statistics, head scores (each window with its own targets),
    head means and nll are the same, to float32 rounding, whatever the batch size: the
    probe, the statistics and the loss read every element of a batch, not the first."""
    family, model, tok, _ = fam
    windows = torch.randint(0, 256, (5, 40), generator=torch.Generator().manual_seed(3))
    targets = [[0], [0, 5], [0, 17, 30], [3], [0, 1, 2]]
    one = analyse(model, tok, windows, k=4, targets=targets, head_means=True, batch_size=1)
    for bs in (2, 5):
        many = analyse(model, tok, windows, k=4, targets=targets, head_means=True,
                       batch_size=bs)
        # positions and dims of the top entries may swap between near-ties only if two
        # values agree to rounding; these random models have none
        _close_tables(one["layer_stats"], many["layer_stats"],
                      exact=["sample", "layer", "rank", "token_pos", "token_id", "dim"])
        _close_tables(one["head_scores"], many["head_scores"],
                      exact=["sample", "layer", "head", "n_queries"])
        m1 = np.stack(one["head_means"]["mean"].to_pylist())
        m2 = np.stack(many["head_means"]["mean"].to_pylist())
        np.testing.assert_allclose(m1, m2, rtol=1e-4, atol=1e-6)
        nll1, n1 = window_nll(model, windows, batch_size=1)
        nll2, n2 = window_nll(model, windows, batch_size=bs)
        np.testing.assert_allclose(nll1, nll2, rtol=1e-5)
        assert n1.tolist() == n2.tolist()
    # window 2 scored alone, with its own targets (not window 0's)
    got = one["head_scores"].to_pandas()
    want = head_scores(model, windows[2:3], targets=[targets[2]]).to_pandas()
    mine = got[got["sample"] == 2].reset_index(drop=True)
    np.testing.assert_allclose(mine["score"], want["score"], rtol=1e-5, atol=1e-6)
