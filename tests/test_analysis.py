"""Summary tables against direct computations."""

import numpy as np
import pandas as pd
import pyarrow as pa

from massact.analysis import layerwise_summary, massive_activations
from massact.tables import to_markdown
from massact.stats import LAYER_STATS_SCHEMA


def synthetic(n_samples=3, n_layers=2, k=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_samples):
        for layer in range(n_layers):
            vals = np.sort(rng.uniform(1, 10, k))[::-1]
            if layer == 1:
                vals[0] = 5000.0 + s
            for r, v in enumerate(vals, start=1):
                rows.append(dict(sample=s, layer=layer, rank=r, value=v, x=-v, token_pos=0 if r == 1 else r,
                                 token_id=7, token_text="x", dim=42 if r == 1 else r, median=0.5,
                                 mean=0.7))
    return pa.Table.from_pandas(pd.DataFrame(rows), schema=LAYER_STATS_SCHEMA, preserve_index=False)


def test_layerwise_summary():
    t = synthetic()
    df = t.to_pandas()
    s = layerwise_summary(t).set_index("layer")
    for layer in (0, 1):
        d = df[df.layer == layer]
        for r in (1, 2, 3):
            v = d[d["rank"] == r]["value"]
            assert np.isclose(s.loc[layer, f"top{r}"], v.mean())
            assert np.isclose(s.loc[layer, f"top{r}_min"], v.min())
            assert np.isclose(s.loc[layer, f"top{r}_std"], v.std(ddof=1), rtol=1e-5)
        assert np.isclose(s.loc[layer, "ratio"], s.loc[layer, "top1"] / 0.5)
    assert s.loc[1, "top1_dim"] == 42 and s.loc[1, "top1_token_pos"] == 0
    assert s.loc[1, "top1_share"] == 1.0


def test_massive_thresholds():
    t = synthetic()
    m = massive_activations(t, ratio_threshold=100, abs_threshold=1000)
    assert len(m) == 3 and set(m["layer"]) == {1} and set(m["dim"]) == {42}
    assert np.allclose(m["ratio"], m["value"] / 0.5)
    assert len(massive_activations(t, 100, 6000)) == 0
    assert len(massive_activations(t, 1, 0)) == len(t)


def test_markdown():
    md = to_markdown(pd.DataFrame({"a": [1.5], "b": ["x|y"]}))
    assert md.splitlines() == ["| a | b |", "|---:|---|", "| 1.50 | x\\|y |"]


def test_tables_show_p_values_at_their_scale_and_missing_values_as_missing():
    """A p-value of 3.1e-05 must not print as 0.000; a missing value is not 'nan'."""
    from massact.tables import to_html

    df = pd.DataFrame({"change": [0.12345, float("nan")], "p_vs_random": [2 / 2**16, 0.5],
                       "ppl_p_floor": [2 / 2**16, float("nan")], "n": pd.array([3, None], "Int64")})
    md = to_markdown(df, floatfmt="{:.3f}").splitlines()
    assert md[2] == "| 0.123 | 3.1e-05 | 3.1e-05 | 3 |"
    assert md[3] == "| – | 0.5 | – | – |"
    page = to_html(df, "t", floatfmt="{:.3f}")
    assert "<td class=\"num\">3.1e-05</td>" in page and "nan" not in page and "&lt;NA&gt;" not in page
