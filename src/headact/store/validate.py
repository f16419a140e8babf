"""Check a store against format 1: schema, arrays, dtypes, shapes, dims, done rows, chunks."""

from __future__ import annotations

import os

import numpy as np

from headact.errors import StoreError
from headact.store import layout
from headact.store.reader import Store
from headact.store.schemas import STORE_SCHEMA, schema_errors


def validate_store(path: str | os.PathLike) -> list[str]:
    """Every problem found in the store at `path`; an empty list means it is sound."""
    try:
        store = Store(path, check=False)
    except StoreError as exc:
        return [str(exc)]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a finding, not a crash
        return [f"{path}: cannot be opened ({type(exc).__name__}: {exc})"]
    with store:
        return _problems(store)


def _problems(store: Store) -> list[str]:
    problems = [f"metadata {m}" for m in schema_errors(store.metadata, STORE_SCHEMA)]
    lay = store.metadata.get("layout")
    if problems and not isinstance(lay, dict):
        return problems
    try:
        n = int(lay["n_samples"])
        n_layers, n_heads = len(lay["layers"]), len(lay["heads"])
        sites = tuple(lay["sites"])
    except (KeyError, TypeError, ValueError):
        return problems + ["metadata layout is unreadable; cannot check the arrays"]

    present = set(store.backend.array_names())
    for name, (dtype, dims) in layout.expected_arrays(sites).items():
        if name not in present:
            problems.append(f"{name}: missing")
            continue
        info = store.backend.info(name)
        shape = _expected_shape(name, n, n_layers, n_heads)
        if info.shape != shape:
            problems.append(f"{name}: shape {info.shape}, expected {shape}")
        if info.dtype != dtype:
            problems.append(f"{name}: dtype {info.dtype}, expected {dtype}")
        # Sample arrays must at least lead with `sample`; the rest must match exactly.
        lead_only = name.startswith("samples/")
        if (info.dims[:1] != dims[:1]) if lead_only else (tuple(info.dims) != dims):
            problems.append(f"{name}: dimension names {info.dims}, expected {dims}")
        if info.dtype.kind == "f" and not (info.fill_value is None or np.isnan(info.fill_value)):
            problems.append(f"{name}: fill value {info.fill_value}, expected NaN")
    if problems:
        return problems

    for name, expected in ((layout.LAYER, lay["layers"]), (layout.HEAD, lay["heads"])):
        values = _read(store, name, slice(None), problems)
        if values is not None and list(values) != list(expected):
            problems.append(f"{name}: values {list(values)} differ from metadata {expected}")

    done = _read(store, layout.DONE, slice(None), problems)
    if done is None:
        return problems
    if not np.isin(done, (0, 1)).all():
        problems.append(f"{layout.DONE}: holds values other than 0 and 1")
    done = done == 1
    if store.is_complete and not done.all():
        problems.append(
            f"status is complete but {int((~done).sum())} samples are not done "
            f"(first: row {int(np.argmin(done))})"
        )
    n_tokens = _read(store, layout.N_TOKENS, slice(None), problems)
    if n_tokens is not None and (n_tokens[done] < 1).any():
        problems.append(f"{layout.N_TOKENS}: done rows with no counted token")
    block = int(lay["block_size"])
    nonfinite_ok = sum((store.metadata.get("nonfinite") or {}).values()) > 0
    for site in sites:
        for stat in layout.STATS:
            name = layout.norm_path(site, stat)
            for start in range(0, n, block):
                rows = slice(start, min(start + block, n))
                values = _read(store, name, rows, problems)
                if values is None:
                    continue
                nan_rows = np.isnan(values).all(axis=(1, 2))
                bad = done[rows] & nan_rows
                if bad.any():
                    problems.append(
                        f"{name}: {int(bad.sum())} done rows hold only NaN "
                        f"(first: row {start + int(np.argmax(bad))})"
                    )
                if not nonfinite_ok and (done[rows][:, None, None] & ~np.isfinite(values)).any():
                    problems.append(f"{name}: non-finite values in done rows {rows.start}-"
                                    f"{rows.stop - 1} that the metadata does not count")
    if store.metadata.get("raw"):
        problems += _raw_problems(store, n_tokens, n_heads)
    return problems


def _raw_problems(store: Store, n_tokens: np.ndarray | None, n_heads: int) -> list[str]:
    """Raw arrays: presence, shapes, dtypes, offsets that tile the token rows, readable chunks."""
    raw = store.metadata["raw"]
    problems: list[str] = []
    total, n_raw_layers = int(raw["n_tokens"]), len(raw["layers"])
    stored = layout.RAW_DTYPES.get(raw["dtype"], (None, None))[0]
    wanted = {layout.TOKEN_START: (np.dtype("int64"), (store.n_samples,)),
              layout.RAW_TOKEN_ID: (np.dtype("int32"), (total,))}
    for site, dim in zip(raw["sites"], raw["dims"], strict=False):
        wanted[layout.raw_path(site)] = (stored, (total, n_raw_layers, n_heads, dim))
    present = set(store.backend.array_names())
    for name, (dtype, shape) in wanted.items():
        if name not in present:
            problems.append(f"{name}: missing")
            continue
        info = store.backend.info(name)
        if info.shape != shape:
            problems.append(f"{name}: shape {info.shape}, expected {shape}")
        if info.dtype != dtype:
            problems.append(f"{name}: dtype {info.dtype}, expected {dtype}")
    if problems or n_tokens is None:
        return problems
    starts = _read(store, layout.TOKEN_START, slice(None), problems)
    if starts is not None:
        expected = np.concatenate(([0], np.cumsum(n_tokens.astype(np.int64))[:-1]))
        if not np.array_equal(starts, expected):
            problems.append(f"{layout.TOKEN_START}: offsets do not tile the token rows")
    chunk = int(raw["token_chunk"])
    for name in wanted:
        if name == layout.TOKEN_START:
            continue
        for start in range(0, total, chunk):
            _read(store, name, slice(start, min(start + chunk, total)), problems)
    return problems


def _expected_shape(name: str, n: int, n_layers: int, n_heads: int) -> tuple[int, ...]:
    if name == layout.LAYER:
        return (n_layers,)
    if name == layout.HEAD:
        return (n_heads,)
    if name in (layout.TEXT_HASH, layout.TOKEN_HASH):
        return (n, layout.HASH_BYTES)
    if name.startswith("norms/"):
        return (n, n_layers, n_heads)
    return (n,)


def _read(store: Store, name: str, rows: slice, problems: list[str]) -> np.ndarray | None:
    """Read rows, turning a corrupted or truncated chunk into a finding."""
    try:
        return store.backend.read(name, rows)
    except Exception as exc:  # noqa: BLE001 - checksum and decode errors differ by backend
        problems.append(
            f"{name}: rows {rows.start}-{(rows.stop or 0) - 1} unreadable "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )
        return None
