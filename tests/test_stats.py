"""Layer statistics equal an independent computation from a plain forward pass."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from massact.analysis import features_array
from massact.forward import layer_stats
from massact.stats import prompt_features


def residual_per_layer(model, ids):
    """Block outputs from output_hidden_states; the last entry has the final norm applied,
    so the last layer comes from a copy whose final norm is the identity."""
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
        bare = copy.deepcopy(model)
        if hasattr(bare, "transformer"):
            bare.transformer.ln_f = nn.Identity()
        else:
            bare.model.norm = nn.Identity()
        last = bare(ids, output_hidden_states=True).hidden_states[-1]
    return [h[0] for h in hs[1:-1]] + [last[0]]


def test_layer_stats_match_hidden_states(tiny, windows):
    arch, model, tok = tiny
    k = 5
    table = layer_stats(model, tok, windows, k=k).to_pandas()
    n_layers = model.config.num_hidden_layers
    assert len(table) == windows.shape[0] * n_layers * k
    for s in range(windows.shape[0]):
        layers = residual_per_layer(model, windows[s:s + 1])
        assert len(layers) == n_layers
        for layer, x in enumerate(layers):
            a = x.abs().numpy().astype(np.float32)
            flat = a.reshape(-1)
            order = np.argsort(-flat, kind="stable")[:k]
            srt = np.sort(flat)
            median = srt[(flat.size - 1) // 2]  # the lower of the two middle values
            got = table[(table["sample"] == s) & (table["layer"] == layer)].sort_values("rank")
            np.testing.assert_allclose(got["value"], flat[order], rtol=1e-5)
            np.testing.assert_allclose(got["median"], median, rtol=1e-5)
            np.testing.assert_allclose(got["mean"], flat.mean(), rtol=1e-5)
            # positions and dims point at the values they claim
            pos, dim = got["token_pos"].to_numpy().copy(), got["dim"].to_numpy().copy()
            np.testing.assert_allclose(a[pos, dim], got["value"], rtol=1e-5)
            np.testing.assert_allclose(x.numpy()[pos, dim], got["x"], rtol=1e-5)  # sign kept
            assert (got["token_id"].to_numpy() == windows[s, pos].numpy()).all()


def test_prompt_features_are_the_residual_stream(tiny):
    arch, model, tok = tiny
    prompt = "Summer is warm. Winter is cold."
    table = prompt_features(model, tok, prompt)
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    layers = residual_per_layer(model, ids)
    for layer in (0, len(layers) - 1):
        values, tokens = features_array(table, layer)
        np.testing.assert_allclose(values, layers[layer].numpy(), rtol=1e-5, atol=1e-6)
        assert len(tokens) == ids.shape[1]
    if arch == "gemma3":
        assert tokens[0] == "<bos>"


def test_extraction_is_deterministic(tiny, windows):
    _, model, tok = tiny
    a = layer_stats(model, tok, windows, k=4)
    b = layer_stats(model, tok, windows, k=4)
    assert a.equals(b)


@pytest.mark.parametrize("k", [3, 7])
def test_topk_width(tiny, windows, k):
    _, model, tok = tiny
    t = layer_stats(model, tok, windows[:1], k=k).to_pandas()
    assert sorted(t["rank"].unique()) == list(range(1, k + 1))
