"""Names fixed by store format 1: array paths, dimensions, sites, statistics, dtypes."""

from __future__ import annotations

import numpy as np

FORMAT = "headact-dump"
FORMAT_VERSION = "1.0"
FORMAT_MAJOR = 1
ROOT_ATTRIBUTE = "headact"
# HDF5 attributes stop near 64 KiB; larger metadata goes to this dataset instead.
HDF5_METADATA_DATASET = "_headact_metadata"

SITES: tuple[str, ...] = ("z", "out")
STATS: tuple[str, ...] = ("sum", "sumsq", "first", "last", "max")
HASH_BYTES = 16

STATUS_IN_PROGRESS = "in_progress"
STATUS_COMPLETE = "complete"

LAYER = "layer"
HEAD = "head"
SAMPLE_INDEX = "samples/index"
TEXT_HASH = "samples/text_hash"
TOKEN_HASH = "samples/token_hash"
N_TOKENS = "samples/n_tokens"
TRUNCATED = "samples/truncated"
DONE = "samples/done"

# (dtype, fill value, dimension names) for the sample arrays; the last dimension of the
# hashes is a byte position, named so xarray can open them.
SAMPLE_ARRAYS: dict[str, tuple[np.dtype, object, tuple[str, ...]]] = {
    SAMPLE_INDEX: (np.dtype("int64"), -1, ("sample",)),
    TEXT_HASH: (np.dtype("uint8"), 0, ("sample", "hash_byte")),
    TOKEN_HASH: (np.dtype("uint8"), 0, ("sample", "hash_byte")),
    N_TOKENS: (np.dtype("int32"), -1, ("sample",)),
    TRUNCATED: (np.dtype("uint8"), 255, ("sample",)),
}
NORM_DTYPE = np.dtype("float32")
NORM_DIMS = ("sample", "layer", "head")
COORD_DTYPE = np.dtype("int32")


# Raw y_h (optional): every counted token's head vectors.
TOKEN_START = "samples/token_start"
RAW_TOKEN_ID = "raw/token_id"
RAW_DIMS = ("token", "layer", "head", "dim")
# name -> (stored dtype, logical dtype attribute or None); bfloat16 has no zarr dtype.
RAW_DTYPES: dict[str, tuple[np.dtype, str | None]] = {
    "float16": (np.dtype("float16"), None),
    "bfloat16": (np.dtype("uint16"), "bfloat16"),
    "float32": (np.dtype("float32"), None),
}


def raw_path(site: str) -> str:
    """The array path of the raw vectors at one site."""
    return f"raw/{site}"


def norm_path(site: str, stat: str) -> str:
    """The array path of one norm statistic at one site."""
    return f"norms/{site}/{stat}"


def expected_arrays(
    sites: tuple[str, ...] | list[str],
) -> dict[str, tuple[np.dtype, tuple[str, ...]]]:
    """Every array a format-1 norms store holds for these sites, with its dtype and dims."""
    arrays: dict[str, tuple[np.dtype, tuple[str, ...]]] = {
        LAYER: (COORD_DTYPE, ("layer",)),
        HEAD: (COORD_DTYPE, ("head",)),
        DONE: (np.dtype("uint8"), ("sample",)),
    }
    for path, (dtype, _fill, dims) in SAMPLE_ARRAYS.items():
        arrays[path] = (dtype, dims)
    for site in sites:
        for stat in STATS:
            arrays[norm_path(site, stat)] = (NORM_DTYPE, NORM_DIMS)
    return arrays
