"""Does pre-strength predict change? Rank correlations across heads, with honest uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr

from headact.analyze.correlation import (
    average_ranks,
    cluster_kendall_rows,
    kendall,
    kendall_rows,
    pearson_rows,
    spearman,
    weighted_average_ranks,
)
from headact.analyze.resampling import layer_generator, permutation_generator

TARGETS: dict[str, str] = {
    "abs_log_ratio": "|log-ratio|",
    "log_ratio": "signed log-ratio",
}


@dataclass(frozen=True)
class Correlation:
    """A rank correlation across heads with intervals two ways (None where undefined).

    `ci_samples` resamples the texts (the same bootstrap weights as the per-head intervals),
    `ci_layers` resamples whole layers of heads, because heads of a layer are not independent.
    """

    estimate: float | None
    ci_samples: tuple[float, float] | None
    ci_layers: tuple[float, float] | None
    permutation_p: float | None = None


@dataclass(frozen=True)
class PartialCorrelation:
    """Spearman's rho with layer as a fixed effect: ranks demeaned within layers."""

    estimate: float | None
    p_value: float | None
    ci_samples: tuple[float, float] | None


@dataclass(frozen=True)
class SplitSample:
    """R_pre from one half of the texts, the change from the other, averaged over both ways."""

    spearman: float | None
    kendall: float | None
    spearman_folds: tuple[float | None, float | None]
    kendall_folds: tuple[float | None, float | None]


@dataclass(frozen=True)
class TargetResult:
    """The relation between log R_pre and one measure of change."""

    target: str
    spearman: Correlation
    kendall: Correlation
    partial: PartialCorrelation
    split_sample: SplitSample


@dataclass(frozen=True)
class TopK:
    """Overlap of the k heads strongest before with the k heads that changed most (|LR|)."""

    k: int
    overlap: int
    expected_overlap: float
    overlap_fraction: float
    precision_at_k: float
    base_rate: float


@dataclass(frozen=True)
class HypothesisResult:
    """Everything the summary reports about the across-head relation."""

    n_heads: int
    n_layers: int
    level: float
    n_perm: int
    targets: dict[str, TargetResult]
    top_k: TopK
    sentence: str
    notes: tuple[str, ...] = ()


def _num(value: float | np.floating) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _ci(reps: np.ndarray, level: float) -> tuple[float, float] | None:
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _demean_by_group(values: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """values [..., n] minus the mean of their group (layer), row by row."""
    counts = onehot.sum(axis=0)
    means = (values @ onehot) / counts
    return values - means @ onehot.T


def _partial(x_ranks: np.ndarray, y_ranks: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    return pearson_rows(_demean_by_group(x_ranks, onehot), _demean_by_group(y_ranks, onehot))


def _within_layer_permutations(layer: np.ndarray, n_perm: int, seed: int) -> np.ndarray:
    """int [n_perm, n]: index arrays that shuffle heads among the heads of their own layer."""
    rng = permutation_generator(seed)
    perms = np.tile(np.arange(layer.shape[0], dtype=np.int32), (n_perm, 1))
    for value in np.unique(layer):
        idx = np.flatnonzero(layer == value)
        if idx.size > 1:
            perms[:, idx] = rng.permuted(np.tile(idx.astype(np.int32), (n_perm, 1)), axis=1)
    return perms


def _top_k(x: np.ndarray, change: np.ndarray, changed: np.ndarray, k: int) -> TopK:
    n = x.shape[0]
    k = int(min(max(k, 1), n))
    # Ties are broken by head order (stable), so the sets are reproducible.
    top_x = np.argsort(-x, kind="stable")[:k]
    top_c = np.argsort(-change, kind="stable")[:k]
    overlap = int(np.intersect1d(top_x, top_c).size)
    return TopK(
        k=k,
        overlap=overlap,
        expected_overlap=k * k / n,
        overlap_fraction=overlap / k,
        precision_at_k=float(changed[top_x].mean()),
        base_rate=float(changed.mean()),
    )


def _partial_p(partial: float, n: int, n_layers: int) -> float | None:
    """Two-sided t-test p of a partial correlation with n_layers - 1 covariates."""
    df = n - n_layers - 1
    if not np.isfinite(partial):
        return None
    if abs(partial) >= 1:
        return 0.0
    if df <= 0:
        return None
    t = partial * np.sqrt(df / (1 - partial**2))
    return float(2 * stdtr(df, -abs(t)))


def _split_sample(half_log_r_pre: np.ndarray, half_log_ratio: np.ndarray, *, absolute: bool
                  ) -> SplitSample:
    """R_pre from half A and the change from half B, then the other way round, averaged."""
    folds_rho: list[float | None] = []
    folds_tau: list[float | None] = []
    for pre_half, change_half in ((0, 1), (1, 0)):
        hx = half_log_r_pre[pre_half]
        hy = half_log_ratio[change_half]
        hy = np.abs(hy) if absolute else hy
        good = np.isfinite(hx) & np.isfinite(hy)
        enough = good.sum() >= 3
        folds_rho.append(_num(spearman(hx[good], hy[good])) if enough else None)
        folds_tau.append(_num(kendall(hx[good], hy[good])) if enough else None)

    def mean_of(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return float(np.mean(vals)) if vals else None

    return SplitSample(mean_of(folds_rho), mean_of(folds_tau), (folds_rho[0], folds_rho[1]),
                       (folds_tau[0], folds_tau[1]))


def default_top_k(n_heads: int) -> int:
    """5 % of the heads, at least 1 and at most 50."""
    return int(min(50, max(1, round(0.05 * n_heads))))


def relate_strength_to_change(
    log_r_pre: np.ndarray,
    log_ratio: np.ndarray,
    layer: np.ndarray,
    *,
    rep_log_r_pre: np.ndarray,
    rep_log_ratio: np.ndarray,
    half_log_r_pre: np.ndarray,
    half_log_ratio: np.ndarray,
    changed: np.ndarray,
    level: float = 0.95,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
    top_k: int | None = None,
) -> HypothesisResult:
    """Relate log R_pre to |log-ratio| and to the signed log-ratio across heads.

    All arrays cover the same heads (only heads with defined values; at least 3):
    point estimates [n], replicates from resampling texts [n_boot, n], means over the two
    halves of a random split [2, n] (half A, half B), `changed` bool [n], layer ids [n].
    """
    x = np.asarray(log_r_pre, dtype=np.float64)
    lr = np.asarray(log_ratio, dtype=np.float64)
    n = x.shape[0]
    if n < 3:
        raise ValueError("the hypothesis needs at least 3 heads with defined values")
    layer_values, layer_index = np.unique(np.asarray(layer), return_inverse=True)
    n_layers = layer_values.shape[0]
    onehot = np.zeros((n, n_layers))
    onehot[np.arange(n), layer_index] = 1.0
    notes: list[str] = []

    # Replicates whose every head is defined (a replicate can miss a head with few samples).
    ok = np.isfinite(rep_log_r_pre).all(axis=1) & np.isfinite(rep_log_ratio).all(axis=1)
    rep_x, rep_lr = rep_log_r_pre[ok], rep_log_ratio[ok]
    if ok.sum() < rep_log_r_pre.shape[0]:
        notes.append(f"{int((~ok).sum())} text resamples left out: a head was undefined in them")
    rep_x_ranks = average_ranks(rep_x) if rep_x.shape[0] else rep_x

    if n_layers >= 2:
        counts = layer_generator(seed).multinomial(n_layers, np.full(n_layers, 1 / n_layers),
                                                   size=n_boot)
        head_weights = counts[:, layer_index].astype(np.float64)
        x_ranks_layers = weighted_average_ranks(x, head_weights)
    else:
        counts = head_weights = x_ranks_layers = None
        notes.append("one layer only: no interval from resampling layers")

    perms = _within_layer_permutations(layer_index, n_perm, seed) if n_perm > 0 else None
    x_ranks = average_ranks(x)
    targets: dict[str, TargetResult] = {}
    for name in TARGETS:
        y = np.abs(lr) if name == "abs_log_ratio" else lr
        rep_y = np.abs(rep_lr) if name == "abs_log_ratio" else rep_lr
        y_ranks = average_ranks(y)
        rho = spearman(x, y)
        tau = kendall(x, y)
        rho_perm_p = None
        if perms is not None and np.isfinite(rho):
            # Ranks move with their values, so a permutation needs no re-ranking, and the
            # means and spreads stay put: each permuted rho is one dot product.
            xc, yc = x_ranks - x_ranks.mean(), y_ranks - y_ranks.mean()
            perm_rho = (yc[perms] @ xc) / np.sqrt((xc @ xc) * (yc @ yc))
            extreme = np.abs(perm_rho) >= abs(rho) - 1e-12
            rho_perm_p = float((1 + extreme.sum()) / (1 + n_perm))
        if rep_x.shape[0]:
            rep_y_ranks = average_ranks(rep_y)
            rho_ci = _ci(pearson_rows(rep_x_ranks, rep_y_ranks), level)
            tau_ci = _ci(kendall_rows(rep_x, rep_y), level)
            partial_ci = _ci(_partial(rep_x_ranks, rep_y_ranks, onehot), level)
        else:
            rho_ci = tau_ci = partial_ci = None
        if counts is not None and head_weights is not None and x_ranks_layers is not None:
            y_ranks_layers = weighted_average_ranks(y, head_weights)
            rho_layers = _ci(pearson_rows(x_ranks_layers, y_ranks_layers, head_weights), level)
            tau_layers = _ci(cluster_kendall_rows(x, y, layer_index, counts), level)
        else:
            rho_layers = tau_layers = None

        partial = float(_partial(x_ranks[None], y_ranks[None], onehot)[0])
        split = _split_sample(half_log_r_pre, half_log_ratio, absolute=name == "abs_log_ratio")
        targets[name] = TargetResult(
            target=name,
            spearman=Correlation(_num(rho), rho_ci, rho_layers, rho_perm_p),
            kendall=Correlation(_num(tau), tau_ci, tau_layers, None),
            partial=PartialCorrelation(_num(partial), _partial_p(partial, n, n_layers),
                                       partial_ci),
            split_sample=split,
        )

    top = _top_k(x, np.abs(lr), np.asarray(changed, dtype=bool),
                 top_k if top_k is not None else default_top_k(n))
    return HypothesisResult(
        n_heads=n,
        n_layers=n_layers,
        level=level,
        n_perm=n_perm,
        targets=targets,
        top_k=top,
        sentence=hypothesis_sentence(targets["abs_log_ratio"], targets["log_ratio"], level, n),
        notes=tuple(notes),
    )


def _excludes_zero(ci: tuple[float, float] | None) -> int:
    """+1 when the interval lies above 0, -1 below, 0 otherwise."""
    if ci is None:
        return 0
    return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def hypothesis_sentence(
    magnitude: TargetResult, signed: TargetResult, level: float, n_heads: int
) -> str:
    """One plain sentence on what the data show about pre-strength and change."""
    alpha = 1 - level
    pct = f"{100 * level:g}%"
    rho = magnitude.spearman
    if rho.estimate is None:
        return (f"Across {n_heads} heads, the size of the change does not vary (or is not "
                "defined), so there is no relation between strength before fine-tuning and "
                "change to measure.")
    by_layers = _excludes_zero(rho.ci_layers)
    by_samples = _excludes_zero(rho.ci_samples)
    within = rho.permutation_p is not None and rho.permutation_p <= alpha
    sign = by_layers or by_samples or (
        int(np.sign(rho.estimate)) if rho.estimate is not None else 0
    )
    perm_p = "n/a" if rho.permutation_p is None else f"{rho.permutation_p:.3g}"
    layer_ci = (f"{_fmt(rho.ci_layers[0])} to {_fmt(rho.ci_layers[1])}" if rho.ci_layers
                else "n/a")
    evidence = (
        f"Spearman rho(log R_pre, |log-ratio|) = {_fmt(rho.estimate)}, {pct} CI {layer_ci} "
        f"over layers, within-layer permutation p = {perm_p}, "
        f"split-sample rho = {_fmt(magnitude.split_sample.spearman)}"
    )
    direction = "more" if sign > 0 else "less"
    robust = by_layers != 0 and by_samples != 0
    if robust and within:
        claim = (f"Across {n_heads} heads, heads that were stronger before fine-tuning changed "
                 f"{direction}")
    elif robust:
        claim = (f"Across {n_heads} heads, stronger heads changed {direction}, but not within "
                 "layers, so depth may explain the relation")
    elif within:
        claim = (f"Within layers, stronger heads changed {direction}, but the relation does not "
                 f"hold up when whole layers are resampled ({n_heads} heads)")
    else:
        claim = (f"Across {n_heads} heads, the data show no clear relation between a head's "
                 "strength before fine-tuning and how much it changed")
    if (robust or within) and not _split_agrees(magnitude, sign):
        claim += (", though the split-sample estimate is much weaker, so part of it may be "
                  "regression to the mean")
    signed_dir = _excludes_zero(signed.spearman.ci_layers)
    tail = ""
    if signed_dir and _excludes_zero(signed.spearman.ci_samples) == signed_dir:
        if _split_agrees(signed, signed_dir):
            tail = (f"; stronger heads tended to {'grow' if signed_dir > 0 else 'shrink'} "
                    f"(signed rho = {_fmt(signed.spearman.estimate)}, split-sample "
                    f"{_fmt(signed.split_sample.spearman)})")
        else:
            tail = (f"; the signed log-ratio's rho of {_fmt(signed.spearman.estimate)} shrinks to "
                    f"{_fmt(signed.split_sample.spearman)} when R_pre and the change come from "
                    "different halves of the texts: regression to the mean, not a trend")
    return f"{claim} ({evidence}){tail}."


def _split_agrees(target: TargetResult, sign: int) -> bool:
    """The split-sample rho has the same sign and at least half the full-sample size."""
    split, full = target.split_sample.spearman, target.spearman.estimate
    if split is None or full is None:
        return False
    return int(np.sign(split)) == sign and abs(split) >= 0.5 * abs(full)
