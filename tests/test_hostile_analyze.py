"""Hostile input to `headact analyze`, and pairing of any two sample lists (property-based)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_factory import texts_for, write_store

from headact.analyze import pair_stores
from headact.cli import main
from headact.errors import PairingError
from headact.store import STATS, open_store


def stats(n: int, n_layers: int = 2, n_heads: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {stat: rng.uniform(0.5, 2.0, (n, n_layers, n_heads)).astype(np.float32)
            for stat in STATS}


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def results(tmp_path):
    """An output directory holding an earlier analysis that a refusal must leave alone."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "heads.csv").write_text("layer,head,r\n0,0,1.0\n")
    return out


def refuse(args, message, tmp_path):
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["analyze", *map(str, args)])
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2, result.output
    assert snapshot(tmp_path) == before


def test_a_directory_that_is_not_a_store(tmp_path, results):
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    refuse([plain, "-o", results], "not a headact store", tmp_path)
    folder = tmp_path / "folder"
    folder.mkdir()
    refuse([folder, "-o", results], "must end in .zarr", tmp_path)


def test_a_store_of_a_future_format_version(tmp_path, results):
    path = write_store(tmp_path / "future.zarr", stats(20))
    group = zarr.open_group(str(path), mode="a")
    meta = dict(group.attrs["headact"])
    meta["format_version"] = "2.0"
    group.attrs["headact"] = meta
    refuse([path, "-o", results], "upgrade headact", tmp_path)


def test_stores_of_different_shapes(tmp_path, results):
    pre = write_store(tmp_path / "pre.zarr", stats(20, 2, 3))
    fine = write_store(tmp_path / "fine.h5", stats(20, 2, 4), name="fine-model")
    refuse([pre, fine, "-o", results], "head", tmp_path)


def test_stores_over_different_texts(tmp_path, results):
    pre = write_store(tmp_path / "pre.zarr", stats(20))
    fine = write_store(tmp_path / "fine.zarr", stats(20, seed=1), texts=texts_for(20, start=100),
                       name="fine-model")
    refuse([pre, fine, "-o", results], "--align", tmp_path)


def test_an_in_progress_store(tmp_path, results):
    pre = write_store(tmp_path / "pre.zarr", stats(40), block_size=8, done_blocks=[0, 1])
    refuse([pre, "-o", results], "--resume", tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(pre), "-o", str(tmp_path / "partial"),
                                       "--allow-partial", "--n-boot", "200", "--no-plots"])
    assert result.exit_code == 0, result.output


# Pairing: for any two lists of (data index, text) the pairs are exactly the common samples.
samples = st.lists(st.integers(min_value=0, max_value=12), min_size=2, max_size=10,
                   unique=True)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pre_index=samples, fine_index=samples, shuffle=st.randoms(use_true_random=False))
def test_pairing_any_two_sample_lists(tmp_path_factory, pre_index, fine_index, shuffle):
    folder = tmp_path_factory.mktemp("pairs")
    shuffle.shuffle(fine_index)
    text = {i: f"text of record {i}" for i in range(13)}
    pre = write_store(folder / "pre.zarr", stats(len(pre_index)), index=pre_index,
                      texts=[text[i] for i in pre_index], block_size=4)
    fine = write_store(folder / "fine.zarr", stats(len(fine_index), seed=1), index=fine_index,
                       texts=[text[i] for i in fine_index], block_size=4, name="fine-model")
    common = [i for i in pre_index if i in fine_index]
    with open_store(pre) as p, open_store(fine) as f:
        if pre_index == fine_index:
            pairing = pair_stores(p, f)
            assert pairing.n_samples == len(pre_index)
        else:
            with pytest.raises(PairingError):
                pair_stores(p, f)
        if not common:
            with pytest.raises(PairingError):
                pair_stores(p, f, align=True)
            return
        try:
            pairing = pair_stores(p, f, align=True)
        except PairingError:
            assert len(common) < 2  # too few common samples is refused, never mispaired
            return
        pre_idx, fine_idx = p.samples().index, f.samples().index
        assert list(pre_idx[pairing.pre_rows]) == common  # in the pre store's order
        assert np.array_equal(pre_idx[pairing.pre_rows], fine_idx[pairing.fine_rows])
        assert np.array_equal(p.samples().text_hash[pairing.pre_rows],
                              f.samples().text_hash[pairing.fine_rows])
