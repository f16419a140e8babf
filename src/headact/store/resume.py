"""Reopen an interrupted store: check it matches the new run, rebuild HDF5 from committed blocks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from headact.errors import StoreError
from headact.store import layout
from headact.store.backends import backend_kind, open_backend
from headact.store.reader import Store
from headact.store.samples import SampleTable
from headact.store.writer import RawPlan, StorePlan, StoreWriter, _create_arrays

# (section, key, what it is called in a refusal)
RESUME_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("model", "fingerprint", "model weights (fingerprint)"),
    ("model", "dtype", "model dtype"),
    ("model", "architecture", "model class"),
    ("data", "sha256", "data file (sha256)"),
    ("data", "sample_num", "--sample-num"),
    ("data", "seed", "--seed"),
    ("data", "field", "text field"),
    ("layout", "n_samples", "number of samples"),
    ("layout", "block_size", "--block-size"),
    ("layout", "sites", "--sites"),
    ("layout", "layers", "--layers"),
    ("layout", "heads", "--heads"),
    ("tokenizer", "max_length", "--max-length"),
    ("tokenizer", "files_hash", "tokenizer files"),
    ("hook", "modules", "hooked modules"),
)


def resume_differences(
    recorded: dict[str, Any],
    planned: dict[str, Any],
    recorded_samples: SampleTable,
    planned_samples: SampleTable,
) -> list[str]:
    """Each way the store on disk and the run about to resume it disagree."""
    differences = []
    for section, key, label in RESUME_CHECKS:
        old = (recorded.get(section) or {}).get(key)
        new = (planned.get(section) or {}).get(key)
        if old != new:
            differences.append(f"{label}: store has {_short(old)}, this run has {_short(new)}")
    if recorded.get("raw") != planned.get("raw"):
        differences.append(
            f"raw vectors (--raw*): store has {_short(recorded.get('raw'))}, this run has "
            f"{_short(planned.get('raw'))}"
        )
    if len(recorded_samples) == len(planned_samples):
        if not np.array_equal(recorded_samples.index, planned_samples.index):
            differences.append("sample selection: different records were chosen")
        elif not np.array_equal(recorded_samples.text_hash, planned_samples.text_hash):
            differences.append("sample texts: the texts differ (text_hash)")
        elif not np.array_equal(recorded_samples.token_hash, planned_samples.token_hash):
            differences.append("tokenization: the token ids differ (token_hash)")
    return differences


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:18] + "…" + text[-18:]


def plan_of(store: Store) -> StorePlan:
    """The plan a store was created with, read back from its metadata and offsets."""
    lay = store.metadata["layout"]
    raw_meta = store.metadata.get("raw")
    raw = None
    if raw_meta:
        raw = RawPlan(tuple(raw_meta["sites"]), tuple(raw_meta["layers"]), raw_meta["dtype"],
                      tuple(raw_meta["dims"]), store.backend.read(layout.TOKEN_START),
                      int(raw_meta["n_tokens"]), int(raw_meta["token_chunk"]))
    return StorePlan(int(lay["n_samples"]), tuple(lay["layers"]), tuple(lay["heads"]),
                     tuple(lay["sites"]), int(lay["block_size"]), raw)


def open_for_resume(
    path: str | os.PathLike, planned: dict[str, Any], planned_samples: SampleTable
) -> StoreWriter:
    """A writer on the existing store after checking it matches; refuses with every difference."""
    try:
        store = Store(path)
    except StoreError as exc:
        raise StoreError(f"cannot resume: {exc}") from None
    with store:
        recorded = store.metadata
        differences = resume_differences(recorded, planned, store.samples(), planned_samples)
        plan = plan_of(store)
    if differences:
        raise StoreError(
            f"cannot resume {path}: it was dumped with other settings — "
            + "; ".join(differences)
            + ". Use the same settings, or --overwrite to start again."
        )
    if backend_kind(path) == "hdf5":
        rebuild_hdf5(Path(path), plan)
    return StoreWriter(path, plan, dict(recorded))


def rebuild_hdf5(path: Path, plan: StorePlan) -> None:
    """Copy the committed blocks into a fresh file and put it in place.

    An HDF5 file whose writer was killed may not reopen for writing, and the rows of an
    unfinished block may be torn; only what `samples/done` vouches for is carried over.
    """
    fresh = path.with_name(path.name + ".rebuild")
    if fresh.exists():
        fresh.unlink()
    with Store(path) as old:
        new = open_backend(fresh.with_suffix(fresh.suffix + ".h5"), "w-")
        try:
            _create_arrays(new, plan)
            carried = [layout.LAYER, layout.HEAD, *layout.SAMPLE_ARRAYS]
            if plan.raw is not None:
                carried += [layout.TOKEN_START, layout.RAW_TOKEN_ID]
            for name in carried:
                new.write(name, slice(None), old.backend.read(name))
            done = old.done()
            for block in range(plan.n_blocks):
                rows = plan.block_rows(block)
                if not done[rows].all():
                    continue
                for site in plan.sites:
                    for stat in layout.STATS:
                        name = layout.norm_path(site, stat)
                        new.write(name, rows, old.backend.read(name, rows))
                if plan.raw is not None:
                    tokens = plan.raw.token_rows(rows)
                    for site in plan.raw.sites:
                        name = layout.raw_path(site)
                        new.write(name, tokens, old.backend.read(name, tokens))
                new.write(layout.DONE, rows, np.ones(rows.stop - rows.start, dtype=np.uint8))
            new.set_metadata(old.metadata)
        finally:
            new.close()
    os.replace(fresh.with_suffix(fresh.suffix + ".h5"), path)
