"""One pass over per-sample values, chunk by chunk: sums, co-moments and bootstrap replicates.

Memory is bounded by the chunk: the weights of a chunk are [n_boot, chunk], the replicate
sums [n_boot, heads], never [n_boot, samples].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headact.analyze.resampling import BootstrapWeights, split_halves


@dataclass(frozen=True)
class CentralMoments:
    """Sums over samples of products of deviations from the mean, per head.

    `a` is the pre (or single) value, `d` the paired difference fine - pre.
    """

    aa: np.ndarray
    aaa: np.ndarray
    ad: np.ndarray
    dd: np.ndarray
    aad: np.ndarray
    add: np.ndarray
    ddd: np.ndarray


@dataclass(frozen=True)
class Accumulated:
    """Everything the per-head estimates and the hypothesis need, for K heads."""

    n_samples: int  # samples analyzed
    n: np.ndarray  # int64 [K]: samples with finite values for that head
    n_nonfinite_pre: np.ndarray  # int64 [K]
    n_nonfinite_fine: np.ndarray | None  # int64 [K]
    mean_pre: np.ndarray  # [K]
    mean_diff: np.ndarray | None  # [K]
    moments: CentralMoments
    max_abs_diff: np.ndarray | None  # [K]: 0 where both stores hold identical values
    rep_pre: np.ndarray  # [n_boot, K] replicate means of pre
    rep_diff: np.ndarray | None  # [n_boot, K] replicate means of fine - pre
    half_pre: np.ndarray  # [2, K]: means over halves A and B of a random split
    half_diff: np.ndarray | None  # [2, K]

    @property
    def paired(self) -> bool:
        return self.mean_diff is not None

    @property
    def mean_fine(self) -> np.ndarray:
        assert self.mean_diff is not None
        return self.mean_pre + self.mean_diff

    @property
    def rep_fine(self) -> np.ndarray:
        assert self.rep_diff is not None
        return self.rep_pre + self.rep_diff


class Accumulator:
    """Feed chunks of per-sample values in sample order; read `result()` at the end."""

    def __init__(
        self,
        weights: BootstrapWeights,
        n_heads: int,
        *,
        paired: bool,
        matmul_dtype: type = np.float32,
    ) -> None:
        self.weights = weights
        self.k = int(n_heads)
        self.paired = paired
        # float32 products are accurate here because the values are centred first (the
        # error is relative to the spread, not the mean) and sums go to float64 per chunk.
        self.matmul_dtype = matmul_dtype
        b, k = weights.n_boot, self.k
        self.seen = 0
        self.shift_a: np.ndarray | None = None
        self.shift_d = np.zeros(k)
        self.n = np.zeros(k, dtype=np.int64)
        self.bad_pre = np.zeros(k, dtype=np.int64)
        self.bad_fine = np.zeros(k, dtype=np.int64)
        self.sums = {name: np.zeros(k) for name in ("a", "d", "aa", "ad", "dd", "aaa", "aad",
                                                     "add", "ddd")}
        self.max_abs_d = np.zeros(k)
        self.rep_a = np.zeros((b, k))
        self.rep_d = np.zeros((b, k)) if paired else None
        self.row_weight = np.zeros(b)
        self.missing_weight: np.ndarray | None = None  # [b, k], only once a value is missing
        self.half_n = np.zeros((2, k), dtype=np.int64)
        self.half_a = np.zeros((2, k))
        self.half_d = np.zeros((2, k))

    def add(self, start: int, pre: np.ndarray, fine: np.ndarray | None = None) -> None:
        """Add samples start .. start+len(pre)-1 (float [n, K] each; fine when paired)."""
        pre = np.asarray(pre, dtype=np.float64).reshape(len(pre), self.k)
        if start != self.seen:
            raise ValueError(f"chunks must come in order: expected start {self.seen}, not {start}")
        stop = start + len(pre)
        finite_pre = np.isfinite(pre)
        self.bad_pre += (~finite_pre).sum(axis=0)
        mask = finite_pre
        if self.paired:
            if fine is None:
                raise ValueError("a paired accumulator needs `fine` values")
            fine = np.asarray(fine, dtype=np.float64).reshape(len(pre), self.k)
            finite_fine = np.isfinite(fine)
            self.bad_fine += (~finite_fine).sum(axis=0)
            mask = finite_pre & finite_fine
        all_finite = bool(mask.all())
        with np.errstate(invalid="ignore"):
            diff = None
            if fine is not None:
                diff = fine - pre if all_finite else np.where(mask, fine - pre, 0.0)
        if self.shift_a is None:
            # Centre on the first chunk's means: later sums of deviations stay small.
            count = np.maximum(mask.sum(axis=0), 1)
            self.shift_a = np.where(mask, pre, 0.0).sum(axis=0) / count
            if diff is not None:
                self.shift_d = diff.sum(axis=0) / count
        if all_finite:
            a = pre - self.shift_a
            d = diff - self.shift_d if diff is not None else None
        else:
            a = np.where(mask, pre - self.shift_a, 0.0)
            d = np.where(mask, diff - self.shift_d, 0.0) if diff is not None else None

        w = self.weights.columns(start, stop).astype(self.matmul_dtype)
        self.rep_a += w @ a.astype(self.matmul_dtype)
        if d is not None and self.rep_d is not None:
            self.rep_d += w @ d.astype(self.matmul_dtype)
        self.row_weight += w.sum(axis=1, dtype=np.float64)
        if not all_finite:
            if self.missing_weight is None:
                self.missing_weight = np.zeros_like(self.rep_a)
            self.missing_weight += w @ (~mask).astype(self.matmul_dtype)

        s = self.sums
        n_chunk = mask.sum(axis=0)
        self.n += n_chunk
        s["a"] += a.sum(axis=0)
        aa = a * a
        s["aa"] += aa.sum(axis=0)
        s["aaa"] += np.einsum("ij,ij->j", aa, a)
        if d is not None and diff is not None:
            s["d"] += d.sum(axis=0)
            dd = d * d
            s["dd"] += dd.sum(axis=0)
            s["ddd"] += np.einsum("ij,ij->j", dd, d)
            s["ad"] += np.einsum("ij,ij->j", a, d)
            s["aad"] += np.einsum("ij,ij->j", aa, d)
            s["add"] += np.einsum("ij,ij->j", dd, a)
            np.maximum(self.max_abs_d, np.abs(diff).max(axis=0, initial=0.0), out=self.max_abs_d)

        # Half A's sums as one matrix-vector product each; half B is the rest of the chunk.
        in_a = split_halves(self.weights.n_samples, self.weights.seed, start, stop,
                            self.weights.block).astype(np.float64)
        count_a = (in_a @ mask).astype(np.int64) if not all_finite else np.full(
            self.k, int(in_a.sum()), dtype=np.int64)
        self.half_n[0] += count_a
        self.half_n[1] += n_chunk - count_a
        sum_a = in_a @ a
        self.half_a[0] += sum_a
        self.half_a[1] += a.sum(axis=0) - sum_a
        if d is not None:
            sum_d = in_a @ d
            self.half_d[0] += sum_d
            self.half_d[1] += d.sum(axis=0) - sum_d
        self.seen = stop

    def result(self) -> Accumulated:
        """The per-head summaries; call after every sample was added."""
        if self.seen != self.weights.n_samples:
            raise ValueError(f"{self.seen} of {self.weights.n_samples} samples were added")
        s, n = self.sums, self.n.astype(np.float64)
        shift_a = self.shift_a if self.shift_a is not None else np.zeros(self.k)
        with np.errstate(invalid="ignore", divide="ignore"):
            ma = np.where(n > 0, s["a"] / n, np.nan)
            md = np.where(n > 0, s["d"] / n, np.nan)
            ma0, md0 = np.nan_to_num(ma), np.nan_to_num(md)
            moments = CentralMoments(
                aa=s["aa"] - n * ma0**2,
                aaa=s["aaa"] - 3 * ma0 * s["aa"] + 2 * n * ma0**3,
                ad=s["ad"] - n * ma0 * md0,
                dd=s["dd"] - n * md0**2,
                aad=s["aad"] - md0 * s["aa"] - 2 * ma0 * s["ad"] + 2 * n * ma0**2 * md0,
                add=s["add"] - ma0 * s["dd"] - 2 * md0 * s["ad"] + 2 * n * md0**2 * ma0,
                ddd=s["ddd"] - 3 * md0 * s["dd"] + 2 * n * md0**3,
            )
            count = self.row_weight[:, None]
            if self.missing_weight is not None:
                count = count - self.missing_weight
            count = np.where(count > 0, count, np.nan)
            rep_pre = shift_a + self.rep_a / count
            rep_diff = (self.shift_d + self.rep_d / count) if self.rep_d is not None else None
            half_n = np.where(self.half_n > 0, self.half_n, np.nan)
            half_pre = shift_a + self.half_a / half_n
            half_diff = self.shift_d + self.half_d / half_n
        return Accumulated(
            n_samples=self.seen,
            n=self.n.copy(),
            n_nonfinite_pre=self.bad_pre.copy(),
            n_nonfinite_fine=self.bad_fine.copy() if self.paired else None,
            mean_pre=shift_a + ma,
            mean_diff=self.shift_d + md if self.paired else None,
            moments=moments,
            max_abs_diff=np.where(self.n > 0, self.max_abs_d, np.nan) if self.paired else None,
            rep_pre=rep_pre,
            rep_diff=rep_diff,
            half_pre=half_pre,
            half_diff=half_diff if self.paired else None,
        )


def accumulate_arrays(
    pre: np.ndarray,
    fine: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    chunk: int | None = None,
    matmul_dtype: type = np.float64,
) -> Accumulated:
    """Accumulate in-memory values [N, K] (for small data, tests and library callers)."""
    pre = np.asarray(pre, dtype=np.float64)
    if pre.ndim == 1:
        pre = pre[:, None]
        fine = None if fine is None else np.asarray(fine, dtype=np.float64)[:, None]
    n, k = pre.shape[0], int(np.prod(pre.shape[1:]))
    weights = BootstrapWeights(n, n_boot, seed)
    acc = Accumulator(weights, k, paired=fine is not None, matmul_dtype=matmul_dtype)
    step = chunk or max(n, 1)
    for start in range(0, n, step):
        stop = min(n, start + step)
        acc.add(start, pre[start:stop].reshape(stop - start, k),
                None if fine is None else np.asarray(fine)[start:stop].reshape(stop - start, k))
    return acc.result()
