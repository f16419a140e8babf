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
    view = RawNormView(store)
    return {stat: view.read_norm(site, stat) for stat in layout.STATS}


class RawNormView:
    """A store whose norm statistics are recomputed from its raw vectors (`--from-raw`).

    Everything else (samples, done flags, metadata) is the store's own; the layers are the
    raw layers. Statistics of a run of rows are computed once and serve every stat asked of
    them, so a reader asking stat by stat does not decode the vectors five times.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._info = raw_info(store)
        self._starts, self._counts = token_ranges(store)
        self._cached: tuple[tuple[str, int, int], dict[str, np.ndarray]] | None = None

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def __enter__(self) -> RawNormView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._store.close()

    @property
    def layers(self) -> np.ndarray:
        return np.asarray(self._info.layers, dtype=np.int64)

    @property
    def sites(self) -> tuple[str, ...]:
        return self._info.sites

    def read_norm(self, site: str, stat: str, rows: slice = slice(None)) -> np.ndarray:
        """float32 [rows, raw layers, heads] of one statistic, from the raw vectors."""
        start, stop, _ = rows.indices(self._store.n_samples)
        key = (site, start, stop)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self._stats(site, start, stop))
        return self._cached[1][stat]

    def _stats(self, site: str, start: int, stop: int) -> dict[str, np.ndarray]:
        name = _site(self._store, self._info, site)
        n_heads = len(self._store.heads)
        out = {stat: np.full((stop - start, len(self._info.layers), n_heads), np.nan,
                             np.float32) for stat in layout.STATS}
        if stop <= start:
            return out
        first = int(self._starts[start])
        last = int(self._starts[stop - 1] + self._counts[stop - 1])
        vectors = as_float32(self._store.backend.read(name, slice(first, last)), self._info.dtype)
        norms = np.linalg.norm(vectors.astype(np.float64), axis=-1)  # [tokens, layers, heads]
        done = self._store.done()
        for i, row in enumerate(range(start, stop)):
            if not done[row]:
                continue
            lo = int(self._starts[row]) - first
            sample = norms[lo:lo + int(self._counts[row])]
            out["sum"][i] = sample.sum(0)
            out["sumsq"][i] = (sample ** 2).sum(0)
            out["first"][i] = sample[0]
            out["last"][i] = sample[-1]
            out["max"][i] = sample.max(0)
        return out
