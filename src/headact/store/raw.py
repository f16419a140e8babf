"""Read raw y_h vectors lazily: one sample's tokens, or one layer and head across samples."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from headact.errors import StoreError
from headact.store import layout
from headact.store.reader import Store


@dataclass(frozen=True)
class RawInfo:
    """What raw vectors a store holds."""

    sites: tuple[str, ...]
    layers: tuple[int, ...]
    dtype: str
    n_tokens: int


def raw_info(store: Store) -> RawInfo:
    """The store's raw layout; refuses a store dumped without --raw."""
    meta = store.metadata.get("raw")
    if not meta:
        raise StoreError(
            f"{store.path} holds no raw vectors; dump it again with --raw."
        )
    return RawInfo(tuple(meta["sites"]), tuple(meta["layers"]), meta["dtype"],
                   int(meta["n_tokens"]))


def as_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Stored raw values as float32 (bfloat16 is kept as its uint16 bits)."""
    if dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32)


def _site(store: Store, info: RawInfo, site: str) -> str:
    if site not in info.sites:
        raise StoreError(f"{store.path} has raw vectors for {', '.join(info.sites)}, not {site!r}.")
    return layout.raw_path(site)


def token_ranges(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """(token_start, n_tokens) per sample row."""
    return store.backend.read(layout.TOKEN_START), store.samples().n_tokens.astype(np.int64)


def iter_sample_raw(store: Store, site: str = "z") -> Iterator[tuple[int, np.ndarray]]:
    """(sample row, float32 [tokens, raw layers, heads, dim]) for each done sample, in order."""
    info = raw_info(store)
    name = _site(store, info, site)
    starts, counts = token_ranges(store)
    done = store.done()
    for row in np.flatnonzero(done):
        start = int(starts[row])
        values = store.backend.read(name, slice(start, start + int(counts[row])))
        yield int(row), as_float32(values, info.dtype)


def read_head_raw(store: Store, layer: int, head: int, site: str = "z") -> np.ndarray:
    """float32 [token, dim] of one layer and head over all tokens; reads only its chunks."""
    info = raw_info(store)
    name = _site(store, info, site)
    if layer not in info.layers:
        raise StoreError(f"layer {layer} has no raw vectors; stored layers: "
                         f"{', '.join(map(str, info.layers))}.")
    heads = [int(h) for h in store.heads]
    if head not in heads:
        raise StoreError(f"head {head} is not in the store; stored heads: "
                         f"{', '.join(map(str, heads))}.")
    values = store.backend.read(name, (slice(None), info.layers.index(layer), heads.index(head)))
    return as_float32(values, info.dtype)


def token_table(store: Store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per token row: (sample row, position within its sample, token id)."""
    starts, counts = token_ranges(store)
    rows = np.repeat(np.arange(len(starts)), counts)
    positions = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return rows, positions, store.backend.read(layout.RAW_TOKEN_ID)


def norm_stats_from_raw(store: Store, site: str = "z") -> dict[str, np.ndarray]:
    """The five norm statistics [sample, raw layers, heads] recomputed from the raw vectors."""
    info = raw_info(store)
    n_heads = len(store.heads)
    out = {stat: np.full((store.n_samples, len(info.layers), n_heads), np.nan, np.float32)
           for stat in layout.STATS}
    for row, vectors in iter_sample_raw(store, site):
        norms = np.linalg.norm(vectors.astype(np.float64), axis=-1)  # [tokens, layers, heads]
        out["sum"][row] = norms.sum(0)
        out["sumsq"][row] = (norms ** 2).sum(0)
        out["first"][row] = norms[0]
        out["last"][row] = norms[-1]
        out["max"][row] = norms.max(0)
    return out
