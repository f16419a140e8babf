"""The dump command end to end: batching, padding, backends, subsets, truncation, refusals."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from reference import reference_stats, texts_of
from tiny_models import FAMILIES

from headact.cli import main
from headact.store import STATS, open_store

pytestmark = pytest.mark.dump

ARRAYS = ["layer", "head", "samples/index", "samples/text_hash", "samples/token_hash",
          "samples/n_tokens", "samples/truncated", "samples/done"] + [
    f"norms/{site}/{stat}" for site in ("z", "out") for stat in STATS]


def dump(*args: str, expect: int = 0):
    result = CliRunner().invoke(main, ["dump", "-q", *args])
    assert result.exit_code == expect, result.output
    return result


def arrays_of(path) -> dict[str, np.ndarray]:
    with open_store(path) as store:
        return {name: store.backend.read(name) for name in ARRAYS}


def assert_same_arrays(a, b, rtol=0.0):
    for name in ARRAYS:
        if name.startswith("norms/"):
            np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=rtol * 1e-1,
                                       err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_batch_size_does_not_change_the_store(model_factory, texts_file, tmp_path):
    model = str(model_factory("llama"))
    for bs in ("1", "7"):
        dump("--model", model, "--data", str(texts_file), "--out", str(tmp_path / f"b{bs}.zarr"),
             "--batch-size", bs)
    assert_same_arrays(arrays_of(tmp_path / "b1.zarr"), arrays_of(tmp_path / "b7.zarr"),
                       rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama", "bert"])
def test_left_and_right_padding_give_the_same_store(family, model_factory, texts_file, tmp_path,
                                                     ):
    import shutil

    source = model_factory(family)
    stores = {}
    for side in ("left", "right"):
        copy = tmp_path / f"model-{side}"
        shutil.copytree(source, copy)
        config_path = copy / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config["padding_side"] = side
        config_path.write_text(json.dumps(config))
        stores[side] = tmp_path / f"{side}.zarr"
        dump("--model", str(copy), "--data", str(texts_file), "--out", str(stores[side]),
             "--batch-size", "5")
    left, right = arrays_of(stores["left"]), arrays_of(stores["right"])
    assert_same_arrays(left, right, rtol=1e-6)


def test_zarr_and_hdf5_hold_equal_arrays_and_metadata(model_factory, texts_file, tmp_path):
    model = str(model_factory("gpt_neox"))
    dump("--model", model, "--data", str(texts_file), "--out", str(tmp_path / "a.zarr"))
    dump("--model", model, "--data", str(texts_file), "--out", str(tmp_path / "a.h5"))
    assert_same_arrays(arrays_of(tmp_path / "a.zarr"), arrays_of(tmp_path / "a.h5"))
    with open_store(tmp_path / "a.zarr") as z, open_store(tmp_path / "a.h5") as h:
        mz, mh = dict(z.metadata), dict(h.metadata)
    volatile = {"created_at", "completed_at"}
    run_volatile = {"duration_s", "samples_per_s", "tokens_per_s", "command_line"}
    for key in set(mz) | set(mh):
        if key in volatile:
            continue
        if key == "run":
            assert {k: v for k, v in mz[key].items() if k not in run_volatile} == {
                k: v for k, v in mh[key].items() if k not in run_volatile}
        else:
            assert mz[key] == mh[key], key


def test_hdf5_reads_without_headact(model_factory, texts_file, tmp_path):
    out = tmp_path / "plain.h5"
    dump("--model", str(model_factory("bert")), "--data", str(texts_file), "--out", str(out))
    with h5py.File(out, "r") as f:
        meta = json.loads(f.attrs["headact"])
        assert meta["status"] == "complete"
        ds = f["norms/out/max"]
        assert [ds.dims[i].label for i in range(3)] == ["sample", "layer", "head"]
        assert ds.compression == "gzip" and ds.shuffle
        assert np.isfinite(ds[:]).all()


def test_xarray_shows_dimension_names(model_factory, texts_file, tmp_path):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "x.zarr"
    dump("--model", str(model_factory("gpt2")), "--data", str(texts_file), "--out", str(out))
    ds = xr.open_zarr(out, group="norms/z", consolidated=False)
    assert ds["sum"].dims == ("sample", "layer", "head")
    samples = xr.open_zarr(out, group="samples", consolidated=False)
    assert samples["n_tokens"].dims == ("sample",)


def test_subsets_keep_real_indices_and_match_the_full_dump(model_factory, texts_file, tmp_path):
    model = model_factory("qwen3")
    full, part = tmp_path / "full.zarr", tmp_path / "part.zarr"
    dump("--model", str(model), "--data", str(texts_file), "--out", str(full))
    dump("--model", str(model), "--data", str(texts_file), "--out", str(part),
         "--layers", "1", "--heads", "0,2-3", "--sites", "out")
    with open_store(full) as f, open_store(part) as p:
        assert list(p.layers) == [1] and list(p.heads) == [0, 2, 3]
        assert p.sites == ("out",)
        for stat in STATS:
            np.testing.assert_allclose(p.read_norm("out", stat),
                                       f.read_norm("out", stat)[:, [1]][:, :, [0, 2, 3]],
                                       rtol=1e-6)


def test_truncation_is_recorded_and_matches_reference(model_factory, texts_file, tmp_path):
    model = model_factory("gpt2")
    out = tmp_path / "t.zarr"
    dump("--model", str(model), "--data", str(texts_file), "--out", str(out),
         "--max-length", "6")
    texts = texts_of(texts_file)
    with open_store(out) as store:
        s = store.samples()
        assert (s.n_tokens <= 6).all()
        assert s.truncated.sum() > 0
        assert store.metadata["tokenizer"]["max_length"] == 6
        expected = reference_stats(model, texts, FAMILIES["gpt2"].projection, [0, 1, 2],
                                   [0, 1, 2, 3], max_length=6)
        np.testing.assert_allclose(store.read_norm("z", "sum"), expected[("z", "sum")],
                                   rtol=1e-5)


def test_sample_num_is_reproducible_and_in_file_order(model_factory, texts_file, tmp_path):
    model = str(model_factory("gpt2"))
    for name in ("a", "b"):
        dump("--model", model, "--data", str(texts_file), "--out", str(tmp_path / f"{name}.zarr"),
             "--sample-num", "5", "--seed", "7")
    a, b = arrays_of(tmp_path / "a.zarr"), arrays_of(tmp_path / "b.zarr")
    assert_same_arrays(a, b)
    index = a["samples/index"]
    assert len(index) == 5 and (np.diff(index) > 0).all()


def test_minilm_real_weights_dump_finite_positive_and_varied(minilm_dir, texts_file, tmp_path):
    out = tmp_path / "minilm.zarr"
    dump("--model", str(minilm_dir), "--data", str(texts_file), "--out", str(out))
    with open_store(out) as store:
        assert list(store.layers) == list(range(6)) and list(store.heads) == list(range(12))
        for site in ("z", "out"):
            r = (store.read_norm(site, "sum") / store.samples().n_tokens[:, None, None]).mean(0)
            assert np.isfinite(r).all() and (r > 0).all()
            assert r.std() / r.mean() > 0.05  # heads differ


def test_existing_output_is_refused_and_left_alone(model_factory, texts_file, tmp_path):
    out = tmp_path / "keep.zarr"
    dump("--model", str(model_factory("gpt2")), "--data", str(texts_file), "--out", str(out))
    before = sorted(p.name for p in out.rglob("*"))
    result = dump("--model", str(model_factory("gpt2")), "--data", str(texts_file), "--out",
                  str(out), expect=1)
    assert "already exists" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in out.rglob("*")) == before


def test_hook_module_template_resolves_heads(model_factory, texts_file, tmp_path):
    out = tmp_path / "tpl.zarr"
    dump("--model", str(model_factory("llama")), "--data", str(texts_file), "--out", str(out),
         "--hook-module", "model.layers.{layer}.self_attn.o_proj")
    with open_store(out) as store:
        assert store.metadata["hook"]["resolved_by"] == "template"
        assert store.metadata["hook"]["modules"][0] == "layers.0.self_attn.o_proj"


def test_bad_hook_module_is_one_clear_line(model_factory, texts_file, tmp_path):
    result = dump("--model", str(model_factory("llama")), "--data", str(texts_file), "--out",
                  str(tmp_path / "x.zarr"), "--hook-module", "model.layers.{layer}.mlp.nothing",
                  expect=1)
    assert "has no module" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.zarr").exists()


def test_encoder_decoder_is_refused(tmp_path, texts_file):
    from tiny_models import build_tokenizer
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path / "t5"
    tok = build_tokenizer(folder)
    T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32,
                                        num_layers=1, num_heads=4)).save_pretrained(folder)
    result = dump("--model", str(folder), "--data", str(texts_file), "--out",
                  str(tmp_path / "t5.zarr"), expect=1)
    assert "encoder-decoder" in result.output


@pytest.mark.parametrize("args, message", [
    (["--layers", "9"], "out of range"),
    (["--heads", "0-7"], "out of range"),
    (["--layers", "x"], "not an index"),
    (["--sites", "q"], "choose from"),
])
def test_bad_selections_are_refused(args, message, model_factory, texts_file, tmp_path):
    result = dump("--model", str(model_factory("gpt2")), "--data", str(texts_file), "--out",
                  str(tmp_path / "bad.zarr"), *args, expect=1)
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_model_directory(texts_file, tmp_path):
    result = dump("--model", str(tmp_path / "nope"), "--data", str(texts_file), "--out",
                  str(tmp_path / "x.zarr"), expect=1)
    assert "no such model directory" in result.output


def test_python_entry_point_takes_a_loaded_model(model_factory, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from headact.dump import DumpOptions, dump_model

    folder = model_factory("gpt2")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()  # with its LM head
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = ["one small text", "and another, a little longer than the first"]
    result = dump_model(model, tokenizer, texts, tmp_path / "py.zarr",
                        options=DumpOptions(sites=("z",), layers=[0, 2]))
    assert result.n_samples == 2
    expected = reference_stats(folder, texts, FAMILIES["gpt2"].projection, [0, 2],
                               [0, 1, 2, 3])
    with open_store(result.path) as store:
        assert store.metadata["hook"]["modules"] == ["transformer.h.0.attn.c_proj",
                                                     "transformer.h.2.attn.c_proj"]
        np.testing.assert_allclose(store.read_norm("z", "max"), expected[("z", "max")],
                                   rtol=1e-5)
