"""The original one-shot command: `headact compare` and `python -m activation_extract`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner
from tiny_models import build_model

from headact.analyze import analyze_stores
from headact.cli import main
from headact.cli.compare_cmd import join_list_values
from headact.store import open_store
from headact.store.schemas import schema_errors

pytestmark = pytest.mark.dump

FOUR = ("pre_tuned_activations.json", "fine_tuned_activations.json", "comparison.json",
        "comparison_heatmap.png")


@pytest.fixture(scope="module")
def models(model_factory, tmp_path_factory):
    pre = model_factory("llama")
    fine = build_model("llama", tmp_path_factory.mktemp("llama-fine") / "model", seed=1)
    return str(pre), str(fine)


def check_outputs(out, layers, heads):
    """The four files exist, follow their schemas and hold analyze's numbers on the stores."""
    for name in FOUR:
        assert (out / name).is_file(), name
    assert (out / "comparison_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    docs = {name: json.loads((out / name).read_text()) for name in FOUR[:3]}
    for name in FOUR[:2]:
        assert schema_errors(docs[name], "activations-v1.schema.json") == []
    assert schema_errors(docs["comparison.json"], "comparison-v1.schema.json") == []

    for name, store in (("pre_tuned_activations.json", "pre_tuned.zarr"),
                        ("fine_tuned_activations.json", "fine_tuned.zarr")):
        doc = docs[name]
        assert doc["layers"] == layers and doc["heads"] == heads
        single = analyze_stores(out / store, plots=False, n_boot=doc["settings"]["n_boot"])
        assert np.array_equal(np.array(doc["R_h"]).ravel(), single.estimates.r.value)
        assert [s["R_h"] for s in doc["stats"]] == list(single.estimates.r.value)
        assert [s["ci_low"] for s in doc["stats"]] == list(single.estimates.r.low)
        with open_store(out / store) as opened:
            assert list(opened.layers) == layers and list(opened.heads) == heads

    # comparison.json against the paired analysis written beside it (heads.csv)
    table = pl.read_csv(out / "analysis" / "heads.csv")
    cmp = docs["comparison.json"]
    assert table["layer"].unique().sort().to_list() == layers
    np.testing.assert_allclose(np.array(cmp["differences"]).ravel(), table["diff"].to_numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(np.array(cmp["ratios"]).ravel(), table["ratio"].to_numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(np.array(cmp["R_pre"]).ravel(),
                               np.array(docs["pre_tuned_activations.json"]["R_h"]).ravel(),
                               rtol=1e-12)
    r_pre = np.array(cmp["R_pre"])
    r_fine = np.array(cmp["R_fine"])
    np.testing.assert_allclose(np.array(cmp["differences"]), r_fine - r_pre, rtol=1e-9)
    np.testing.assert_allclose(np.array(cmp["ratios"]), r_fine / r_pre, rtol=1e-9)
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    assert cmp["hypothesis"] == summary["hypothesis"]
    return docs


def test_headact_compare_with_the_original_flags(models, texts_file, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(main, [
        "compare", "--pre_tuned_model", models[0], "--fine_tuned_model", models[1],
        "--data_path", str(texts_file), "--sample_num", "9", "--batch_size", "4",
        "--output_dir", str(out), "--layers", "0", "2", "--heads", "1", "2", "3",
        "--seed", "7", "--n_boot", "500",
    ])
    assert result.exit_code == 0, result.output
    assert f"wrote {', '.join(FOUR)} to {out}" in result.output
    docs = check_outputs(out, [0, 2], [1, 2, 3])
    assert docs["comparison.json"]["num_samples"] == 9
    with open_store(out / "pre_tuned.zarr") as store:
        assert store.metadata["data"]["seed"] == 7
        assert store.metadata["data"]["sample_num"] == 9
        expected = "cuda" if torch.cuda.is_available() else "cpu"  # the original's default
        assert store.metadata["run"]["device"].split(":")[0] == expected


def test_python_m_activation_extract_with_dashed_flags(models, texts_file, tmp_path):
    out = tmp_path / "results"
    completed = subprocess.run([
        sys.executable, "-m", "activation_extract", "--pre-tuned-model", models[0],
        "--fine-tuned-model", models[1], "--data-path", str(texts_file), "--batch-size", "8",
        "--output-dir", str(out), "--layers", "1-2", "--n-boot", "500", "-q",
    ], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"wrote {', '.join(FOUR)} to {out}"
    check_outputs(out, [1, 2], [0, 1, 2, 3])


def test_python_m_activation_extract_help_and_errors(tmp_path, texts_file):
    completed = subprocess.run([sys.executable, "-m", "activation_extract", "--help"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0
    assert completed.stdout.startswith("Usage: python -m activation_extract [OPTIONS]")
    for flag in ("--pre_tuned_model", "--fine_tuned_model", "--data_path", "--sample_num",
                 "--batch_size", "--output_dir", "--layers", "--heads", "--seed"):
        assert flag in completed.stdout
    result = CliRunner().invoke(main, [
        "compare", "--pre_tuned_model", "a", "--fine_tuned_model", "b",
        "--data_path", str(tmp_path / "missing.json"), "--output_dir", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "missing.json: no such data file; check the path." in result.output


def test_space_separated_lists_are_joined():
    assert join_list_values(["--layers", "0", "1", "2", "--heads", "3", "--seed", "1"]) == [
        "--layers", "0,1,2", "--heads", "3", "--seed", "1"]
    assert join_list_values(["--layers", "0-2", "--output_dir", "x"]) == [
        "--layers", "0-2", "--output_dir", "x"]
    assert join_list_values(["--layers=0,1", "--heads"]) == ["--layers=0,1", "--heads"]
