"""Raw y_h dumps: every counted token's head vectors, compact and readable one head at a time."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from reference import projection_weight, reference_vectors, texts_of
from tiny_models import FAMILIES, HEADS

from headact.cli import main
from headact.store import STATS, open_store
from headact.store.backends import store_size_bytes
from headact.store.raw import iter_sample_raw, norm_stats_from_raw, read_head_raw
from headact.store.validate import validate_store

pytestmark = pytest.mark.dump
FLOAT16 = dict(rtol=2e-3, atol=1e-3)


def dump(*args, expect=0):
    result = CliRunner().invoke(main, ["dump", "-q", *args])
    assert result.exit_code == expect, result.output
    return result


@pytest.mark.parametrize("ending", [".zarr", ".h5"])
def test_raw_vectors_equal_the_captured_head_outputs(ending, model_factory, texts_file,
                                                     tmp_path):
    family = "gpt2"
    model = model_factory(family)
    out = tmp_path / f"raw{ending}"
    result = dump("--model", str(model), "--data", str(texts_file), "--out", str(out),
                  "--raw", "--raw-sites", "z,out", "--raw-layers", "0,2", "--batch-size", "3",
                  "--block-size", "4")
    texts = texts_of(texts_file)
    expected = reference_vectors(model, texts, FAMILIES[family].projection, [0, 2])
    weights = {layer: projection_weight(model, FAMILIES[family].projection, layer)
               for layer in (0, 2)}
    with open_store(out) as store:
        starts = store.backend.read("samples/token_start")
        counts = store.samples().n_tokens
        token_ids = store.backend.read("raw/token_id")
        assert starts.dtype == np.int64
        assert np.array_equal(starts[1:], np.cumsum(counts)[:-1]) and starts[0] == 0
        for (row, z), (_, out_vectors) in zip(iter_sample_raw(store, "z"),
                                              iter_sample_raw(store, "out"), strict=True):
            ref = expected[row]
            assert np.array_equal(token_ids[starts[row]:starts[row] + counts[row]], ref["ids"])
            for k, layer in enumerate((0, 2)):
                captured = ref[layer].reshape(len(ref["ids"]), HEADS, -1)
                np.testing.assert_allclose(z[:, k], captured, **FLOAT16)
                d = captured.shape[-1]
                explicit = np.stack([captured[:, h] @ weights[layer][h * d:(h + 1) * d]
                                     for h in range(HEADS)], axis=1)
                np.testing.assert_allclose(out_vectors[:, k], explicit, rtol=2e-3, atol=2e-3)
        # Norms from the raw vectors agree with the stored norm statistics.
        for site in ("z", "out"):
            recomputed = norm_stats_from_raw(store, site)
            for stat in STATS:
                stored = store.read_norm(site, stat)[:, [0, 2]]
                np.testing.assert_allclose(recomputed[stat], stored, rtol=3e-3, atol=1e-3)
        # One layer and head across samples reads on its own.
        head = read_head_raw(store, 2, 1, "z")
        assert head.shape == (counts.sum(), 32 // HEADS)
    assert validate_store(out) == []
    # The size said before starting is within 5 % of what the raw arrays take on disk.
    said = int(result.output.split("(")[2].split(" bytes")[0].replace(",", ""))
    written = (store_size_bytes(out / "raw") if ending == ".zarr" else None)
    if written is not None:
        assert abs(said - written) / written < 0.05, (said, written)


def test_hdf5_size_estimate_is_close(model_factory, texts_file, tmp_path):
    out = tmp_path / "size.h5"
    base = tmp_path / "base.h5"
    dump("--model", str(model_factory("llama")), "--data", str(texts_file), "--out", str(base))
    result = dump("--model", str(model_factory("llama")), "--data", str(texts_file), "--out",
                  str(out), "--raw", "--raw-sites", "z,out", "--raw-dtype", "float32")
    said = int(result.output.split("(")[2].split(" bytes")[0].replace(",", ""))
    written = out.stat().st_size - base.stat().st_size
    assert abs(said - written) / said < 0.05, (said, written)


def test_bfloat16_bits_round_trip(model_factory, texts_file, tmp_path):
    out = tmp_path / "bf.zarr"
    dump("--model", str(model_factory("qwen3")), "--data", str(texts_file), "--out", str(out),
         "--raw", "--raw-dtype", "bfloat16")
    import zarr

    array = zarr.open_group(str(out), mode="r")["raw/z"]
    assert array.dtype == np.uint16 and array.attrs["logical_dtype"] == "bfloat16"
    assert array.metadata.dimension_names == ("token", "layer", "head", "dim")
    assert array.chunks[1:3] == (1, 1)  # one layer, one head per chunk
    with open_store(out) as store:
        recomputed = norm_stats_from_raw(store, "z")
        np.testing.assert_allclose(recomputed["max"], store.read_norm("z", "max"), rtol=2e-2)


def test_export_raw_to_npy_and_parquet(model_factory, texts_file, tmp_path):
    out = tmp_path / "e.zarr"
    dump("--model", str(model_factory("bert")), "--data", str(texts_file), "--out", str(out),
         "--raw")
    runner = CliRunner()
    npy, parquet = tmp_path / "h.npy", tmp_path / "h.parquet"
    for target in (npy, parquet):
        r = runner.invoke(main, ["export-raw", str(out), "--layer", "1", "--head", "2", "-o",
                                 str(target)])
        assert r.exit_code == 0, r.output
    vectors = np.load(npy)
    frame = pl.read_parquet(parquet)
    with open_store(out) as store:
        np.testing.assert_array_equal(vectors, read_head_raw(store, 1, 2))
        assert frame.height == int(store.samples().n_tokens.sum())
        np.testing.assert_array_equal(np.stack(frame["vector"].to_numpy()), vectors)
        assert frame["token_id"].to_list() == store.backend.read("raw/token_id").tolist()
    plain = tmp_path / "plain.zarr"
    dump("--model", str(model_factory("bert")), "--data", str(texts_file), "--out", str(plain))
    r = runner.invoke(main, ["export-raw", str(plain), "--layer", "0", "--head", "0", "-o",
                             str(tmp_path / "x.npy")])
    assert r.exit_code == 1 and "dump it again with --raw" in r.output


def test_too_large_for_the_disk_is_refused_unless_forced(model_factory, texts_file, tmp_path,
                                                         monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    args = ("--model", str(model_factory("gpt2")), "--data", str(texts_file), "--raw")
    refused = dump(*args, "--out", str(tmp_path / "no.zarr"), expect=1)
    assert "--force" in refused.output and not (tmp_path / "no.zarr").exists()
    dump(*args, "--out", str(tmp_path / "yes.zarr"), "--force")


def test_killed_raw_dump_resumes_to_the_same_store(model_factory, texts_file, tmp_path):
    model = model_factory("llama")
    base = ["dump", "-q", "--model", str(model), "--data", str(texts_file), "--raw",
            "--raw-sites", "z,out", "--batch-size", "2", "--block-size", "2"]
    reference = tmp_path / "ref.zarr"
    assert CliRunner().invoke(main, [*base, "--out", str(reference)]).exit_code == 0
    out = tmp_path / "killed.zarr"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HEADACT_TEST_SIGNAL": "KILL@during-block:2"}
    killed = subprocess.run([sys.executable, "-m", "headact", *base, "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode < 0, killed.stderr
    env.pop("HEADACT_TEST_SIGNAL")
    resumed = subprocess.run([sys.executable, "-m", "headact", *base, "--out", str(out),
                              "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with open_store(out) as got, open_store(reference) as want:
        for name in ("raw/z", "raw/out", "raw/token_id", "samples/token_start", "norms/z/sum"):
            np.testing.assert_array_equal(got.backend.read(name), want.backend.read(name))


def test_analyze_from_raw_recomputes_the_norms(model_factory, texts_file, tmp_path):
    import polars as pl

    out = tmp_path / "fr.zarr"
    dump("--model", str(model_factory("gpt_neox")), "--data", str(texts_file), "--out",
         str(out), "--raw", "--raw-sites", "z,out", "--raw-layers", "1-2",
         "--raw-dtype", "float32")
    runner = CliRunner()
    tables = {}
    for name, extra in (("norms", []), ("raw", ["--from-raw"])):
        result = runner.invoke(main, ["analyze", str(out), "-o", str(tmp_path / name),
                                      "--site", "out", "--n-boot", "200", "--no-plots", *extra])
        assert result.exit_code == 0, result.output
        tables[name] = pl.read_csv(tmp_path / name / "heads.csv")
    from_norms = tables["norms"].filter(pl.col("layer") >= 1)
    assert tables["raw"]["layer"].unique().sort().to_list() == [1, 2]
    np.testing.assert_allclose(tables["raw"]["r"].to_numpy(), from_norms["r"].to_numpy(),
                               rtol=1e-5)
    plain = tmp_path / "plain.zarr"
    dump("--model", str(model_factory("gpt_neox")), "--data", str(texts_file), "--out",
         str(plain))
    refused = runner.invoke(main, ["analyze", str(plain), "-o", str(tmp_path / "x"),
                                   "--from-raw"])
    assert refused.exit_code == 1 and "dump it again with --raw" in refused.output
