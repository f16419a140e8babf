"""Per-sample values x_{i,h} from the stored per-sample statistics, one function per reduction."""

from __future__ import annotations

import numpy as np

# The stats each reduction reads, in the order of statistics.md's table.
REDUCTION_STATS: dict[str, tuple[str, ...]] = {
    "token-mean": ("sum",),
    "rms": ("sumsq",),
    "frobenius": ("sumsq",),
    "first": ("first",),
    "last": ("last",),
    "no-first": ("sum", "first"),
}
REDUCTIONS: tuple[str, ...] = tuple(REDUCTION_STATS)

# Fewest counted tokens a sample needs for the reduction to be defined.
MIN_TOKENS: dict[str, int] = {
    "token-mean": 1,
    "rms": 1,
    "frobenius": 1,
    "first": 1,
    "last": 1,
    "no-first": 2,
}

DESCRIPTIONS: dict[str, str] = {
    "token-mean": "mean over tokens of the per-token norm",
    "rms": "root mean square over tokens of the per-token norm",
    "frobenius": "norm of the whole [tokens, dim] output",
    "first": "norm at the first token",
    "last": "norm at the last token",
    "no-first": "mean per-token norm without the first token",
}


def check_reduction(reduction: str) -> None:
    """Refuse an unknown reduction, naming the known ones."""
    if reduction not in REDUCTION_STATS:
        raise ValueError(f"unknown reduction {reduction!r}; one of {', '.join(REDUCTIONS)}.")


def reduce_stats(
    stats: dict[str, np.ndarray], n_tokens: np.ndarray, reduction: str
) -> np.ndarray:
    """float64 [sample, ...] values x_{i,h} of one reduction.

    `stats` maps stat name to float32 [sample, layer, head] (or [sample, heads]); `n_tokens`
    is int [sample]. Samples with too few tokens give NaN, which the caller counts and drops.
    """
    check_reduction(reduction)
    n = np.asarray(n_tokens, dtype=np.float64)
    n = n.reshape(n.shape + (1,) * (stats[REDUCTION_STATS[reduction][0]].ndim - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        if reduction == "token-mean":
            out = stats["sum"].astype(np.float64) / n
        elif reduction == "rms":
            out = np.sqrt(stats["sumsq"].astype(np.float64) / n)
        elif reduction == "frobenius":
            out = np.sqrt(stats["sumsq"].astype(np.float64))
        elif reduction == "first":
            out = stats["first"].astype(np.float64)
        elif reduction == "last":
            out = stats["last"].astype(np.float64)
        else:  # no-first
            out = (stats["sum"].astype(np.float64) - stats["first"]) / (n - 1.0)
        too_few = n < MIN_TOKENS[reduction]
        if np.any(too_few):
            out = np.where(too_few, np.nan, out)
    return out
