"""Pack a finished store into one read-only `.zarr.zip` that every command reads in place."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from headact.errors import StoreError, StoreExistsError
from headact.store import layout
from headact.store.backends import backend_kind, open_backend
from headact.store.reader import Store


def default_archive_path(path: str | os.PathLike) -> Path:
    """pre.zarr -> pre.zarr.zip; pre.h5 -> pre.zarr.zip."""
    p = Path(str(path).rstrip("/"))
    stem = p.name[: -len(p.suffix)] if backend_kind(p) == "hdf5" else p.name[: -len(".zarr")]
    return p.with_name(stem + ".zarr.zip")


def archive_store(
    path: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False
) -> Path:
    """Zip a complete `.zarr` (HDF5 is converted to zarr first) with ZIP_STORED entries."""
    kind = backend_kind(path)
    if kind == "zarr-zip":
        raise StoreError(f"{path} is already an archive; nothing to do.")
    target = Path(out) if out else default_archive_path(path)
    if not str(target).lower().endswith(".zarr.zip"):
        raise StoreError(f"{target}: an archive's name must end in .zarr.zip.")
    if target.exists() and not overwrite:
        raise StoreExistsError(f"{target} already exists; pass --overwrite to replace it.")
    with Store(path) as store:
        if not store.is_complete:
            raise StoreError(
                f"{path} is in progress; finish it with `headact dump ... --resume` before "
                "archiving."
            )
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(path)
        if kind == "hdf5":
            source = Path(tmp) / "converted.zarr"
            copy_store(path, source)
        partial = Path(tmp) / "archive.zarr.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as zf:
            for file in sorted(source.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(source).as_posix())
        # Rename only a complete archive into place, so a failure leaves nothing half-written.
        os.replace(partial, target)
    return target


def copy_store(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy every array, with dims and chunks, and the metadata into a new store."""
    with Store(source) as src:
        dst = open_backend(target, "w-")
        try:
            for name in src.backend.array_names():
                info = src.backend.info(name)
                fill = info.fill_value
                dst.create_array(name, info.shape, info.dtype, info.chunks, fill,
                                 tuple(d or f"dim_{i}" for i, d in enumerate(info.dims)))
                step = info.chunks[0] if info.chunks else max(1, info.shape[0])
                for start in range(0, info.shape[0], step):
                    rows = slice(start, min(start + step, info.shape[0]))
                    dst.write(name, rows, src.backend.read(name, rows))
            dst.set_metadata(src.metadata)
            if src.metadata.get("status") == layout.STATUS_COMPLETE:
                dst.finalize()
        finally:
            dst.close()
