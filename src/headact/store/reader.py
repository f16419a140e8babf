"""Open a format-1 store for reading: metadata, coordinates, sample table, norm blocks."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headact.errors import IncompleteStoreError, StoreError
from headact.store import layout
from headact.store.backends import open_backend
from headact.store.samples import SampleTable
from headact.store.schemas import STORE_SCHEMA, schema_errors


def check_format(path: str | os.PathLike, metadata: dict[str, Any] | None) -> None:
    """Refuse metadata of another format or of a major version this headact cannot read."""
    if metadata is None:
        raise StoreError(
            f"{path}: not a headact store (no `headact` root attribute); pass a store written "
            "by `headact dump`."
        )
    if metadata.get("format") != layout.FORMAT:
        raise StoreError(f"{path}: format {metadata.get('format')!r} is not {layout.FORMAT!r}.")
    version = str(metadata.get("format_version", ""))
    major = version.split(".")[0]
    if not major.isdigit() or int(major) != layout.FORMAT_MAJOR:
        raise StoreError(
            f"{path}: store format version {version!r} is not readable by this headact (reads "
            f"{layout.FORMAT_MAJOR}.x); upgrade headact."
        )


@dataclass(frozen=True)
class NormBlock:
    """The statistics of consecutive sample rows for one site."""

    rows: slice
    stats: dict[str, np.ndarray]  # stat name -> float32 [n, layer, head]


class Store:
    """A format-1 store opened read-only (or for resuming, via `mode="a"`)."""

    def __init__(self, path: str | os.PathLike, *, check: bool = True, mode: str = "r") -> None:
        self.path = Path(path)
        self.backend = open_backend(path, mode)
        try:
            self.metadata = self.backend.get_metadata()
            check_format(path, self.metadata)
            if check:
                problems = schema_errors(self.metadata, STORE_SCHEMA)
                if problems:
                    raise StoreError(
                        f"{path}: metadata is off the schema ({problems[0]}); run "
                        "`headact validate` for the full list."
                    )
        except BaseException:
            self.backend.close()
            raise

    # Coordinates and layout ------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def status(self) -> str:
        return str(self.metadata.get("status"))

    @property
    def is_complete(self) -> bool:
        return self.status == layout.STATUS_COMPLETE

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.metadata["layout"]["sites"])

    @property
    def n_samples(self) -> int:
        return int(self.metadata["layout"]["n_samples"])

    @property
    def block_size(self) -> int:
        return int(self.metadata["layout"]["block_size"])

    @functools.cached_property
    def layers(self) -> np.ndarray:
        return self.backend.read(layout.LAYER).astype(np.int64)

    @functools.cached_property
    def heads(self) -> np.ndarray:
        return self.backend.read(layout.HEAD).astype(np.int64)

    @property
    def model_name(self) -> str:
        return str(self.metadata.get("model", {}).get("name", self.path.name))

    def done(self) -> np.ndarray:
        """Boolean [sample]: rows whose every array is committed."""
        if self.n_samples == 0:
            return np.zeros(0, dtype=bool)
        return self.backend.read(layout.DONE) == 1

    def samples(self) -> SampleTable:
        """The sample table (all rows, done or not)."""
        return SampleTable(
            index=self.backend.read(layout.SAMPLE_INDEX),
            text_hash=self.backend.read(layout.TEXT_HASH),
            token_hash=self.backend.read(layout.TOKEN_HASH),
            n_tokens=self.backend.read(layout.N_TOKENS),
            truncated=self.backend.read(layout.TRUNCATED),
        )

    def require_complete(self, allow_partial: bool = False) -> None:
        """Refuse an in-progress store unless partial analysis was asked for."""
        if self.is_complete or allow_partial:
            return
        done = int(self.done().sum())
        raise IncompleteStoreError(
            f"{self.path} is in progress ({done} of {self.n_samples} samples done); finish it "
            "with `headact dump ... --resume`, or pass --allow-partial to use the done rows only."
        )

    # Norms -----------------------------------------------------------------------------
    def _check_site(self, site: str) -> None:
        if site not in self.sites:
            raise StoreError(
                f"{self.path} has no site {site!r} (it holds {', '.join(self.sites)}); pick one "
                "of those."
            )

    def read_norm(self, site: str, stat: str, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """float32 [sample, layer, head] of one statistic, for the given rows."""
        self._check_site(site)
        if stat not in layout.STATS:
            raise StoreError(f"unknown statistic {stat!r}; one of {', '.join(layout.STATS)}.")
        return self.backend.read(layout.norm_path(site, stat), rows)

    def iter_norm_blocks(
        self, site: str, stats: tuple[str, ...] = layout.STATS, rows_per_block: int | None = None
    ) -> Iterator[NormBlock]:
        """The chosen statistics chunk by chunk, so memory stays bounded for any store size."""
        self._check_site(site)
        step = rows_per_block or self.block_size
        step = max(self.block_size, (step // self.block_size) * self.block_size)
        for start in range(0, self.n_samples, step):
            rows = slice(start, min(start + step, self.n_samples))
            yield NormBlock(rows, {stat: self.read_norm(site, stat, rows) for stat in stats})

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: str | os.PathLike, *, check: bool = True) -> Store:
    """Open a store read-only, refusing unknown formats and (with `check`) off-schema metadata."""
    return Store(path, check=check)
