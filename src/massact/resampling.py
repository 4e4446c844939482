"""Resampling statistics: bootstrap intervals, sign-flip permutation tests, and the
perplexity summaries built on them. Pure numpy and pyarrow: table and figure jobs use
them without importing torch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

PPL_SCHEMA = pa.schema([
    ("run", pa.string()),
    ("n_windows", pa.int32()),
    ("n_tokens", pa.int64()),          # predicted tokens over all windows
    ("ppl", pa.float64()),
    ("ppl_lo", pa.float64()),          # bootstrap 95% interval over windows
    ("ppl_hi", pa.float64()),
    ("window_nll", pa.list_(pa.float64())),     # summed nll of each window
    ("window_tokens", pa.list_(pa.int32())),    # predicted tokens of each window
    ("window_id", pa.list_(pa.string())),       # each window's identity (its tokens' hash)
])


def window_ids(windows) -> list[str]:
    """A short identity per window (row of token ids): the first 16 hex digits of the
    sha256 of its ids as int64. Two runs are compared window by window only if these
    agree."""
    import hashlib

    rows = np.asarray(windows, dtype=np.int64)
    return [hashlib.sha256(r.tobytes()).hexdigest()[:16] for r in rows]


def bootstrap_ci(values: np.ndarray, n_boot: int, seed: int, stat=np.mean, level: float = 0.95):
    """Percentile bootstrap over the first axis (samples) of ``stat``; returns (lo, hi)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n < 2 or n_boot <= 0:
        est = stat(values, axis=0)
        return est, est
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boots = stat(values[idx], axis=1)
    a = (1 - level) / 2
    return np.nanquantile(boots, a, axis=0), np.nanquantile(boots, 1 - a, axis=0)


#: sign patterns drawn when a test has more units than :data:`EXACT_MAX`
N_PERM = 10000
#: up to this many paired units the sign-flip test enumerates every pattern
EXACT_MAX = 16


def p_floor(n: int, n_perm: int = N_PERM) -> float:
    """The smallest p-value :func:`paired_permutation_p` can return for ``n`` paired units:
    2 / 2^n when every sign pattern is enumerated (the observed pattern and its mirror are
    always as extreme), 1 / (n_perm + 1) with seeded draws."""
    if n <= 0:
        return float("nan")
    return 2.0 / 2 ** n if n <= EXACT_MAX else 1.0 / (n_perm + 1)


def paired_permutation_p(diff: np.ndarray, n_perm: int = N_PERM, seed: int = 0) -> float:
    """Two-sided sign-flip permutation test that paired differences have mean zero.

    Exact (all 2^n sign patterns) for n ≤ 16 samples, else ``n_perm`` seeded draws
    with the usual +1 correction. Its smallest possible value is :func:`p_floor`.
    """
    diff = np.asarray(diff, dtype=np.float64)
    diff = diff[~np.isnan(diff)]
    n = diff.size
    if n == 0:
        return float("nan")
    obs = abs(diff.mean()) - 1e-12 * max(1.0, abs(diff).max())
    if n <= EXACT_MAX:
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1
        return float(np.mean(np.abs((signs * diff).mean(axis=1)) >= obs))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, n))
    hits = np.sum(np.abs((signs * diff).mean(axis=1)) >= obs)
    return float((hits + 1) / (n_perm + 1))


def rank_p(value: float, controls) -> float:
    """Two-sided Monte Carlo rank test that ``value`` is drawn like the ``controls``
    (the effects of random head sets): p = 2 · min(1 + #controls ≤ value,
    1 + #controls ≥ value) / (n + 1), at most 1. Exact under exchangeability of the
    tested set with the controls; its smallest value is :func:`rank_p_floor`."""
    c = np.asarray(controls, dtype=np.float64)
    c = c[~np.isnan(c)]
    if c.size == 0 or np.isnan(value):
        return float("nan")
    below, above = int(np.sum(c <= value)), int(np.sum(c >= value))
    return float(min(1.0, 2 * (1 + min(below, above)) / (c.size + 1)))


def against_sets(value: float, controls) -> tuple[int, float, float, float]:
    """Where ``value`` stands among the ``controls`` (the effects of random head sets):
    (rank, 1 = below all; the controls' min; their max; :func:`rank_p`)."""
    c = np.asarray(controls, dtype=np.float64)
    return (int(np.sum(c < value)) + 1, float(c.min()), float(c.max()), rank_p(value, c))


def rank_p_floor(n: int) -> float:
    """The smallest p-value :func:`rank_p` can give against ``n`` controls: 2 / (n + 1)."""
    return 2.0 / (n + 1) if n > 0 else float("nan")


def perplexity(nll: np.ndarray, tokens: np.ndarray) -> float:
    return float(np.exp(np.sum(nll) / np.sum(tokens)))


def bootstrap_ppl(nll: np.ndarray, tokens: np.ndarray, n_boot: int, seed: int,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the perplexity, resampling whole windows."""
    nll, tokens = np.asarray(nll, np.float64), np.asarray(tokens, np.float64)
    est = perplexity(nll, tokens)
    if len(nll) < 2 or n_boot <= 0:
        return est, est
    idx = np.random.default_rng(seed).integers(0, len(nll), size=(n_boot, len(nll)))
    boots = np.exp(nll[idx].sum(1) / tokens[idx].sum(1))
    a = (1 - level) / 2
    return float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def ppl_table(run: str, nll: np.ndarray, tokens: np.ndarray, n_boot: int, seed: int,
              ids: list[str]) -> pa.Table:
    """One row: the run's perplexity, its interval and the per-window values, with each
    window's identity (:func:`window_ids`)."""
    if len(ids) != len(nll):
        raise ValueError(f"{len(ids)} window ids for {len(nll)} windows")
    lo, hi = bootstrap_ppl(nll, tokens, n_boot, seed)
    return pa.table({
        "run": [run], "n_windows": [len(nll)], "n_tokens": [int(np.sum(tokens))],
        "ppl": [perplexity(nll, tokens)], "ppl_lo": [lo], "ppl_hi": [hi],
        "window_nll": [[float(v) for v in nll]], "window_tokens": [[int(v) for v in tokens]],
        "window_id": [list(ids)],
    }, schema=PPL_SCHEMA)


def concat_ppl(tables: list[pa.Table]) -> pa.Table:
    """One-row perplexity tables as one table (a row per run)."""
    return pa.concat_tables([t.cast(PPL_SCHEMA) for t in tables])


def window_values(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(per-window nll, per-window tokens) of a one-row perplexity table."""
    row = table.to_pylist()[0]
    return np.asarray(row["window_nll"], np.float64), np.asarray(row["window_tokens"], np.int64)


def compare(base: pa.Table, run: pa.Table, n_boot: int, seed: int) -> dict:
    """The relative perplexity change of ``run`` against ``base`` on the same windows,
    with a paired bootstrap interval (resampling windows) and a sign-flip permutation
    test on the per-window mean nll differences."""
    bn, bt = window_values(base)
    rn, rt = window_values(run)
    if base["window_id"].to_pylist() != run["window_id"].to_pylist():
        raise ValueError("perplexities compared on different windows (their window_id differ)")
    if not np.array_equal(bt, rt):
        raise ValueError("perplexities compared on different windows")
    ratio = perplexity(rn, rt) / perplexity(bn, bt) - 1
    lo = hi = ratio
    if len(bn) >= 2 and n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, len(bn), size=(n_boot, len(bn)))
        boots = np.exp((rn[idx].sum(1) - bn[idx].sum(1)) / bt[idx].sum(1)) - 1
        lo, hi = np.quantile(boots, 0.025), np.quantile(boots, 0.975)
    return {"ppl_change": float(ratio), "ppl_change_lo": float(lo), "ppl_change_hi": float(hi),
            "ppl_p": paired_permutation_p(rn / rt - bn / bt, seed=seed),
            "ppl_p_floor": p_floor(len(bn))}
