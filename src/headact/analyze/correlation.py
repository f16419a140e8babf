"""Rank correlations vectorized over rows: Spearman and Kendall's tau_b, plain and weighted."""

from __future__ import annotations

import numpy as np

# Rows per batch of the row-wise rank computations: a batch's arrays stay in cache.
_BATCH = 64


def _run_bounds(sorted_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position of row-sorted data, the first and last position of its tie run."""
    n = sorted_rows.shape[1]
    pos = np.arange(n)
    new = np.ones(sorted_rows.shape, dtype=bool)
    new[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones(sorted_rows.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties getting their average rank (scipy's default)."""
    a = np.asarray(a, dtype=np.float64)
    rows = a.reshape(-1, a.shape[-1])
    ranks = np.empty_like(rows)
    for lo in range(0, rows.shape[0], _BATCH):
        block = rows[lo : lo + _BATCH]
        # Tied values get one average rank, so the fast unstable sort will do.
        order = np.argsort(block, axis=1)
        start, end = _run_bounds(np.take_along_axis(block, order, axis=1))
        np.put_along_axis(ranks[lo : lo + _BATCH], order, (start + end) / 2.0 + 1.0, axis=1)
    return ranks.reshape(a.shape)


def pearson_rows(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of each row pair, optionally with frequency weights w."""
    if w is None:
        xc = x - x.mean(axis=-1, keepdims=True)
        yc = y - y.mean(axis=-1, keepdims=True)
        num = np.einsum("...i,...i->...", xc, yc)
        den = np.sqrt(np.einsum("...i,...i->...", xc, xc) * np.einsum("...i,...i->...", yc, yc))
    else:
        # Weighted moments by single-pass sums; ranks are small numbers, so no cancellation.
        total = w.sum(axis=-1)
        mx = np.einsum("...i,...i->...", w, x) / total
        my = np.einsum("...i,...i->...", w, y) / total
        num = np.einsum("...i,...i,...i->...", w, x, y) - total * mx * my
        sxx = np.einsum("...i,...i,...i->...", w, x, x) - total * mx * mx
        syy = np.einsum("...i,...i,...i->...", w, y, y) - total * my * my
        den = np.sqrt(np.maximum(sxx, 0.0) * np.maximum(syy, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of x [B, n] with the same row of y."""
    return pearson_rows(average_ranks(x), average_ranks(y))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of two vectors (NaN when one is constant)."""
    return float(spearman_rows(np.asarray(x)[None], np.asarray(y)[None])[0])


def weighted_average_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of `values` [n] in multisets where value i occurs weights[b, i] times.

    Equals ranking the explicitly repeated data, without building it: a cluster bootstrap
    replicate of heads is such a multiset.
    """
    order = np.argsort(values, kind="stable")
    s = values[order]
    new = np.ones(s.shape, dtype=bool)
    new[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    group_weight = np.add.reduceat(weights[:, order], starts, axis=1)
    below = np.cumsum(group_weight, axis=1) - group_weight
    group_rank = below + (group_weight + 1.0) / 2.0
    # Value i sits in group group[position of i in the sorted order]: one gather.
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return np.take(group_rank, group[position], axis=1)


def weighted_spearman_rows(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of x and y [n] over multisets given by frequency weights [B, n]."""
    w = np.asarray(weights, dtype=np.float64)
    return pearson_rows(weighted_average_ranks(x, w), weighted_average_ranks(y, w), w)


def _tie_pairs(sorted_rows: np.ndarray) -> np.ndarray:
    """Pairs of equal values per row of row-sorted data."""
    n = sorted_rows.shape[1]
    pos = np.arange(n, dtype=np.int32)
    new = np.ones(sorted_rows.shape, dtype=bool)
    new[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    return (pos - start).sum(axis=1, dtype=np.int64)


def _dense_ranks(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based dense ranks (ties share one) per row, and the row-sorted data."""
    # Any sort gives the same dense ranks, so the fast unstable one will do.
    order = np.argsort(rows, axis=1)
    s = np.take_along_axis(rows, order, axis=1)
    step = np.zeros(rows.shape, dtype=np.int32)
    step[:, 1:] = s[:, 1:] != s[:, :-1]
    ranks = np.empty(rows.shape, dtype=np.int32)
    np.put_along_axis(ranks, order, np.cumsum(step, axis=1, dtype=np.int32), axis=1)
    return ranks, s


def _inversions(v: np.ndarray) -> np.ndarray:
    """Pairs i < j with v_i > v_j per row of small non-negative integers.

    Bit by bit from the top: a pair is inverted at the highest bit where the two values
    differ, so per bit we count, among values sharing the higher bits, the 1s that come
    before a 0. Each level is one stable (radix) sort of the row; no Python loop over n.
    """
    n_rows, n = v.shape
    n_bits = max(1, int(np.max(v, initial=0)).bit_length())
    v = v.astype(np.int16 if n_bits < 15 else np.int32)
    pos = np.arange(n, dtype=np.int32)
    total = np.zeros(n_rows, dtype=np.int64)
    for k in range(n_bits - 1, -1, -1):
        high = v >> (k + 1)
        order = np.argsort(high, axis=1, kind="stable")
        hs = np.take_along_axis(high, order, axis=1)
        bit = ((np.take_along_axis(v, order, axis=1) >> k) & 1).astype(np.int32)
        ones_before = np.cumsum(bit, axis=1, dtype=np.int32) - bit
        new = np.ones(hs.shape, dtype=bool)
        new[:, 1:] = hs[:, 1:] != hs[:, :-1]
        start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
        ones_in_group = ones_before - np.take_along_axis(ones_before, start, axis=1)
        total += np.where(bit == 0, ones_in_group, 0).sum(axis=1, dtype=np.int64)
    return total


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau_b of each row of x [B, n] with the same row of y (scipy's definition)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    out = np.empty(x.shape[0])
    for lo in range(0, x.shape[0], _BATCH):
        hi = min(lo + _BATCH, x.shape[0])
        out[lo:hi] = _kendall_batch(x[lo:hi], y[lo:hi])
    return out


def _kendall_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    xr, xs = _dense_ranks(x)
    yr, ys = _dense_ranks(y)
    # Sorted by (x, y), the discordant pairs are exactly the strict inversions of y's ranks.
    key = xr.astype(np.int64) * n + yr
    order = np.argsort(key, axis=1)
    v = np.take_along_axis(yr, order, axis=1)
    n0 = n * (n - 1) // 2
    n1 = _tie_pairs(xs)
    n2 = _tie_pairs(ys)
    n3 = _tie_pairs(np.take_along_axis(key, order, axis=1))
    discordant = _inversions(v)
    s = n0 - n1 - n2 + n3 - 2 * discordant
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt((n0 - n1).astype(np.float64) * (n0 - n2))
        return np.where(den > 0, s / den, np.nan)


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau_b of two vectors."""
    return float(kendall_rows(np.asarray(x)[None], np.asarray(y)[None])[0])


def cluster_kendall_rows(
    x: np.ndarray, y: np.ndarray, cluster: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Kendall's tau_b over cluster bootstrap replicates, exactly, without materializing them.

    A replicate takes cluster c counts[b, c] times. Over ordered pairs of its elements, the
    sum of sign products and the tie counts are quadratic forms counts^T M counts in small
    [cluster, cluster] matrices M computed once from all pairs of heads.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_clusters = counts.shape[1]
    concord = np.zeros((n_clusters, n_clusters))
    ties_x = np.zeros_like(concord)
    ties_y = np.zeros_like(concord)
    onehot = np.zeros((x.shape[0], n_clusters))
    onehot[np.arange(x.shape[0]), cluster] = 1.0
    step = max(1, 4_000_000 // max(1, x.shape[0]))
    for lo in range(0, x.shape[0], step):
        hi = min(lo + step, x.shape[0])
        dx = x[lo:hi, None] - x[None, :]
        dy = y[lo:hi, None] - y[None, :]
        rows = onehot[lo:hi].T
        concord += rows @ (np.sign(dx) * np.sign(dy)) @ onehot
        ties_x += rows @ (dx == 0).astype(np.float64) @ onehot
        ties_y += rows @ (dy == 0).astype(np.float64) @ onehot
    c = np.asarray(counts, dtype=np.float64)
    sizes = onehot.sum(axis=0)
    n_rep = c @ sizes

    def form(m: np.ndarray) -> np.ndarray:
        return np.einsum("bi,ij,bj->b", c, m, c)

    s = form(concord) / 2.0
    n0 = n_rep * (n_rep - 1) / 2.0
    n1 = (form(ties_x) - n_rep) / 2.0
    n2 = (form(ties_y) - n_rep) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt((n0 - n1) * (n0 - n2))
        return np.where(den > 0, s / den, np.nan)
