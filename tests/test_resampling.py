"""The resampling statistics against scipy.stats on fixed data, and the p-value floor."""

import numpy as np
import pytest
from scipy import stats

from massact.resampling import (EXACT_MAX, N_PERM, bootstrap_ci, compare, p_floor,
                                paired_permutation_p, ppl_table)

DATA = np.array([0.8, -0.3, 1.7, 0.2, 0.9, -1.1, 0.4, 1.3, 0.05, 0.6, -0.2, 1.1, 0.7, 0.3,
                 -0.4, 0.95, 1.4, -0.6, 0.25, 0.5])


def scipy_sign_flip(d, n_resamples=np.inf, rng=None):
    return stats.permutation_test((d,), np.mean, permutation_type="samples",
                                  alternative="two-sided", n_resamples=n_resamples,
                                  vectorized=True, rng=rng).pvalue


@pytest.mark.parametrize("n", [4, 9, 12, 16])
def test_exact_sign_flip_equals_scipy(n):
    """Up to EXACT_MAX units both enumerate every sign pattern: the same p-value."""
    d = DATA[:n] - DATA[:n].mean() * 0.6  # a mean that is neither 0 nor extreme
    assert paired_permutation_p(d) == pytest.approx(scipy_sign_flip(d), rel=1e-12)


def test_drawn_sign_flip_agrees_with_scipy():
    """Beyond EXACT_MAX both draw patterns: the p-values agree within Monte Carlo error."""
    d = DATA - 0.45
    assert d.size > EXACT_MAX
    ours = paired_permutation_p(d, n_perm=20000)
    exact = scipy_sign_flip(d)  # scipy enumerates all 2^20 patterns
    assert abs(ours - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000) + 1e-4


@pytest.mark.parametrize("n", [1, 5, 16, 17, 30])
def test_p_floor_is_reached(n):
    """Differences all of one sign give the smallest p-value the design allows."""
    d = np.linspace(1, 2, n)
    p = paired_permutation_p(d)
    assert p_floor(n) == (2 / 2**n if n <= EXACT_MAX else 1 / (N_PERM + 1))
    if n <= EXACT_MAX:  # exact: reached
        assert p == pytest.approx(p_floor(n))
    else:  # drawn: at the floor unless a draw happens to repeat the observed pattern
        assert p_floor(n) <= p <= 4 * p_floor(n)
    if 2 <= n <= EXACT_MAX:
        assert p == pytest.approx(scipy_sign_flip(d))


def test_bootstrap_interval_agrees_with_scipy():
    """The percentile bootstrap of the mean, against scipy.stats.bootstrap's."""
    lo, hi = bootstrap_ci(DATA, 20000, seed=0)
    ref = stats.bootstrap((DATA,), np.mean, method="percentile", n_resamples=20000,
                          rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(lo - ref.low) < 0.03 * width and abs(hi - ref.high) < 0.03 * width


def test_paired_bootstrap_agrees_with_scipy():
    """A ratio of paired means: resampling (baseline, run) pairs together."""
    rng = np.random.default_rng(3)
    base = rng.uniform(50, 100, 16)
    run = base * rng.normal(0.9, 0.05, 16)
    pair = np.stack([base, run], -1)
    lo, hi = bootstrap_ci(pair, 20000, 0, stat=lambda v, axis: v[..., 1].mean(axis) /
                          v[..., 0].mean(axis) - 1)
    ref = stats.bootstrap((base, run), lambda b, r, axis: r.mean(axis) / b.mean(axis) - 1,
                          paired=True, method="percentile", n_resamples=20000,
                          rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(lo - ref.low) < 0.03 * width and abs(hi - ref.high) < 0.03 * width


def test_compare_reports_its_floor():
    nll = np.linspace(100, 120, 16)
    base = ppl_table("a", nll, np.full(16, 255), 100, 0, [f"w{i}" for i in range(16)])
    run = ppl_table("b", nll * 1.1, np.full(16, 255), 100, 0, [f"w{i}" for i in range(16)])
    c = compare(base, run, 100, 0)
    assert c["ppl_p_floor"] == 2 / 2**16
    assert c["ppl_p"] == pytest.approx(c["ppl_p_floor"])  # every window got worse


def test_rank_p_by_hand_and_valid_under_the_null():
    """Hand values, and under exchangeability (the tested value drawn like the controls)
    P(p ≤ floor · j) equals floor · j exactly: the test is neither conservative nor
    liberal at its attainable levels."""
    from massact.resampling import rank_p, rank_p_floor

    assert rank_p(5.0, [1, 2, 3, 4]) == pytest.approx(2 / 5)       # above all: the floor
    assert rank_p(0.0, [1, 2, 3, 4]) == pytest.approx(2 / 5)       # below all: the floor
    assert rank_p(1.5, [1, 2, 3, 4]) == pytest.approx(2 * 2 / 5)
    assert rank_p(2.5, [1, 2, 3, 4]) == 1.0                        # in the middle: capped
    assert rank_p_floor(4) == pytest.approx(2 / 5) and rank_p_floor(10) == pytest.approx(2 / 11)
    assert np.isnan(rank_p(1.0, [])) and np.isnan(rank_p(np.nan, [1.0]))
    # ties count on both sides, so they can only raise p
    assert rank_p(1.0, [1, 1, 1]) == 1.0 and rank_p(1.0, [1, 2, 3, 4, 5]) == pytest.approx(4 / 6)
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(20000, 11))
    p = np.array([rank_p(d[0], d[1:]) for d in draws])
    for j in (1, 2, 3):
        assert np.mean(p <= j * 2 / 11 + 1e-12) == pytest.approx(j * 2 / 11, abs=0.012)
