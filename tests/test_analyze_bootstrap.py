"""Bootstrap weights and per-head intervals against scipy and simulation; p, q and d_z."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from headact.analyze import (
    Accumulator,
    BootstrapWeights,
    accumulate_arrays,
    compare_arrays,
    estimate_arrays,
)
from headact.analyze.bootstrap import acceleration, bca_interval, percentile_interval


def test_weights_are_multinomial_counts_that_sum_to_n():
    w = BootstrapWeights(2500, 400, seed=3).full()
    assert w.shape == (400, 2500)
    assert (w.sum(axis=1) == 2500).all()
    assert w.min() >= 0
    # Multinomial(N, 1/N) counts: mean 1, variance 1 - 1/N.
    assert abs(w.mean() - 1) < 1e-12
    assert abs(w.var() - (1 - 1 / 2500)) < 0.02


def test_weights_do_not_depend_on_how_samples_are_chunked():
    n = 3000
    whole = BootstrapWeights(n, 50, seed=11).full()
    chunked = BootstrapWeights(n, 50, seed=11)
    cuts = [0, 7, 1024, 1500, 2048, 2049, n]
    parts = [chunked.columns(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    # Reading backwards (another process order) gives the same block weights too.
    backwards = BootstrapWeights(n, 50, seed=11)
    np.testing.assert_array_equal(backwards.columns(2048, n), whole[:, 2048:])
    np.testing.assert_array_equal(backwards.columns(0, 100), whole[:, :100])
    assert not np.array_equal(BootstrapWeights(n, 50, seed=12).full(), whole)


def test_accumulation_is_chunk_invariant():
    rng = np.random.default_rng(0)
    pre = rng.gamma(3.0, size=(2100, 5))
    fine = pre * rng.lognormal(0.1, 0.1, size=pre.shape)
    one = accumulate_arrays(pre, fine, n_boot=300, seed=4)
    many = accumulate_arrays(pre, fine, n_boot=300, seed=4, chunk=333)
    np.testing.assert_allclose(many.rep_pre, one.rep_pre, rtol=1e-12)
    np.testing.assert_allclose(many.rep_diff, one.rep_diff, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(many.moments.aa, one.moments.aa, rtol=1e-10)
    np.testing.assert_allclose(many.half_pre, one.half_pre, rtol=1e-12)


def test_float32_products_match_float64():
    rng = np.random.default_rng(1)
    # A large mean and a small spread: the hard case for single precision.
    pre = 1000.0 + rng.normal(0, 1.0, size=(3000, 8))
    fine = pre * 1.001 + rng.normal(0, 0.01, size=pre.shape)
    weights = BootstrapWeights(3000, 200, seed=0)
    results = {}
    for dtype in (np.float32, np.float64):
        acc = Accumulator(weights, 8, paired=True, matmul_dtype=dtype)
        for start in range(0, 3000, 1024):
            acc.add(start, pre[start:start + 1024], fine[start:start + 1024])
        results[dtype] = acc.result()
    spread_pre = results[np.float64].rep_pre.std(axis=0)
    spread_diff = results[np.float64].rep_diff.std(axis=0)
    err_pre = np.abs(results[np.float32].rep_pre - results[np.float64].rep_pre).max(axis=0)
    err_diff = np.abs(results[np.float32].rep_diff - results[np.float64].rep_diff).max(axis=0)
    assert (err_pre < 1e-4 * spread_pre).all()
    assert (err_diff < 1e-4 * spread_diff).all()


def _close_to(ours: tuple[float, float], theirs, width: float, tol: float = 0.05) -> None:
    assert abs(ours[0] - theirs.low) < tol * width, (ours, theirs)
    assert abs(ours[1] - theirs.high) < tol * width, (ours, theirs)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_mean_interval_agrees_with_scipy(method):
    x = np.random.default_rng(7).gamma(1.5, size=40)  # skewed, so BCa differs from percentile
    ours = estimate_arrays(x, n_boot=20000, method=method, seed=1).r
    theirs = stats.bootstrap((x,), np.mean, n_resamples=20000, method=method,
                             rng=np.random.default_rng(2)).confidence_interval
    assert ours.value[0] == pytest.approx(x.mean())
    _close_to((ours.low[0], ours.high[0]), theirs, theirs.high - theirs.low)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_paired_intervals_agree_with_scipy(method):
    rng = np.random.default_rng(8)
    pre = rng.gamma(2.0, size=50)
    fine = pre * rng.lognormal(0.15, 0.3, size=50)

    def log_ratio(a, b, axis=-1):
        return np.log(b.mean(axis=axis) / a.mean(axis=axis))

    def diff(a, b, axis=-1):
        return b.mean(axis=axis) - a.mean(axis=axis)

    def ratio(a, b, axis=-1):
        return b.mean(axis=axis) / a.mean(axis=axis)

    ours = compare_arrays(pre, fine, n_boot=20000, method=method, seed=3)
    for statistic, est in ((log_ratio, ours.log_ratio), (diff, ours.diff), (ratio, ours.ratio)):
        theirs = stats.bootstrap((pre, fine), statistic, paired=True, n_resamples=20000,
                                 method=method, rng=np.random.default_rng(4))
        ci = theirs.confidence_interval
        assert est.value[0] == pytest.approx(statistic(pre, fine))
        # The ratio's BCa acceleration is the delta-method one, not scipy's jackknife: looser.
        tol = 0.08 if (method == "bca" and statistic is not diff) else 0.05
        _close_to((est.low[0], est.high[0]), ci, ci.high - ci.low, tol)


def _coverage(make, truth: float, method: str, reps: int = 400) -> float:
    hits = 0
    for rep in range(reps):
        est = make(rep, method)
        hits += int(est.low[0] <= truth <= est.high[0])
    return hits / reps


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_mean_interval_coverage(method):
    def make(rep, method):
        x = np.random.default_rng(1000 + rep).normal(5.0, 2.0, size=200)
        return estimate_arrays(x, n_boot=1000, method=method, seed=rep).r

    assert 0.93 <= _coverage(make, 5.0, method) <= 0.97


def test_log_ratio_interval_coverage():
    # x_fine = x_pre * c * lognormal(0, s): the true log-ratio is log(c) + s^2 / 2.
    c, s = 1.2, 0.1

    def make(rep, method):
        rng = np.random.default_rng(5000 + rep)
        pre = rng.gamma(4.0, size=200)
        fine = pre * c * rng.lognormal(0.0, s, size=200)
        return compare_arrays(pre, fine, n_boot=1000, method=method, seed=rep).log_ratio

    assert 0.93 <= _coverage(make, np.log(c) + s * s / 2, "percentile") <= 0.97


def test_p_values_d_z_and_q_values_match_an_independent_computation():
    rng = np.random.default_rng(9)
    n, k = 150, 40
    pre = rng.gamma(3.0, size=(n, k))
    effect = np.where(np.arange(k) < 8, 0.2, 0.0)
    fine = pre * np.exp(effect) * rng.lognormal(0, 0.3, size=(n, k))
    ours = compare_arrays(pre, fine, n_boot=500, seed=0)
    r_pre, r_fine = pre.mean(0), fine.mean(0)
    lr = np.log(r_fine / r_pre)
    u = fine / r_fine - pre / r_pre
    se = u.std(axis=0, ddof=1) / np.sqrt(n)
    p = 2 * stats.norm.sf(np.abs(lr) / se)
    d = fine - pre
    np.testing.assert_allclose(ours.log_ratio.value, lr, rtol=1e-10)
    np.testing.assert_allclose(ours.p_value, p, rtol=1e-8)
    np.testing.assert_allclose(ours.q_value, stats.false_discovery_control(p), rtol=1e-12)
    np.testing.assert_allclose(ours.d_z, d.mean(0) / d.std(0, ddof=1), rtol=1e-8)
    np.testing.assert_allclose(ours.r_fine.value, r_fine, rtol=1e-12)
    np.testing.assert_allclose(ours.diff.value, r_fine - r_pre, rtol=1e-9)


def test_changed_needs_both_fdr_and_the_minimum_effect():
    rng = np.random.default_rng(10)
    n = 4000
    pre = rng.gamma(4.0, size=(n, 3))
    # Head 0: +2 % (significant with N = 4000, but below the 5 % minimum effect);
    # head 1: +20 %; head 2: -20 %.
    factor = np.array([1.02, 1.2, 0.8])
    fine = pre * factor * rng.lognormal(0, 0.05, size=(n, 3))
    ours = compare_arrays(pre, fine, n_boot=500, seed=0)
    assert (ours.q_value < 1e-6).all()
    assert list(ours.changed) == ["none", "up", "down"]
    lenient = compare_arrays(pre, fine, n_boot=500, seed=0, min_effect=0.0)
    assert list(lenient.changed) == ["up", "up", "down"]


def test_identical_and_constant_heads_give_defined_numbers_and_flags():
    rng = np.random.default_rng(11)
    pre = rng.gamma(3.0, size=(100, 4))
    pre[:, 3] = 2.0  # constant in both stores
    pre[:, 2] = np.arange(100) % 7 + 1.0  # exactly representable, so +1 is exact
    fine = pre.copy()
    fine[:, 1] *= 2.0  # an exact doubling: no noise at all
    fine[:, 2] += 1.0  # a constant shift: the difference does not vary
    c = compare_arrays(pre, fine, n_boot=300, seed=0)
    assert c.p_value[0] == 1.0 and c.log_ratio.value[0] == 0.0
    assert c.log_ratio.low[0] == 0.0 == c.log_ratio.high[0]
    assert np.isnan(c.d_z[0]) and c.flags["identical"][0]
    assert c.changed[0] == "none"
    assert c.p_value[1] == 0.0 and c.log_ratio.value[1] == pytest.approx(np.log(2.0))
    assert c.changed[1] == "up" and not c.flags["identical"][1]
    assert np.isnan(c.d_z[2]) and c.flags["zero_variance"][2]
    assert c.flags["identical"][3] and c.p_value[3] == 1.0
    for est in (c.r_pre, c.r_fine, c.diff, c.ratio, c.log_ratio):
        assert np.isfinite(est.value).all() and np.isfinite(est.low).all()


def test_non_finite_samples_are_left_out_of_their_head_only():
    rng = np.random.default_rng(12)
    pre = rng.gamma(3.0, size=(80, 3))
    fine = pre * 1.1
    pre[5, 1] = np.nan
    fine[9, 1] = np.inf
    pre[:, 2] = np.nan  # nothing usable
    c = compare_arrays(pre, fine, n_boot=300, seed=0)
    keep = np.ones(80, dtype=bool)
    keep[[5, 9]] = False
    assert list(c.n) == [80, 78, 0]
    assert c.r_pre.value[1] == pytest.approx(pre[keep, 1].mean())
    assert c.r_pre.value[0] == pytest.approx(pre[:, 0].mean())
    assert c.flags["nonfinite"][1] and not c.flags["nonfinite"][0]
    assert c.flags["no_data"][2] and np.isnan(c.r_pre.value[2]) and np.isnan(c.p_value[2])
    assert np.isfinite(c.r_pre.low[:2]).all() and np.isfinite(c.q_value[:2]).all()
    assert c.changed[2] == "none"


def test_interval_helpers_handle_degenerate_columns():
    reps = np.column_stack([np.full(100, 3.0), np.linspace(0, 1, 100)])
    lo, hi = percentile_interval(reps, 0.9)
    assert lo[0] == hi[0] == 3.0
    assert acceleration(np.array([0.0]), np.array([0.0]))[0] == 0.0
    lo, hi = bca_interval(reps, np.array([3.0, 0.5]), np.zeros(2), 0.9)
    assert lo[0] == hi[0] == 3.0
    assert lo[1] == pytest.approx(0.05, abs=0.01) and hi[1] == pytest.approx(0.95, abs=0.01)
