"""Rank correlations against scipy; the hypothesis finds planted relations and only those."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from headact.analyze import AnalysisOptions, accumulate_arrays, compare_heads
from headact.analyze.correlation import (
    average_ranks,
    cluster_kendall_rows,
    kendall_rows,
    spearman_rows,
    weighted_spearman_rows,
)
from headact.analyze.hypothesis import _top_k
from headact.analyze.run import hypothesis_for


def _with_ties(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=shape)
    y = x + rng.normal(size=shape)
    x[:, 3] = x[:, 4]
    y[:, 5:9] = 0.5
    x[:, 10], y[:, 10] = x[:, 11], y[:, 11]  # a pair tied in both
    return x, y


def test_row_wise_rank_correlations_equal_scipy_with_ties():
    rng = np.random.default_rng(0)
    x, y = _with_ties(rng, (40, 33))
    np.testing.assert_allclose(average_ranks(x), stats.rankdata(x, axis=1))
    pairs = list(zip(x, y, strict=True))
    np.testing.assert_allclose(spearman_rows(x, y),
                               [stats.spearmanr(a, b).statistic for a, b in pairs], atol=1e-12)
    np.testing.assert_allclose(kendall_rows(x, y),
                               [stats.kendalltau(a, b).statistic for a, b in pairs], atol=1e-12)
    xi = rng.integers(0, 4, size=(20, 30)).astype(float)  # heavy ties
    yi = rng.integers(0, 3, size=(20, 30)).astype(float)
    np.testing.assert_allclose(
        kendall_rows(xi, yi),
        [stats.kendalltau(a, b).statistic for a, b in zip(xi, yi, strict=True)], atol=1e-12)


def test_layer_cluster_replicates_equal_explicit_repetition():
    rng = np.random.default_rng(1)
    layer = np.repeat(np.arange(6), [5, 5, 4, 6, 5, 5])  # unequal layers
    x, y = _with_ties(rng, (1, layer.size))
    x, y = x[0], y[0]
    counts = rng.multinomial(6, np.full(6, 1 / 6), size=40)
    explicit_rho, explicit_tau = [], []
    for c in counts:
        idx = np.concatenate([np.flatnonzero(layer == g) for g in range(6) for _ in range(c[g])])
        explicit_rho.append(stats.spearmanr(x[idx], y[idx]).statistic)
        explicit_tau.append(stats.kendalltau(x[idx], y[idx]).statistic)
    np.testing.assert_allclose(weighted_spearman_rows(x, y, counts[:, layer]), explicit_rho,
                               atol=1e-12)
    np.testing.assert_allclose(cluster_kendall_rows(x, y, layer, counts), explicit_tau,
                               atol=1e-12)


def _run(pre: np.ndarray, fine: np.ndarray, n_layers: int, **options):
    opts = AnalysisOptions(n_boot=400, n_perm=400, **options)
    acc = accumulate_arrays(pre, fine, n_boot=opts.n_boot, seed=opts.seed)
    comparison = compare_heads(acc, opts.ci, opts.ci_method)
    layer = np.repeat(np.arange(n_layers), pre.shape[1] // n_layers)
    return comparison, hypothesis_for(acc, comparison, layer, opts)


def _samples(rng, log_r: np.ndarray, log_ratio: np.ndarray, n: int = 300,
             noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    text = rng.lognormal(0, noise, size=(n, 1))
    pre = np.exp(log_r) * text * rng.lognormal(0, noise, size=(n, log_r.size))
    fine = pre * np.exp(log_ratio) * rng.lognormal(0, 0.05, size=pre.shape)
    return pre, fine


def test_finds_a_planted_relation():
    rng = np.random.default_rng(2)
    n_layers, n_heads = 8, 16
    log_r = rng.normal(0, 0.6, n_layers * n_heads)
    # Stronger heads grow more: both |LR| and the signed LR rise with log R_pre.
    log_ratio = 0.3 * (log_r - log_r.min()) / np.ptp(log_r) + rng.normal(0, 0.02, log_r.size)
    comparison, h = _run(*_samples(rng, log_r, log_ratio), n_layers)
    for name in ("abs_log_ratio", "log_ratio"):
        t = h.targets[name]
        assert t.spearman.estimate > 0.8
        assert t.spearman.ci_samples[0] > 0.5 and t.spearman.ci_layers[0] > 0.5
        assert t.kendall.estimate > 0.6 and t.kendall.ci_layers[0] > 0.3
        assert t.spearman.permutation_p <= 2 / 401
        assert t.partial.estimate > 0.7 and t.partial.p_value < 1e-6
        assert t.split_sample.spearman > 0.7
    assert h.top_k.overlap_fraction > 0.5
    assert h.sentence.startswith("Across 128 heads, heads that were stronger before "
                                 "fine-tuning changed more")
    assert "tended to grow" in h.sentence


def test_no_relation_under_a_multiplicative_null():
    rng = np.random.default_rng(3)
    n_layers, n_heads = 8, 16
    log_r = rng.normal(0, 0.6, n_layers * n_heads)
    log_ratio = rng.normal(0, 0.15, log_r.size)  # each head scaled, independent of strength
    pre, fine = _samples(rng, log_r, log_ratio)
    comparison, h = _run(pre, fine, n_layers)
    for name in ("abs_log_ratio", "log_ratio"):
        t = h.targets[name]
        assert t.spearman.ci_layers[0] < 0 < t.spearman.ci_layers[1]
        assert t.kendall.ci_layers[0] < 0 < t.kendall.ci_layers[1]
        assert t.spearman.permutation_p > 0.05
        assert abs(t.split_sample.spearman) < 0.2
    assert "no clear relation" in h.sentence
    # Why the log-ratio: the absolute change |R_fine - R_pre| tracks R_pre under this null.
    spurious = stats.spearmanr(comparison.r_pre.value, np.abs(comparison.diff.value)).statistic
    assert spurious > 0.3
    assert abs(h.targets["abs_log_ratio"].spearman.estimate) < spurious - 0.2


def test_split_sample_removes_regression_to_the_mean():
    rng = np.random.default_rng(4)
    n_layers, n_heads = 8, 32
    log_r = rng.normal(0, 0.05, n_layers * n_heads)  # heads differ less than their noise
    n = 100
    pre = np.exp(log_r) * rng.lognormal(0, 0.5, size=(n, log_r.size))
    fine = np.exp(log_r) * rng.lognormal(0, 0.5, size=(n, log_r.size))  # no change at all
    _, h = _run(pre, fine, n_layers)
    signed = h.targets["log_ratio"]
    assert signed.spearman.estimate < -0.3  # noise in R_pre, shared with the log-ratio
    assert abs(signed.split_sample.spearman) < 0.15
    assert "regression to the mean" in h.sentence


def test_depth_alone_is_not_a_within_layer_relation():
    rng = np.random.default_rng(5)
    n_layers, n_heads = 12, 8
    layer = np.repeat(np.arange(n_layers), n_heads)
    # Deeper layers are stronger and change more; within a layer, no relation at all.
    log_r = 0.3 * layer + rng.normal(0, 0.05, layer.size)
    log_ratio = 0.03 * layer + rng.normal(0, 0.01, layer.size)
    _, h = _run(*_samples(rng, log_r, log_ratio, noise=0.1), n_layers)
    t = h.targets["abs_log_ratio"]
    assert t.spearman.estimate > 0.8
    assert t.spearman.permutation_p > 0.05
    assert abs(t.partial.estimate) < 0.25
    assert "depth may explain" in h.sentence


def test_partial_correlation_equals_residualized_ranks():
    rng = np.random.default_rng(6)
    n_layers, n_heads = 6, 10
    log_r = rng.normal(0, 0.5, n_layers * n_heads)
    log_ratio = 0.1 * log_r + rng.normal(0, 0.05, log_r.size)
    comparison, h = _run(*_samples(rng, log_r, log_ratio), n_layers)
    x = np.log(comparison.r_pre.value)
    y = np.abs(comparison.log_ratio.value)
    dummies = np.eye(n_layers)[np.repeat(np.arange(n_layers), n_heads)]
    residual = []
    for v in (stats.rankdata(x), stats.rankdata(y)):
        coef, *_ = np.linalg.lstsq(dummies, v, rcond=None)
        residual.append(v - dummies @ coef)
    expected = stats.pearsonr(*residual).statistic
    assert h.targets["abs_log_ratio"].partial.estimate == pytest.approx(expected, abs=1e-10)


def test_top_k_counts():
    x = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    change = np.array([0.0, 9.0, 8.0, 0.1, 0.2, 0.3])
    changed = np.array([False, True, True, False, False, False])
    top = _top_k(x, change, changed, 3)
    assert (top.k, top.overlap) == (3, 2)
    assert top.precision_at_k == pytest.approx(2 / 3)
    assert top.base_rate == pytest.approx(2 / 6)
    assert top.expected_overlap == pytest.approx(9 / 6)
