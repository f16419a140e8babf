"""Per-head estimates: R_h for one model, or R_pre, R_fine and their change for two."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import erfc
from scipy.stats import false_discovery_control

from headact.analyze.accumulate import Accumulated, accumulate_arrays
from headact.analyze.bootstrap import Estimate, acceleration, interval

# Why a head's numbers are missing or special; each is a boolean array over heads.
FLAG_REASONS: dict[str, str] = {
    "no_data": "no sample has finite values for this head",
    "few_samples": "fewer than 2 samples with finite values: no interval",
    "nonfinite": "some samples hold non-finite values for this head; they are left out for it",
    "identical": "values are identical in both stores",
    "zero_variance": "the per-sample values (or their differences) do not vary",
    "nonpositive": "R is 0 (or below) in a store: ratio and log-ratio are undefined",
}

CHANGED_UP, CHANGED_DOWN, CHANGED_NONE = "up", "down", "none"

# Relative spread below which per-sample differences count as constant (float64 rounding).
_ROUNDING = 64 * np.finfo(np.float64).eps


def _flags(**arrays: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.asarray(arrays[name], dtype=bool) for name in FLAG_REASONS if name in arrays}


@dataclass(frozen=True)
class HeadEstimates:
    """R_h per head of one model with its interval; arrays over the K flattened heads."""

    r: Estimate
    n: np.ndarray
    sd: np.ndarray
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_heads(self) -> int:
        return int(self.r.value.shape[0])


@dataclass(frozen=True)
class HeadComparison:
    """Pre against fine per head; arrays over the K flattened heads (layer-major)."""

    n: np.ndarray
    r_pre: Estimate
    r_fine: Estimate
    diff: Estimate
    ratio: Estimate
    log_ratio: Estimate
    se_log_ratio: np.ndarray
    p_value: np.ndarray
    q_value: np.ndarray
    d_z: np.ndarray
    changed: np.ndarray  # str: up / down / none
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    min_effect_log: float = float(np.log1p(0.05))

    @property
    def n_heads(self) -> int:
        return int(self.r_pre.value.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """Heads whose log-ratio is defined (finite, positive R in both stores)."""
        return np.isfinite(self.log_ratio.value) & np.isfinite(self.r_pre.value) & (
            self.r_pre.value > 0
        )

    def counts(self) -> dict[str, int]:
        return {c: int((self.changed == c).sum()) for c in (CHANGED_UP, CHANGED_DOWN,
                                                            CHANGED_NONE)}


def estimate_heads(acc: Accumulated, level: float, method: str) -> HeadEstimates:
    """R_h = mean_i x_{i,h} with a bootstrap interval, per head."""
    m, n = acc.moments, acc.n
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(n >= 2, np.sqrt(np.maximum(m.aa, 0.0) / (n - 1)), np.nan)
    r = interval(acc.rep_pre, acc.mean_pre, acceleration(m.aa, m.aaa), level, method)
    few = n < 2
    r = Estimate(r.value, np.where(few, np.nan, r.low), np.where(few, np.nan, r.high))
    flags = _flags(
        no_data=n == 0,
        few_samples=(n > 0) & few,
        nonfinite=(acc.n_nonfinite_pre > 0) & (n > 0),
        zero_variance=(n >= 2) & (m.aa <= 0),
    )
    return HeadEstimates(r=r, n=n.copy(), sd=sd, flags=flags)


def compare_heads(
    acc: Accumulated,
    level: float,
    method: str,
    *,
    fdr: float = 0.05,
    min_effect: float = 0.05,
) -> HeadComparison:
    """Paired per-head comparison: R_pre, R_fine, difference, ratio, log-ratio and tests."""
    if not acc.paired or acc.rep_diff is None or acc.mean_diff is None:
        raise ValueError("compare_heads needs paired (pre and fine) accumulations")
    m, n = acc.moments, acc.n
    nf = n.astype(np.float64)
    r_p, d = acc.mean_pre, acc.mean_diff
    r_f = r_p + d
    rep_p, rep_d = acc.rep_pre, acc.rep_diff
    rep_f = rep_p + rep_d
    positive = (r_p > 0) & (r_f > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # log1p(D / R_pre) keeps full precision when the change is tiny.
        lr = np.where(positive, np.log1p(d / r_p), np.nan)
        ratio = np.where(positive, 1.0 + d / r_p, np.nan)
        rep_ratio = 1.0 + rep_d / rep_p
        rep_ratio = np.where((rep_p > 0) & (rep_f > 0), rep_ratio, np.nan)
        rep_lr = np.log(rep_ratio)

        # Influence values of the log-ratio, scaled by R_fine: U = d' - (D / R_pre) a'.
        g = np.where(positive, -d / r_p, 0.0)
        m_uu = g * g * m.aa + 2 * g * m.ad + m.dd
        m_uuu = g**3 * m.aaa + 3 * g * g * m.aad + 3 * g * m.add + m.ddd
        m_ff = m.aa + 2 * m.ad + m.dd
        m_fff = m.aaa + 3 * m.aad + 3 * m.add + m.ddd

        se = np.sqrt(np.maximum(m_uu, 0.0) / (nf - 1)) / (np.abs(r_f) * np.sqrt(nf))
        se = np.where((n >= 2) & positive, se, np.nan)
        z = np.abs(lr) / se
        p = erfc(z / np.sqrt(2.0))
        # No spread in the influence values: the change is exact, so p is 1 (none) or 0.
        p = np.where(se == 0, np.where(lr == 0, 1.0, 0.0), p)
        sd_d = np.sqrt(np.maximum(m.dd, 0.0) / (nf - 1))
        # A spread at rounding level (a constant shift computed in floating point) is none.
        no_spread = sd_d <= _ROUNDING * np.maximum(np.abs(r_p), np.abs(r_f))
        d_z = np.where((n >= 2) & ~no_spread, d / sd_d, np.nan)

    a_lr = acceleration(m_uu, m_uuu)
    est_pre = interval(rep_p, r_p, acceleration(m.aa, m.aaa), level, method)
    est_fine = interval(rep_f, r_f, acceleration(m_ff, m_fff), level, method)
    est_diff = interval(rep_d, d, acceleration(m.dd, m.ddd), level, method)
    est_ratio = interval(rep_ratio, ratio, a_lr, level, method)
    est_lr = interval(rep_lr, lr, a_lr, level, method)
    few = n < 2
    est_pre, est_fine, est_diff, est_ratio, est_lr = (
        Estimate(e.value, np.where(few, np.nan, e.low), np.where(few, np.nan, e.high))
        for e in (est_pre, est_fine, est_diff, est_ratio, est_lr)
    )

    q = np.full(p.shape, np.nan)
    tested = np.isfinite(p)
    if tested.any():
        q[tested] = false_discovery_control(p[tested], method="bh")

    threshold = float(np.log1p(min_effect))
    with np.errstate(invalid="ignore"):
        significant = tested & (q <= fdr)
        up = significant & (est_lr.low > threshold)
        down = significant & (est_lr.high < -threshold)
    changed = np.full(p.shape, CHANGED_NONE, dtype=object)
    changed[up] = CHANGED_UP
    changed[down] = CHANGED_DOWN

    identical = (n > 0) & (acc.max_abs_diff == 0)
    flags = _flags(
        no_data=n == 0,
        few_samples=(n > 0) & few,
        nonfinite=((acc.n_nonfinite_pre + acc.n_nonfinite_fine) > 0) & (n > 0),
        identical=identical,
        zero_variance=(n >= 2) & ~identical & (no_spread | (m.aa <= 0)),
        nonpositive=(n > 0) & ~positive,
    )
    return HeadComparison(
        n=n.copy(),
        r_pre=est_pre,
        r_fine=est_fine,
        diff=est_diff,
        ratio=est_ratio,
        log_ratio=est_lr,
        se_log_ratio=se,
        p_value=p,
        q_value=q,
        d_z=d_z,
        changed=changed,
        flags=flags,
        min_effect_log=threshold,
    )


def estimate_arrays(
    x: np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
) -> HeadEstimates:
    """R_h with intervals from in-memory values x [N] or [N, K]."""
    return estimate_heads(accumulate_arrays(x, n_boot=n_boot, seed=seed), level, method)


def compare_arrays(
    pre: np.ndarray,
    fine: np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
    fdr: float = 0.05,
    min_effect: float = 0.05,
) -> HeadComparison:
    """The paired comparison from in-memory values pre, fine [N] or [N, K]."""
    acc = accumulate_arrays(pre, fine, n_boot=n_boot, seed=seed)
    return compare_heads(acc, level, method, fdr=fdr, min_effect=min_effect)
