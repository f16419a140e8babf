"""Read per-sample values x_{i,h} from stores, chunk by chunk, for the rows of a pairing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from headact.analyze.reductions import REDUCTION_STATS, reduce_stats
from headact.store import Store


def read_rows(store: Store, site: str, stats: tuple[str, ...], rows: np.ndarray
              ) -> dict[str, np.ndarray]:
    """Statistics of arbitrary store rows (in the given order), read in contiguous spans.

    Sorted rows are cut where they jump by more than a store block, and spans much longer
    than the rows they hold are cut at block boundaries, so no read is much bigger than what
    it returns.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n_layers, n_heads = store.layers.shape[0], store.heads.shape[0]
    out = {s: np.empty((rows.size, n_layers, n_heads), dtype=np.float32) for s in stats}
    if rows.size == 0:
        return out
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    block = store.block_size
    cuts = np.flatnonzero(np.diff(sorted_rows) > block) + 1
    for group in np.split(np.arange(rows.size), cuts):
        g_rows = sorted_rows[group]
        if g_rows[-1] - g_rows[0] + 1 > 2 * group.size + block:
            blocks = g_rows // block
            pieces = np.split(group, np.flatnonzero(np.diff(blocks)) + 1)
        else:
            pieces = [group]
        for piece in pieces:
            lo, hi = int(sorted_rows[piece[0]]), int(sorted_rows[piece[-1]]) + 1
            local = sorted_rows[piece] - lo
            for stat in stats:
                data = store.read_norm(site, stat, slice(lo, hi))
                out[stat][order[piece]] = data[local]
    return out


def read_values(store: Store, site: str, reduction: str, rows: np.ndarray,
                n_tokens: np.ndarray) -> np.ndarray:
    """float64 [len(rows), layer * head] values of one reduction for these store rows."""
    stats = read_rows(store, site, REDUCTION_STATS[reduction], rows)
    values = reduce_stats(stats, n_tokens[rows], reduction)
    return values.reshape(values.shape[0], -1)


def iter_value_chunks(
    pre: Store,
    pre_rows: np.ndarray,
    fine: Store | None,
    fine_rows: np.ndarray | None,
    *,
    site: str,
    reduction: str,
    chunk_rows: int,
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(first position, pre values, fine values or None) for consecutive chunks of samples."""
    n_tok_pre = pre.samples().n_tokens
    n_tok_fine = fine.samples().n_tokens if fine is not None else None
    for start in range(0, pre_rows.shape[0], chunk_rows):
        stop = min(start + chunk_rows, pre_rows.shape[0])
        x_pre = read_values(pre, site, reduction, pre_rows[start:stop], n_tok_pre)
        x_fine = None
        if fine is not None and fine_rows is not None and n_tok_fine is not None:
            x_fine = read_values(fine, site, reduction, fine_rows[start:stop], n_tok_fine)
        yield start, x_pre, x_fine
