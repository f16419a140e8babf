"""Write one layer and head's raw vectors to .npy or Parquet for other tools."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from headact.errors import StoreError, StoreExistsError
from headact.store.raw import read_head_raw, token_table
from headact.store.reader import Store


def export_head_raw(path: str | os.PathLike, layer: int, head: int, out: str | os.PathLike, *,
                    site: str = "z", overwrite: bool = False) -> Path:
    """`.npy`: float32 [token, dim]; `.parquet`: sample index, position, token id, vector."""
    target = Path(out)
    if target.suffix not in (".npy", ".parquet"):
        raise StoreError(f"{out}: export to a .npy or .parquet file.")
    if target.exists() and not overwrite:
        raise StoreExistsError(f"{out} already exists; pass --overwrite to replace it.")
    with Store(path) as store:
        store.require_complete()
        vectors = read_head_raw(store, layer, head, site)
        if target.suffix == ".npy":
            np.save(target, vectors)
            return target
        rows, positions, token_ids = token_table(store)
        index = store.samples().index
        frame = pl.DataFrame({
            "sample_index": index[rows],
            "position": positions.astype(np.int32),
            "token_id": token_ids,
            "vector": vectors,
        })
        frame.write_parquet(target)
    return target
