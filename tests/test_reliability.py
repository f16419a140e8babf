"""Nothing lost: killed, interrupted and failing dumps resume to an uninterrupted dump."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from headact.cli import main
from headact.store import STATS, open_store
from headact.store.validate import validate_store

pytestmark = pytest.mark.dump

ARRAYS = ["layer", "head", "samples/index", "samples/text_hash", "samples/token_hash",
          "samples/n_tokens", "samples/truncated", "samples/done"] + [
    f"norms/{site}/{stat}" for site in ("z", "out") for stat in STATS]


@pytest.fixture(scope="module")
def many_texts(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "while", "heads", "attend", "to", "tokens",
             "and", "models", "learn"]
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 25))) for _ in range(30)]
    path = tmp_path_factory.mktemp("rel") / "texts.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts))
    return path


def dump_args(model, data, out, *extra):
    return ["dump", "-q", "--model", str(model), "--data", str(data), "--out", str(out),
            "--batch-size", "3", "--block-size", "4", *extra]


def run_cli_process(args, signal_at=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if signal_at:
        env["HEADACT_TEST_SIGNAL"] = signal_at
    return subprocess.run([sys.executable, "-m", "headact", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def arrays(path):
    with open_store(path) as store:
        return {name: store.backend.read(name) for name in ARRAYS}, store.metadata


@pytest.fixture(scope="module")
def reference_stores(model_factory, many_texts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    out = {}
    for ending in (".zarr", ".h5"):
        path = folder / f"ref{ending}"
        result = CliRunner().invoke(main, dump_args(model_factory("llama"), many_texts, path))
        assert result.exit_code == 0, result.output
        out[ending] = arrays(path)
    return out


@pytest.mark.parametrize("ending", [".zarr", ".h5"])
@pytest.mark.parametrize("point", ["after-block:1", "during-block:3"])
def test_sigkill_then_resume_equals_an_uninterrupted_dump(
        ending, point, model_factory, many_texts, reference_stores, tmp_path):
    model = model_factory("llama")
    out = tmp_path / f"killed{ending}"
    killed = run_cli_process(dump_args(model, many_texts, out), signal_at=f"KILL@{point}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with open_store(out) as store:
        assert store.status == "in_progress"
        done = store.done()
        assert 0 < done.sum() < store.n_samples  # some blocks committed, not all
    resumed = run_cli_process(dump_args(model, many_texts, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    got, meta = arrays(out)
    expected, expected_meta = reference_stores[ending]
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert meta["status"] == "complete" and meta["model"] == expected_meta["model"]
    assert validate_store(out) == []


def test_ctrl_c_leaves_a_resumable_store_and_says_how(model_factory, many_texts,
                                                     reference_stores, tmp_path):
    model = model_factory("llama")
    out = tmp_path / "int.zarr"
    stopped = run_cli_process(dump_args(model, many_texts, out), signal_at="INT@after-block:2")
    assert stopped.returncode == 130, stopped.stderr
    assert "--resume" in stopped.stderr and "Traceback" not in stopped.stderr
    assert validate_store(out) == []  # in progress, but sound
    resumed = run_cli_process(dump_args(model, many_texts, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    got, _ = arrays(out)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], reference_stores[".zarr"][0][name])


def test_resume_refuses_other_settings_naming_each(model_factory, many_texts, tmp_path):
    model = model_factory("llama")
    out = tmp_path / "done.zarr"
    assert CliRunner().invoke(main, dump_args(model, many_texts, out)).exit_code == 0
    before = (out / "zarr.json").read_bytes()
    other = model_factory("mistral")
    result = CliRunner().invoke(main, dump_args(other, many_texts, out, "--resume",
                                                "--max-length", "8", "--heads", "0-1"))
    assert result.exit_code == 1
    for words in ("model weights (fingerprint)", "--max-length", "--heads"):
        assert words in result.output
    assert (out / "zarr.json").read_bytes() == before


def test_a_full_disk_is_a_clear_error_and_committed_blocks_survive(
        model_factory, many_texts, tmp_path, monkeypatch):
    import errno

    from headact.store import writer as writer_module

    original = writer_module.StoreWriter.write_block
    calls = {"n": 0}

    def write_block(self, block, norms, raw=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, block, norms, raw)

    monkeypatch.setattr(writer_module.StoreWriter, "write_block", write_block)
    out = tmp_path / "full.zarr"
    result = CliRunner().invoke(main, dump_args(model_factory("llama"), many_texts, out))
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "--resume" in result.output
    with open_store(out) as store:
        assert store.done().sum() == 8 and store.status == "in_progress"
    assert validate_store(out) == []
    monkeypatch.setattr(writer_module.StoreWriter, "write_block", original)
    again = CliRunner().invoke(main, dump_args(model_factory("llama"), many_texts, out,
                                               "--resume"))
    assert again.exit_code == 0, again.output
    assert validate_store(out) == []


def test_missing_output_directory_is_refused(model_factory, many_texts, tmp_path):
    result = CliRunner().invoke(main, dump_args(model_factory("llama"), many_texts,
                                                tmp_path / "gone" / "x.zarr"))
    assert result.exit_code == 1 and "output directory does not exist" in result.output


def test_float16_overflow_is_counted_and_reported(tmp_path, many_texts):
    import torch
    from tiny_models import build_model
    from transformers import AutoModelForCausalLM

    folder = build_model("llama", tmp_path / "hot")
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.model.layers[1].self_attn.v_proj.weight.mul_(1e5)
    model.save_pretrained(folder)
    out = tmp_path / "hot.zarr"
    result = CliRunner().invoke(main, dump_args(folder, many_texts, out, "--dtype", "float16"))
    assert result.exit_code == 0, result.output
    assert "not finite" in result.output
    with open_store(out) as store:
        counted = store.metadata["nonfinite"]
        values = store.read_norm("z", "sumsq")
        assert counted["z"] == int((~np.isfinite(values)).sum()) > 0
        assert np.isfinite(store.read_norm("z", "sum")[:, 0]).all()  # layer 0 is fine
    assert validate_store(out) == []
