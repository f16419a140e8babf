"""Store format 1 without a model: schema, validate, inspect, archive, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from store_factory import write_store

from headact.cli import main
from headact.errors import StoreError
from headact.store import open_store
from headact.store.validate import validate_store


def make_store(path, n: int = 9, block: int = 4, seed: int = 0):
    """A complete store of n samples x 2 layers x 3 heads with random positive statistics."""
    rng = np.random.default_rng(seed)
    stats = {(site, stat): rng.uniform(0.5, 2.0, (n, 2, 3)).astype(np.float32)
             for site in ("z", "out") for stat in ("sum", "sumsq", "first", "last", "max")}
    return write_store(path, stats, n_tokens=np.arange(1, n + 1), block_size=block,
                       name="tiny-model")


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("ending", [".zarr", ".h5"])
def test_fresh_store_is_sound(tmp_path, ending):
    path = make_store(tmp_path / f"s{ending}")
    assert validate_store(path) == []
    result = cli("validate", str(path))
    assert result.exit_code == 0 and "sound" in result.output


def test_validate_catches_a_corrupted_chunk(tmp_path):
    path = make_store(tmp_path / "c.zarr")
    chunk = next(p for p in (path / "norms" / "z" / "sum").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert "norms/z/sum" in result.output and "unreadable" in result.output


def test_validate_catches_a_truncated_hdf5_chunk(tmp_path):
    import h5py

    path = make_store(tmp_path / "c.h5")
    with h5py.File(path, "r") as f:
        offset = f["norms/out/max"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as handle:
        handle.seek(offset + 4)
        handle.write(b"\x00" * 16)
    problems = validate_store(path)
    assert any("norms/out/max" in p and "unreadable" in p for p in problems)


def test_validate_catches_a_missing_done_flag(tmp_path):
    path = make_store(tmp_path / "d.zarr")
    zarr.open_group(str(path), mode="a")["samples/done"][3] = 0
    problems = validate_store(path)
    assert any("not done" in p for p in problems)


def test_validate_catches_done_rows_holding_nan(tmp_path):
    path = make_store(tmp_path / "n.zarr")
    zarr.open_group(str(path), mode="a")["norms/z/max"][2] = np.nan
    problems = validate_store(path)
    assert any("norms/z/max" in p and "only NaN" in p for p in problems)


def test_validate_catches_a_wrong_dtype(tmp_path):
    path = make_store(tmp_path / "w.zarr")
    group = zarr.open_group(str(path), mode="a")
    values = group["norms/out/first"][:]
    del group["norms/out/first"]
    group.create_array("norms/out/first", data=values.astype("float64"),
                       dimension_names=("sample", "layer", "head"))
    problems = validate_store(path)
    assert any("norms/out/first: dtype float64" in p for p in problems)


def test_validate_catches_a_missing_array_and_off_schema_metadata(tmp_path):
    path = make_store(tmp_path / "m.zarr")
    group = zarr.open_group(str(path), mode="a")
    del group["samples/token_hash"]
    meta = dict(group.attrs["headact"])
    meta["status"] = "finished"
    group.attrs["headact"] = meta
    problems = validate_store(path)
    assert any("samples/token_hash: missing" in p for p in problems)
    assert any(p.startswith("metadata status") for p in problems)


def test_reader_refuses_future_versions_and_foreign_stores(tmp_path):
    path = make_store(tmp_path / "f.zarr")
    group = zarr.open_group(str(path), mode="a")
    meta = dict(group.attrs["headact"])
    meta["format_version"] = "2.0"
    group.attrs["headact"] = meta
    with pytest.raises(StoreError, match="upgrade headact"):
        open_store(path)
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a headact store"):
        open_store(tmp_path / "other.zarr")
    with pytest.raises(StoreError, match="must end in"):
        open_store(tmp_path / "x.parquet")


def test_metadata_is_strict_json(tmp_path):
    path = make_store(tmp_path / "j.zarr")
    text = (path / "zarr.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


@pytest.mark.parametrize("ending", [".zarr", ".h5"])
def test_archive_is_read_in_place(tmp_path, ending):
    path = make_store(tmp_path / f"a{ending}")
    result = cli("archive", str(path))
    assert result.exit_code == 0, result.output
    archive = tmp_path / "a.zarr.zip"
    with zipfile.ZipFile(archive) as zf:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    assert validate_store(archive) == []
    with open_store(path) as original, open_store(archive) as packed:
        for site in ("z", "out"):
            for stat in ("sum", "max"):
                np.testing.assert_array_equal(original.read_norm(site, stat),
                                              packed.read_norm(site, stat))
        assert packed.metadata["model"] == original.metadata["model"]
    again = cli("archive", str(path))
    assert again.exit_code == 1 and "already exists" in again.output


def test_inspect_summarizes(tmp_path):
    path = make_store(tmp_path / "i.zarr")
    result = cli("inspect", str(path))
    assert result.exit_code == 0
    for word in ("complete: 9 / 9 samples done", "2 layers x 3 heads", "tiny-model", "on disk",
                 "transformers"):
        assert word in result.output


def test_store_and_analyze_never_import_torch():
    code = ("import sys, headact.store, headact.analyze, headact.cli; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "print(*bad); sys.exit(1 if bad else 0)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
