"""Confidence intervals from bootstrap replicates: percentile and BCa, vectorized over heads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

CI_METHODS: tuple[str, ...] = ("percentile", "bca")


@dataclass(frozen=True)
class Estimate:
    """A point estimate per head with its confidence interval (NaN where undefined)."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def take(self, index: np.ndarray) -> Estimate:
        return Estimate(self.value[index], self.low[index], self.high[index])


def acceleration(m2: np.ndarray, m3: np.ndarray) -> np.ndarray:
    """BCa acceleration â = ΣU³ / (6 (ΣU²)^{3/2}) from the sums of the influence values U.

    For a mean, U_i = x_i - x̄ and this equals the jackknife acceleration exactly.
    Where ΣU² is 0 (no spread) the interval is degenerate anyway and â is taken as 0.
    """
    m2 = np.asarray(m2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.asarray(m3, dtype=np.float64) / (6.0 * np.power(np.where(m2 > 0, m2, np.nan), 1.5))
    return np.where(np.isfinite(a), a, 0.0)


def _quantiles_sorted(sorted_reps: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Column-wise linear-interpolated quantiles (numpy's default) of column-sorted data.

    `q` holds one probability per column; NaN replicates (sorted last) are left out.
    """
    valid = (~np.isnan(sorted_reps)).sum(axis=0)
    pos = np.clip(q, 0.0, 1.0) * (valid - 1)
    lo = np.floor(pos).astype(np.int64)
    lo = np.clip(lo, 0, np.maximum(valid - 1, 0))
    hi = np.minimum(lo + 1, np.maximum(valid - 1, 0))
    frac = pos - lo
    cols = np.arange(sorted_reps.shape[1])
    v_lo = sorted_reps[lo, cols]
    v_hi = sorted_reps[hi, cols]
    out = v_lo + frac * (v_hi - v_lo)
    return np.where((valid > 0) & np.isfinite(q), out, np.nan)


def percentile_interval(reps: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per column of replicates [n_boot, K]."""
    alpha = (1.0 - level) / 2.0
    if not np.isnan(reps).any():
        low, high = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
        return low, high
    s = np.sort(reps, axis=0)
    k = reps.shape[1]
    return _quantiles_sorted(s, np.full(k, alpha)), _quantiles_sorted(s, np.full(k, 1 - alpha))


def bca_interval(
    reps: np.ndarray, estimate: np.ndarray, accel: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated (low, high) per column, as scipy.stats.bootstrap does."""
    alpha = (1.0 - level) / 2.0
    valid = (~np.isnan(reps)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Half the ties count as below, like scipy's percentile-of-score.
        below = (reps < estimate).sum(axis=0) + 0.5 * (reps == estimate).sum(axis=0)
        z0 = ndtri(below / valid)
        z0 = np.where(np.isfinite(z0), z0, 0.0)
        z_lo, z_hi = ndtri(alpha), ndtri(1.0 - alpha)
        q_lo = ndtr(z0 + (z0 + z_lo) / (1.0 - accel * (z0 + z_lo)))
        q_hi = ndtr(z0 + (z0 + z_hi) / (1.0 - accel * (z0 + z_hi)))
    s = np.sort(reps, axis=0)
    return _quantiles_sorted(s, q_lo), _quantiles_sorted(s, q_hi)


def interval(
    reps: np.ndarray,
    estimate: np.ndarray,
    accel: np.ndarray,
    level: float,
    method: str,
) -> Estimate:
    """The point estimate with its interval by `method` (percentile or bca)."""
    if method == "percentile":
        low, high = percentile_interval(reps, level)
    elif method == "bca":
        low, high = bca_interval(reps, estimate, accel, level)
    else:
        raise ValueError(f"unknown CI method {method!r}; one of {', '.join(CI_METHODS)}.")
    bad = ~np.isfinite(estimate)
    return Estimate(
        value=np.asarray(estimate, dtype=np.float64),
        low=np.where(bad, np.nan, low),
        high=np.where(bad, np.nan, high),
    )
