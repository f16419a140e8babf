"""Hostile input to `headact dump`: one or two clear lines, non-zero exit, nothing touched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from headact.cli import main

pytestmark = pytest.mark.dump


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def run_dump(model, data, out, *extra):
    return CliRunner().invoke(main, ["dump", "-q", "--model", str(model), "--data", str(data),
                                     "--out", str(out), *extra])


def assert_clean_refusal(result, message, folder, before):
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2, result.output
    assert snapshot(folder) == before


DATA_CASES = {
    "missing": (None, "no such data file"),
    "directory": ("DIR", "is a directory"),
    "empty": (b"", "is empty"),
    "not-json": (b"this is not json at all\n", "not valid JSON"),
    "wrong-shape": (json.dumps({"texts": ["a"]}).encode(), "none of the fields"),
    "number-records": (json.dumps([1, 2]).encode(), "records must be strings"),
    "no-text-field": (json.dumps([{"body": "x"}]).encode(), "pass --field NAME"),
    "non-string-text": (json.dumps([{"text": ["a"]}]).encode(), "not a string"),
    "empty-string": (json.dumps(["fine", ""]).encode(), "text is empty"),
    "invalid-utf8": (b'["caf\xe9"]', "not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_files(case, model_factory, tmp_path):
    content, message = DATA_CASES[case]
    data = tmp_path / "data.json"
    if content == "DIR":
        data.mkdir()
    elif content is not None:
        data.write_bytes(content)
    existing = tmp_path / "existing.zarr"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = run_dump(model_factory("gpt2"), data, tmp_path / "new.zarr")
    assert_clean_refusal(result, message, tmp_path, before)


def test_sample_num_above_record_count_says_so_and_uses_all(model_factory, texts_file, tmp_path):
    result = run_dump(model_factory("gpt2"), texts_file, tmp_path / "all.zarr",
                      "--sample-num", "500")
    assert result.exit_code == 0, result.output
    assert "used all of them" in result.output


@pytest.mark.parametrize("extra, message", [
    (["--layers", "3"], "out of range"),
    (["--heads", "4"], "out of range"),
])
def test_layers_or_heads_out_of_range(extra, message, model_factory, texts_file, tmp_path):
    before = snapshot(tmp_path)
    result = run_dump(model_factory("gpt2"), texts_file, tmp_path / "x.zarr", *extra)
    assert_clean_refusal(result, message, tmp_path, before)


def test_model_path_missing_or_not_a_model(texts_file, tmp_path):
    (tmp_path / "folder").mkdir()
    before = snapshot(tmp_path)
    assert_clean_refusal(run_dump(tmp_path / "nothing", texts_file, tmp_path / "x.zarr"),
                         "no such model directory", tmp_path, before)
    assert_clean_refusal(run_dump(tmp_path / "folder", texts_file, tmp_path / "x.zarr"),
                         "not a Hugging Face model directory", tmp_path, before)


def test_unknown_architecture(texts_file, tmp_path):
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    before = snapshot(tmp_path)
    assert_clean_refusal(run_dump(folder, texts_file, tmp_path / "x.zarr"),
                         "unsupported or unknown architecture", tmp_path, before)


def test_model_without_attention_heads_is_refused(texts_file, tmp_path):
    from tiny_models import build_tokenizer
    from transformers import MambaConfig, MambaForCausalLM

    folder = tmp_path / "mamba"
    tok = build_tokenizer(folder)
    MambaForCausalLM(MambaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2,
                                 state_size=4)).save_pretrained(folder)
    before = snapshot(tmp_path)
    assert_clean_refusal(run_dump(folder, texts_file, tmp_path / "m.zarr"),
                         "no number of attention heads", tmp_path, before)


def test_missing_weights_are_refused(model_factory, texts_file, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "broken"
    shutil.copytree(model_factory("llama"), folder)
    weights = load_file(folder / "model.safetensors")
    dropped = {k: v for k, v in weights.items() if "layers.1.self_attn.o_proj" not in k}
    save_file(dropped, folder / "model.safetensors", metadata={"format": "pt"})
    before = snapshot(tmp_path)
    assert_clean_refusal(run_dump(folder, texts_file, tmp_path / "x.zarr"),
                         "weights are missing", tmp_path, before)


def test_existing_out_without_overwrite(model_factory, texts_file, tmp_path):
    out = tmp_path / "there.h5"
    out.write_bytes(b"precious")
    before = snapshot(tmp_path)
    assert_clean_refusal(run_dump(model_factory("gpt2"), texts_file, out), "already exists",
                         tmp_path, before)


def test_a_million_record_file_is_read_in_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    lines = (json.dumps({"text": f"record {i}: a modest sentence of some forty characters"})
             for i in range(1_000_000))
    path.write_text("\n".join(lines) + "\n")
    # Peak resident memory in a fresh process, after imports, while reading.
    code = (
        "import json, resource, sys\n"
        "from headact.dump.data import read_samples\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s = read_samples(sys.argv[1], sample_num=10, seed=0)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'grew_kib': after - before, 'n': s.n_records, 'index': s.index,\n"
        "                  'texts': s.texts}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, check=True)
    report = json.loads(done.stdout)
    assert report["n"] == 1_000_000 and len(report["texts"]) == 10
    assert all(text.startswith(f"record {i}:")
               for i, text in zip(report["index"], report["texts"], strict=True))
    # A million records held as Python objects would take well over 100 MB.
    assert report["grew_kib"] < 20 * 1024, report["grew_kib"]
