"""Perplexity equals an independent token-level cross-entropy; held-out windows never
overlap the analysis samples."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from massact.ablation import ablate_components
from massact.perplexity import bootstrap_ppl, compare, ppl_table, window_nll
from massact.sampling import draw_windows, truncate
from massact.sources import byte_tokenizer


def independent_nll(model, ids):
    """Per window: HF's own mean loss (labels=ids) times the predicted tokens."""
    out = []
    with torch.no_grad():
        for s in range(ids.shape[0]):
            loss = model(ids[s:s + 1], labels=ids[s:s + 1]).loss
            out.append(float(loss) * (ids.shape[1] - 1))
    return np.array(out)


def test_window_nll_equals_model_loss(tiny, windows):
    _, model, _ = tiny
    nll, n = window_nll(model, windows, batch_size=2)  # batching must not change the sum
    np.testing.assert_allclose(nll, independent_nll(model, windows), rtol=1e-5)
    assert (n == windows.shape[1] - 1).all()


def test_window_nll_by_hand(tiny, windows):
    """log-softmax of the full logits, gathered at the next token, summed."""
    _, model, _ = tiny
    with torch.no_grad():
        logits = model(windows).logits.double()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, windows[:, 1:, None])[..., 0]
    nll, _ = window_nll(model, windows)
    np.testing.assert_allclose(nll, -lp.sum(1).numpy(), rtol=1e-5)


def test_nll_sees_active_hooks(tiny, windows):
    _, model, _ = tiny
    base, _ = window_nll(model, windows)
    with ablate_components(model, mlp_layers=[0]):
        ablated, _ = window_nll(model, windows)
    assert not np.allclose(base, ablated)
    np.testing.assert_allclose(window_nll(model, windows)[0], base)  # hooks removed


def test_table_and_bootstrap():
    nll = np.array([10.0, 20.0, 30.0, 40.0])
    tok = np.array([10, 10, 10, 10])
    t = ppl_table("x", nll, tok, n_boot=500, seed=0, ids=list("abcd")).to_pylist()[0]
    assert t["ppl"] == pytest.approx(np.exp(100 / 40))
    assert t["ppl_lo"] < t["ppl"] < t["ppl_hi"]
    assert t["window_nll"] == list(nll) and t["n_tokens"] == 40
    lo, hi = bootstrap_ppl(nll, tok, 0, 0)
    assert lo == hi == pytest.approx(np.exp(2.5))


def test_compare_paired():
    base = ppl_table("b", np.array([10.0, 20.0, 30.0]), np.array([10, 10, 10]), 200, 0, ["a", "b", "c"])
    run = ppl_table("r", np.array([11.0, 22.0, 33.0]), np.array([10, 10, 10]), 200, 0, ["a", "b", "c"])
    c = compare(base, run, 200, 0)
    assert c["ppl_change"] == pytest.approx(np.exp(66 / 30) / np.exp(60 / 30) - 1)
    assert c["ppl_change_lo"] <= c["ppl_change"] <= c["ppl_change_hi"]
    assert c["ppl_change_lo"] > 0  # every window got worse
    assert c["ppl_p"] == pytest.approx(0.25)  # exact sign-flip test, 3 windows: 2 of 8 patterns


def test_paired_comparisons_check_window_identity(tiny, windows):
    """Runs on the same number of windows of the same lengths, but not the same windows,
    are not compared; the ids are the windows' own (a hash of their tokens)."""
    from massact.perplexity import run_ppl
    from massact.resampling import window_ids

    arch, model, tok = tiny
    a = run_ppl(model, windows[:2, :20], "a", 50, 0)
    b = run_ppl(model, windows[1:3, :20], "b", 50, 0)
    assert a["window_id"].to_pylist()[0] == window_ids(windows[:2, :20])
    assert a["window_id"].to_pylist()[0][1] == b["window_id"].to_pylist()[0][0]
    assert compare(a, run_ppl(model, windows[:2, :20], "again", 50, 0), 50, 0)["ppl_change"] == 0
    with pytest.raises(ValueError, match="different windows"):
        compare(a, b, 50, 0)


def test_heldout_never_overlaps_analysis():
    text = " ".join(f"word{i}" for i in range(3000))
    corpus = pa.table({"doc_id": pa.array([0, 1], pa.int32()), "text": [text, text[::-1]]})
    tok = byte_tokenizer(add_bos=True)
    a = draw_windows(corpus, tok, 20, 64, seed=3)
    h = draw_windows(corpus, tok, 20, 64, seed=3, split="heldout", n_heldout=30)
    h = truncate(h, 30, 16)
    assert h.num_rows == 30 and all(len(r) == 16 for r in h.column("input_ids").to_pylist())
    span = lambda t, n: {(d, s + i) for d, s in zip(t.column("doc_id").to_pylist(),  # noqa: E731
                                                     t.column("start").to_pylist())
                         for i in range(n)}
    body = 63  # 64 tokens minus the BOS prefix: the text each window covers
    assert not span(a, body) & span(h, body)  # no held-out token is analysed


def _small_steps(monkeypatch):
    """Positions in chunks of 40 and the vocabulary in slices of 16: many of each."""
    import massact.perplexity as ppl

    monkeypatch.setattr(ppl, "MIN_SLICE", 16)
    monkeypatch.setattr(ppl, "LEAN_BLOCK", 16 * 40)


@pytest.mark.parametrize("small", [False, True])
def test_lean_head_equals_model_loss(tiny, windows, monkeypatch, small):
    """The batched, vocabulary-sliced log-sum-exp gives each window's nll as the model's
    own loss does, in one step or in many chunks of positions and slices of the vocabulary."""
    import massact.perplexity as ppl

    _, model, _ = tiny
    if small:
        _small_steps(monkeypatch)
    with torch.no_grad():
        hidden = ppl.adapt(model).base(input_ids=windows, use_cache=False).last_hidden_state
    np.testing.assert_allclose(ppl.nll_from_hidden(model, hidden, windows),
                               independent_nll(model, windows), rtol=1e-5)


def test_lean_head_with_bias_and_softcap_by_hand(tiny, windows, monkeypatch):
    """A head with a bias (Phi-2, GPT-J) and final soft-capping (Gemma-2): the log-softmax
    of tanh(z / cap) · cap with z = W h + b, by hand in float64; the same through the path
    for heads that are not a plain linear layer (here the head wrapped in a Sequential)."""
    import copy

    import massact.perplexity as ppl

    _, model, _ = tiny
    model = copy.deepcopy(model)
    old = model.get_output_embeddings()
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.copy_(torch.randn(old.out_features, generator=torch.Generator().manual_seed(0)))
    model.set_output_embeddings(head)
    model.config.final_logit_softcapping = 3.0
    _small_steps(monkeypatch)
    with torch.no_grad():
        hidden = ppl.adapt(model).base(input_ids=windows, use_cache=False).last_hidden_state
        z = hidden.double() @ head.weight.double().T + head.bias.double()
        z = torch.tanh(z / 3.0) * 3.0
    want = -torch.log_softmax(z[:, :-1], -1).gather(-1, windows[:, 1:, None])[..., 0].sum(1)
    assert ppl._plain_linear(head)
    np.testing.assert_allclose(ppl.nll_from_hidden(model, hidden, windows), want.numpy(),
                               rtol=1e-5)
    model.set_output_embeddings(torch.nn.Sequential(head))
    assert not ppl._plain_linear(model.get_output_embeddings())
    np.testing.assert_allclose(ppl.nll_from_hidden(model, hidden, windows), want.numpy(),
                               rtol=1e-5)
    model.set_output_embeddings(head)  # the plain head again: its id check
    bad = windows.clone()
    bad[0, 5] = old.out_features  # one past the vocabulary
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ppl.nll_from_hidden(model, hidden, bad)
