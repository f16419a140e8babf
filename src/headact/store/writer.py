"""Create a format-1 store at full size, write it block by block, commit, finalize."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from headact.errors import StoreError, StoreExistsError
from headact.store import layout
from headact.store.backends import backend_kind, open_backend
from headact.store.samples import SampleTable
from headact.store.schemas import STORE_SCHEMA, schema_errors


def utc_now() -> str:
    """The current time as ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RawPlan:
    """Where the raw y_h vectors of every counted token go, fixed before the first forward."""

    sites: tuple[str, ...]
    layers: tuple[int, ...]  # model layer indices, a subset of the dumped layers
    dtype: str  # a key of layout.RAW_DTYPES
    dims: tuple[int, ...]  # vector width per site: head_dim for z, hidden size for out
    token_start: np.ndarray  # int64 [sample]
    n_tokens: int  # token rows in all
    token_chunk: int

    @classmethod
    def build(cls, sites, layers, dtype: str, dims, n_tokens_per_sample: np.ndarray,
              n_heads: int) -> RawPlan:
        """Token offsets from the per-sample counts, and chunks of about 1 MiB."""
        counts = np.asarray(n_tokens_per_sample, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        itemsize = layout.RAW_DTYPES[dtype][0].itemsize
        widest = max(dims)
        chunk = max(64, (1 << 20) // (widest * itemsize))
        total = int(counts.sum())
        return cls(tuple(sites), tuple(layers), dtype, tuple(dims), starts, total,
                   int(max(1, min(chunk, total))))

    def token_rows(self, rows: slice) -> slice:
        """The token rows of a run of consecutive samples."""
        stop = self.token_start[rows.stop] if rows.stop < len(self.token_start) else self.n_tokens
        return slice(int(self.token_start[rows.start]), int(stop))

    def bytes_on_disk(self, n_heads: int) -> int:
        """What the raw arrays take: whole (uncompressed) chunks, token ids and offsets."""
        itemsize = layout.RAW_DTYPES[self.dtype][0].itemsize
        padded = -(-self.n_tokens // self.token_chunk) * self.token_chunk
        vectors = sum(padded * len(self.layers) * n_heads * d * itemsize for d in self.dims)
        return int(vectors + self.n_tokens * 4 + len(self.token_start) * 8)

    def metadata(self) -> dict[str, Any]:
        return {"sites": list(self.sites), "layers": list(self.layers), "dtype": self.dtype,
                "dims": list(self.dims), "n_tokens": self.n_tokens,
                "token_chunk": self.token_chunk}


@dataclass(frozen=True)
class StorePlan:
    """Everything that fixes a store's shape before the first forward pass."""

    n_samples: int
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    sites: tuple[str, ...]
    block_size: int
    raw: RawPlan | None = None

    @property
    def n_blocks(self) -> int:
        return -(-self.n_samples // self.block_size)

    def block_rows(self, block: int) -> slice:
        """The sample rows a block (one chunk along `sample`) owns."""
        start = block * self.block_size
        return slice(start, min(start + self.block_size, self.n_samples))

    def layout_metadata(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "block_size": self.block_size,
            "sites": list(self.sites),
            "stats": list(layout.STATS),
            "layers": list(self.layers),
            "heads": list(self.heads),
        }


def default_block_size(n_layers: int, n_heads: int) -> int:
    """Samples per block: chunks of about 1 MiB per statistic, between 16 and 1024 rows."""
    rows = (1 << 20) // max(1, n_layers * n_heads * 4)
    return int(min(1024, max(16, 1 << max(0, rows.bit_length() - 1))))


class StoreWriter:
    """Writes blocks of per-sample statistics and commits each one through `samples/done`."""

    def __init__(self, path: str | os.PathLike, plan: StorePlan, metadata: dict[str, Any]):
        self.path = Path(path)
        self.plan = plan
        self.metadata = metadata
        self.backend = open_backend(path, "a")

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        plan: StorePlan,
        samples: SampleTable,
        metadata: dict[str, Any],
        *,
        overwrite: bool = False,
        token_ids: list[np.ndarray] | None = None,
    ) -> StoreWriter:
        """Create every array at full size, write the sample table, mark `in_progress`."""
        backend_kind(path)
        if len(samples) != plan.n_samples:
            raise ValueError("sample table and plan disagree on the number of samples")
        full = {
            **metadata,
            "format": layout.FORMAT,
            "format_version": layout.FORMAT_VERSION,
            "status": layout.STATUS_IN_PROGRESS,
            "created_at": metadata.get("created_at") or utc_now(),
            "completed_at": None,
            "layout": plan.layout_metadata(),
        }
        if plan.raw is not None:
            full["raw"] = plan.raw.metadata()
        problems = schema_errors(_plain(full), STORE_SCHEMA)
        if problems:
            raise StoreError("store metadata is off the schema: " + "; ".join(problems))
        target = Path(path)
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise StoreExistsError(
                    f"{path} already exists; pass --overwrite to replace it, or --resume to "
                    "finish it."
                )
            remove_store(target)
        if not target.parent.exists():
            raise StoreError(f"{target.parent}: the output directory does not exist; create it.")
        backend = open_backend(path, "w-")
        try:
            _create_arrays(backend, plan)
            backend.write(layout.LAYER, slice(None), np.asarray(plan.layers, dtype=np.int32))
            backend.write(layout.HEAD, slice(None), np.asarray(plan.heads, dtype=np.int32))
            if plan.n_samples:
                backend.write(layout.SAMPLE_INDEX, slice(None), samples.index)
                backend.write(layout.TEXT_HASH, slice(None), samples.text_hash)
                backend.write(layout.TOKEN_HASH, slice(None), samples.token_hash)
                backend.write(layout.N_TOKENS, slice(None), samples.n_tokens)
                backend.write(layout.TRUNCATED, slice(None), samples.truncated)
            if plan.raw is not None:
                backend.write(layout.TOKEN_START, slice(None), plan.raw.token_start)
                ids = np.concatenate(token_ids or [np.zeros(0)]).astype(np.int32)
                backend.write(layout.RAW_TOKEN_ID, slice(None), ids)
            backend.set_metadata(full)
        finally:
            backend.close()
        return cls(path, plan, full)

    def done_blocks(self) -> np.ndarray:
        """For each block, whether all its `done` rows are set."""
        done = self.backend.read(layout.DONE) if self.plan.n_samples else np.zeros(0, np.uint8)
        return np.array(
            [bool(np.all(done[self.plan.block_rows(b)] == 1)) for b in range(self.plan.n_blocks)],
            dtype=bool,
        )

    def write_block(
        self,
        block: int,
        norms: dict[tuple[str, str], np.ndarray],
        raw: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write one block's statistics (and raw vectors), then commit its done rows."""
        rows = self.plan.block_rows(block)
        n = rows.stop - rows.start
        if self.plan.raw is not None:
            tokens = self.plan.raw.token_rows(rows)
            for site in self.plan.raw.sites:
                self.backend.write(layout.raw_path(site), tokens, (raw or {})[site])
        for site in self.plan.sites:
            for stat in layout.STATS:
                values = norms[(site, stat)]
                if values.shape != (n, len(self.plan.layers), len(self.plan.heads)):
                    raise ValueError(f"block {block} {site}/{stat} has shape {values.shape}")
                self.backend.write(layout.norm_path(site, stat), rows, values.astype(np.float32))
                _fault_point("during-block", block)
        if hasattr(self.backend, "flush"):
            self.backend.flush()
        # The commit: only now do these rows count as written.
        self.backend.write(layout.DONE, rows, np.ones(n, dtype=np.uint8))
        if hasattr(self.backend, "flush"):
            self.backend.flush()
        _fault_point("after-block", block)

    def update_metadata(self, updates: dict[str, Any]) -> None:
        """Merge top-level sections into the root attribute (single-writer moments only)."""
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(self.metadata.get(key), dict):
                self.metadata[key] = {**self.metadata[key], **value}
            else:
                self.metadata[key] = value
        self.backend.set_metadata(self.metadata)

    def count_nonfinite(self) -> dict[str, int]:
        """Cells of (sample, layer, head) per site whose statistics are not all finite."""
        counts = {}
        for site in self.plan.sites:
            total = 0
            for block in range(self.plan.n_blocks):
                rows = self.plan.block_rows(block)
                bad = np.zeros((rows.stop - rows.start, len(self.plan.layers),
                                len(self.plan.heads)), dtype=bool)
                for stat in layout.STATS:
                    bad |= ~np.isfinite(self.backend.read(layout.norm_path(site, stat), rows))
                total += int(bad.sum())
            counts[site] = total
        return counts

    def finalize(self, run_updates: dict[str, Any] | None = None) -> None:
        """Mark the store complete once every block is committed; consolidate metadata."""
        if not bool(np.all(self.done_blocks())):
            missing = int((~self.done_blocks()).sum())
            raise StoreError(f"{self.path}: {missing} blocks are not done; cannot finalize.")
        updates: dict[str, Any] = {
            "status": layout.STATUS_COMPLETE,
            "completed_at": utc_now(),
            "nonfinite": self.count_nonfinite(),
        }
        if run_updates:
            updates["run"] = run_updates
        self.update_metadata(updates)
        self.backend.finalize()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fault_point(stage: str, block: int) -> None:
    """Crash tests set HEADACT_TEST_SIGNAL=NAME@STAGE:BLOCK (e.g. KILL@during-block:2) to send
    the dump that signal at that exact point of writing."""
    wanted = os.environ.get("HEADACT_TEST_SIGNAL")
    if not wanted or "@" not in wanted:
        return
    name, point = wanted.split("@", 1)
    if point == f"{stage}:{block}":
        import signal

        os.kill(os.getpid(), getattr(signal, f"SIG{name}"))


def _create_arrays(backend: Any, plan: StorePlan) -> None:
    n, block = plan.n_samples, plan.block_size
    n_layers, n_heads = len(plan.layers), len(plan.heads)
    backend.create_array(layout.LAYER, (n_layers,), layout.COORD_DTYPE, (n_layers,), -1,
                         ("layer",))
    backend.create_array(layout.HEAD, (n_heads,), layout.COORD_DTYPE, (n_heads,), -1, ("head",))
    for path, (dtype, fill, dims) in layout.SAMPLE_ARRAYS.items():
        shape = (n,) + ((layout.HASH_BYTES,) if len(dims) == 2 else ())
        chunks = (block,) + shape[1:]
        backend.create_array(path, shape, dtype, chunks, fill, dims)
    backend.create_array(layout.DONE, (n,), np.dtype("uint8"), (block,), 0, ("sample",))
    for site in plan.sites:
        for stat in layout.STATS:
            backend.create_array(layout.norm_path(site, stat), (n, n_layers, n_heads),
                                 layout.NORM_DTYPE, (block, n_layers, n_heads), np.nan,
                                 layout.NORM_DIMS)
    raw = plan.raw
    if raw is not None:
        backend.create_array(layout.TOKEN_START, (n,), np.dtype("int64"), (block,), -1,
                             ("sample",))
        backend.create_array(layout.RAW_TOKEN_ID, (raw.n_tokens,), np.dtype("int32"),
                             (raw.token_chunk,), -1, ("token",))
        stored, logical = layout.RAW_DTYPES[raw.dtype]
        for site, dim in zip(raw.sites, raw.dims, strict=True):
            # One chunk per (token run, layer, head): a layer or a head reads alone.
            backend.create_array(
                layout.raw_path(site), (raw.n_tokens, len(raw.layers), n_heads, dim), stored,
                (raw.token_chunk, 1, 1, dim), np.nan if stored.kind == "f" else 0,
                layout.RAW_DIMS, compress=False,
                attributes={"logical_dtype": logical or raw.dtype, "layers": list(raw.layers)},
            )


def _plain(value: Any) -> Any:
    import json

    from headact.store.backends import json_safe

    return json.loads(json.dumps(json_safe(value)))


def remove_store(path: Path) -> None:
    """Delete a store (a directory for zarr, a file for HDF5)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
