"""`headact demo` end to end through the CLI, its reuse of earlier runs, and its fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from headact.cli import main
from headact.store import open_store
from headact.store.validate import validate_store

pytestmark = pytest.mark.dump


def run_demo_cli(*args: str) -> str:
    result = CliRunner().invoke(main, ["demo", "--quick", "-q", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "headact-demo"
    return out, run_demo_cli("--out", str(out))


def test_quick_demo_writes_models_sound_stores_and_the_analysis(quick_demo):
    from headact.demo.pipeline import QUICK

    out, output = quick_demo
    fine = out / "models" / "fine-tuned"
    assert (fine / "config.json").is_file() and (fine / "model.safetensors").is_file()
    assert (fine / "tokenizer.json").is_file() and (fine / "finetune.json").is_file()
    assert (out / "models" / "classifier-head.safetensors").is_file()
    assert (out / "models" / "pre-trained" / "config.json").is_file()
    assert (out / "data" / "eval.jsonl").is_file()
    for name in ("pre-trained.zarr", "fine-tuned.zarr"):
        path = out / "stores" / name
        assert validate_store(path) == []
        with open_store(path) as store:
            assert store.is_complete
            assert store.n_samples == QUICK.eval_samples
            assert store.metadata["data"]["path"].endswith("eval.jsonl")
    assert (out / "analysis" / "summary.json").is_file()
    assert "Answer: " in output
    for shown in ("models/fine-tuned", "stores/pre-trained.zarr", "stores/fine-tuned.zarr"):
        assert shown in output


def test_second_run_reuses_the_model_stores_and_analysis(quick_demo):
    out, _ = quick_demo
    weights = out / "models" / "fine-tuned" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    output = run_demo_cli("--out", str(out))
    assert ("Reused from an earlier run: fine-tuned model, pre-trained.zarr, fine-tuned.zarr, "
            "analysis") in output
    assert weights.stat().st_mtime_ns == before
    assert "Answer: " in output


def test_a_store_of_other_weights_or_texts_is_not_reused(quick_demo):
    from headact.demo.pipeline import QUICK, store_is_current
    from headact.dump.data import file_sha256

    out, _ = quick_demo
    store = out / "stores" / "pre-trained.zarr"
    texts = out / "data" / "eval.jsonl"
    sha = file_sha256(texts)
    n = QUICK.eval_samples
    assert store_is_current(store, out / "models" / "pre-trained", n, sha)
    assert not store_is_current(store, out / "models" / "fine-tuned", n, sha)
    assert not store_is_current(store, out / "models" / "pre-trained", n + 1, sha)
    assert not store_is_current(store, out / "models" / "pre-trained", n, "0" * 64)
    assert not store_is_current(out / "stores" / "missing.zarr", out / "models" / "pre-trained",
                                n, sha)


def test_fresh_removes_only_what_the_demo_made(tmp_path):
    from headact.demo.pipeline import DemoPaths, _fresh

    paths = DemoPaths(tmp_path)
    for folder in (paths.fine_tuned, paths.pre_store, paths.analysis):
        folder.mkdir(parents=True)
    paths.manifest.write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    _fresh(paths)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["models", "notes.txt"]


def test_finetuning_changes_the_weights_and_learns_the_training_set(minilm_dir, tmp_path):
    from safetensors.torch import load_file

    from headact.demo.data import TRAIN_FILE, bundled
    from headact.demo.finetune import FinetuneConfig, accuracy, finetune, load_classifier
    from headact.dump.loading import ModelSpec, load_model

    config = FinetuneConfig(epochs=2, batch_size=16, max_examples=64, seed=0)
    examples = bundled(TRAIN_FILE)[:64]
    untrained, tokenizer = load_classifier(minilm_dir, config.seed)
    before = accuracy(untrained, tokenizer, examples)
    result = finetune(minilm_dir, examples, tmp_path / "tuned", config=config)
    assert result.steps == 8
    assert result.train_accuracy >= 0.75  # chance is 0.5 (the labels are balanced)
    assert result.train_accuracy > before + 0.1
    assert result.last_loss < result.first_loss

    base = load_file(minilm_dir / "model.safetensors")
    tuned = load_file(tmp_path / "tuned" / "model.safetensors")

    def weight(state: dict, name: str):
        return next(v for k, v in state.items() if k.endswith(name))

    for layer in range(6):
        name = f"encoder.layer.{layer}.attention.output.dense.weight"
        assert not weight(base, name).equal(weight(tuned, name)), name
    frozen = "embeddings.word_embeddings.weight"
    assert weight(base, frozen).equal(weight(tuned, frozen))
    record = json.loads((tmp_path / "tuned" / "finetune.json").read_text())
    assert record["config"]["max_examples"] == 64
    # The saved directory loads as a plain Hugging Face model, with every weight present.
    model, _tokenizer, _device = load_model(ModelSpec(str(tmp_path / "tuned"), device="cpu"))
    assert model.config.num_hidden_layers == 6


def test_a_fine_tune_record_of_another_version_is_not_reused(tmp_path):
    from headact.demo.finetune import RECORD_FILE, finished_record

    (tmp_path / "config.json").write_text("{}")
    assert finished_record(tmp_path) is None
    (tmp_path / RECORD_FILE).write_text(json.dumps({"config": {}, "result": {"steps": 3}}))
    assert finished_record(tmp_path) is None
    (tmp_path / RECORD_FILE).write_text("{not json")
    assert finished_record(tmp_path) is None
