"""The zarr v3, HDF5 and zipped-zarr backends behind one small array interface."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from headact.errors import StoreError, StoreExistsError
from headact.store.layout import HDF5_METADATA_DATASET, ROOT_ATTRIBUTE

HDF5_ENDINGS = (".h5", ".hdf5")
# Attributes above this size go to a dataset (HDF5 object headers stop near 64 KiB).
HDF5_ATTRIBUTE_LIMIT = 60_000


@dataclass(frozen=True)
class ArrayInfo:
    """What a backend knows about one stored array."""

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...]
    dims: tuple[str | None, ...]
    fill_value: Any
    codecs: tuple[str, ...]


def backend_kind(path: str | os.PathLike) -> str:
    """`zarr`, `hdf5` or `zarr-zip`, from the path's ending."""
    name = str(path).rstrip("/").lower()
    if name.endswith(".zarr.zip"):
        return "zarr-zip"
    if name.endswith(".zarr"):
        return "zarr"
    if name.endswith(HDF5_ENDINGS):
        return "hdf5"
    raise StoreError(
        f"{path}: a store path must end in .zarr, .h5, .hdf5 or .zarr.zip; "
        "rename it or pick one of those endings."
    )


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities by None, so the metadata stays valid JSON for any reader."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def store_size_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of a store, whether a directory or a single file."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


class ZarrBackend:
    """A zarr v3 directory store (read/write) or a zipped one (read only)."""

    kind = "zarr"

    def __init__(self, path: str | os.PathLike, mode: str) -> None:
        self.path = Path(path)
        self.mode = mode
        try:
            if str(path).lower().endswith(".zarr.zip"):
                if mode != "r":
                    raise StoreError(f"{path}: a .zarr.zip archive is read-only; write a .zarr.")
                if not zipfile.is_zipfile(path):
                    raise StoreError(f"{path}: not a zip archive; make one with `headact archive`.")
                self.kind = "zarr-zip"
                store = zarr.storage.ZipStore(str(path), mode="r")
                self.group = zarr.open_group(store=store, mode="r", use_consolidated=False)
            else:
                # The array metadata itself is the truth; a consolidated copy can be stale.
                self.group = zarr.open_group(
                    str(path), mode=mode, use_consolidated=False if mode != "w-" else None
                )
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            raise StoreError(f"{path}: no zarr store there; check the path.") from exc
        except FileExistsError as exc:  # pragma: no cover - mode "w-" races
            raise StoreExistsError(f"{path} already exists; pass --overwrite.") from exc

    def create_array(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        chunks: tuple[int, ...],
        fill_value: Any,
        dims: tuple[str, ...],
        compress: bool = True,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.group.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill_value,
            # Raw activations barely compress; a checksum alone keeps them fast and safe.
            compressors=[ZstdCodec(level=3), Crc32cCodec()] if compress else [Crc32cCodec()],
            dimension_names=dims,
            attributes=attributes or {},
        )

    def write(self, name: str, selection: Any, data: np.ndarray) -> None:
        self.group[name][selection] = data

    def read(self, name: str, selection: Any = slice(None)) -> np.ndarray:
        return np.asarray(self.group[name][selection])

    def attributes(self, name: str) -> dict[str, Any]:
        return dict(self.group[name].attrs)

    def has(self, name: str) -> bool:
        try:
            node = self.group[name]
        except KeyError:
            return False
        return isinstance(node, zarr.Array)

    def info(self, name: str) -> ArrayInfo:
        arr = self.group[name]
        codecs = tuple(type(c).__name__ for c in arr.compressors)
        return ArrayInfo(
            shape=tuple(arr.shape),
            dtype=np.dtype(arr.dtype),
            chunks=tuple(arr.chunks),
            dims=tuple(arr.metadata.dimension_names or (None,) * arr.ndim),
            fill_value=arr.fill_value,
            codecs=codecs,
        )

    def array_names(self) -> list[str]:
        members = self.group.members(max_depth=None)
        return sorted(name for name, node in members if isinstance(node, zarr.Array))

    def get_metadata(self) -> dict[str, Any] | None:
        value = self.group.attrs.get(ROOT_ATTRIBUTE)
        return dict(value) if isinstance(value, dict) else None

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self.group.attrs[ROOT_ATTRIBUTE] = json_safe(metadata)

    def finalize(self) -> None:
        # Consolidate once, at the end: a consolidated view goes stale after any change.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(self.path))

    def close(self) -> None:
        store = getattr(self.group, "store", None)
        if self.kind == "zarr-zip" and store is not None:
            store.close()



class Hdf5Backend:
    """An HDF5 file written by one process: gzip + shuffle, readable by old HDF5 tools."""

    kind = "hdf5"

    def __init__(self, path: str | os.PathLike, mode: str) -> None:
        self.path = Path(path)
        self.mode = mode
        h5mode = {"w-": "w-", "a": "r+", "r": "r"}[mode]
        try:
            self.file = h5py.File(path, h5mode, libver=("earliest", "v110"))
        except FileNotFoundError as exc:
            raise StoreError(f"{path}: no HDF5 store there; check the path.") from exc
        except FileExistsError as exc:
            raise StoreExistsError(f"{path} already exists; pass --overwrite.") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot open as HDF5 ({exc}).") from exc

    def create_array(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        chunks: tuple[int, ...],
        fill_value: Any,
        dims: tuple[str, ...],
        compress: bool = True,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        ds = self.file.create_dataset(
            name,
            shape=shape,
            dtype=dtype,
            chunks=_hdf5_chunks(chunks, shape),
            fillvalue=fill_value,
            compression="gzip" if compress else None,
            compression_opts=4 if compress else None,
            shuffle=compress,
            fletcher32=True,
        )
        for i, dim in enumerate(dims):
            ds.dims[i].label = dim
        for key, value in (attributes or {}).items():
            ds.attrs[key] = value

    def write(self, name: str, selection: Any, data: np.ndarray) -> None:
        self.file[name][selection] = data

    def read(self, name: str, selection: Any = slice(None)) -> np.ndarray:
        ds = self.file[name]
        if ds.shape and 0 in ds.shape:
            return np.empty(ds.shape, dtype=ds.dtype)
        return np.asarray(ds[selection])

    def attributes(self, name: str) -> dict[str, Any]:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.file[name].attrs.items()
                if not k.startswith(("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"))}

    def has(self, name: str) -> bool:
        return isinstance(self.file.get(name), h5py.Dataset)

    def info(self, name: str) -> ArrayInfo:
        ds = self.file[name]
        codecs = tuple(c for c in (ds.compression, "shuffle" if ds.shuffle else None,
                                   "fletcher32" if ds.fletcher32 else None) if c)
        return ArrayInfo(
            shape=tuple(ds.shape),
            dtype=np.dtype(ds.dtype),
            chunks=tuple(ds.chunks or ds.shape),
            dims=tuple(ds.dims[i].label or None for i in range(ds.ndim)),
            fill_value=ds.fillvalue,
            codecs=codecs,
        )

    def array_names(self) -> list[str]:
        names: list[str] = []

        def visit(name: str, node: Any) -> None:
            if isinstance(node, h5py.Dataset) and name != HDF5_METADATA_DATASET:
                names.append(name)

        self.file.visititems(visit)
        return sorted(names)

    def get_metadata(self) -> dict[str, Any] | None:
        raw = self.file.attrs.get(ROOT_ATTRIBUTE)
        if raw is None and HDF5_METADATA_DATASET in self.file:
            raw = self.file[HDF5_METADATA_DATASET][()]
        if raw is None:
            return None
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        try:
            value = json.loads(str(raw))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: the `headact` attribute is not valid JSON.") from exc
        return value if isinstance(value, dict) else None

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        text = json.dumps(json_safe(metadata), allow_nan=False)
        if len(text.encode("utf-8")) <= HDF5_ATTRIBUTE_LIMIT:
            self.file.attrs[ROOT_ATTRIBUTE] = text
            if HDF5_METADATA_DATASET in self.file:
                del self.file[HDF5_METADATA_DATASET]
        else:
            if ROOT_ATTRIBUTE in self.file.attrs:
                del self.file.attrs[ROOT_ATTRIBUTE]
            if HDF5_METADATA_DATASET in self.file:
                del self.file[HDF5_METADATA_DATASET]
            self.file.create_dataset(HDF5_METADATA_DATASET, data=text,
                                     dtype=h5py.string_dtype("utf-8"))
        self.file.flush()

    def flush(self) -> None:
        self.file.flush()

    def finalize(self) -> None:
        self.file.flush()

    def close(self) -> None:
        # Closing a file whose writer died can fail; there is nothing left to save then.
        with contextlib.suppress(Exception):
            self.file.close()


def _hdf5_chunks(chunks: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """HDF5 chunks may not exceed the shape; an empty array needs none."""
    if not all(shape):
        return None
    return tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))


def open_backend(path: str | os.PathLike, mode: str) -> ZarrBackend | Hdf5Backend:
    """Open the backend the path's ending names, in mode `r`, `a` or `w-`."""
    kind = backend_kind(path)
    if mode != "r" and kind == "zarr-zip":
        raise StoreError(f"{path}: a .zarr.zip archive is read-only; write to a .zarr directory.")
    if mode in ("r", "a") and not Path(path).exists():
        raise StoreError(f"{path}: no such store; check the path.")
    if kind == "hdf5":
        return Hdf5Backend(path, mode)
    return ZarrBackend(path, mode)
