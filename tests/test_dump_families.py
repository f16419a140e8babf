"""Every family in the architecture table dumps through the CLI and matches a reference."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from reference import reference_stats, texts_of
from tiny_models import FAMILIES, HEADS, LAYERS

from headact.cli import main
from headact.store import STATS, open_store
from headact.store.schemas import STORE_SCHEMA, schema_errors
from headact.store.validate import validate_store

pytestmark = pytest.mark.dump


def run_dump(*args: str) -> None:
    result = CliRunner().invoke(main, ["dump", "-q", *args])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_dumps_and_matches_reference(family, model_factory, texts_file, tmp_path):
    model_dir = model_factory(family)
    out = tmp_path / f"{family}.zarr"
    run_dump("--model", str(model_dir), "--data", str(texts_file), "--out", str(out),
             "--batch-size", "4", "--block-size", "4")
    texts = texts_of(texts_file)
    with open_store(out) as store:
        meta = store.metadata
        assert schema_errors(meta, STORE_SCHEMA) == []
        assert store.status == "complete"
        assert store.done().all()
        assert list(store.layers) == list(range(LAYERS))
        assert list(store.heads) == list(range(HEADS))
        assert store.n_samples == len(texts)
        assert meta["hook"]["resolved_by"] == "table"
        assert meta["model"]["num_heads"] == HEADS
        assert meta["model"]["head_dim"] == FAMILIES[family].kwargs.get("head_dim", 32 // HEADS)
        assert list(store.samples().index) == list(range(len(texts)))
        expected = reference_stats(model_dir, texts, FAMILIES[family].projection,
                                   list(range(LAYERS)), list(range(HEADS)))
        for site in ("z", "out"):
            for stat in STATS:
                got = store.read_norm(site, stat)
                assert got.dtype == np.float32
                np.testing.assert_allclose(got, expected[(site, stat)], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{family} {site}/{stat}")
    assert validate_store(out) == []


def test_gqa_and_wide_head_dim_are_covered():
    # The reference test above includes these shapes; keep them in the table.
    assert FAMILIES["llama"].kwargs["num_key_value_heads"] < HEADS
    assert FAMILIES["qwen3"].kwargs["head_dim"] * HEADS != FAMILIES["qwen3"].kwargs["hidden_size"]


def test_plain_zarr_reads_documented_names(model_factory, texts_file, tmp_path):
    out = tmp_path / "plain.zarr"
    run_dump("--model", str(model_factory("gpt2")), "--data", str(texts_file), "--out", str(out))
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["headact"]["format"] == "headact-dump"
    assert group["norms/z/sum"].metadata.dimension_names == ("sample", "layer", "head")
    assert group["samples/done"][:].all()
    assert group["samples/text_hash"].shape == (len(texts_of(texts_file)), 16)
