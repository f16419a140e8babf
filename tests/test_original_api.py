"""The original README's code examples, run in turn on tiny local models, and their numbers.

Each `test_readme_*` is one example of the original activation_extract README with a tiny
saved model instead of a hub path; the numbers are checked against an independent
computation (tests/reference.py: one sample at a time, float64) and against analyze.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from reference import reference_stats, texts_of
from tiny_models import FAMILIES, HEADS, LAYERS, build_model
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoTokenizer

from headact.analyze import analyze_stores
from headact.errors import DataError, ModelError, PairingError
from headact.store.schemas import schema_errors

pytestmark = pytest.mark.dump

PROJECTION = FAMILIES["gpt2"].projection


def attached_hooks(model: torch.nn.Module) -> list[str]:
    """Every module that holds a forward hook or pre-hook of any kind."""
    return [name for name, m in model.named_modules()
            if m._forward_pre_hooks or m._forward_hooks or m._forward_pre_hooks_with_kwargs
            or m._forward_hooks_with_kwargs]


@pytest.fixture(scope="module")
def models(model_factory, tmp_path_factory):
    """(pre, fine): two tiny GPT-2 checkpoints with one tokenizer, different weights."""
    pre = model_factory("gpt2")
    fine = build_model("gpt2", tmp_path_factory.mktemp("gpt2-fine") / "model", seed=1)
    return pre, fine


@pytest.fixture(scope="module")
def texts(texts_file) -> list[str]:
    return texts_of(texts_file)


@pytest.fixture(scope="module")
def per_sample(models, texts):
    """Independent per-sample token-mean norms x [sample, layer, head] of both models."""
    out = {}
    for name, folder in zip(("pre", "fine"), models, strict=True):
        stats = reference_stats(folder, texts, PROJECTION, list(range(LAYERS)),
                                list(range(HEADS)))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        n_tokens = np.array([len(tokenizer(t)["input_ids"]) for t in texts], dtype=np.float64)
        out[name] = stats[("z", "sum")] / n_tokens[:, None, None]
    return out


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def grid(r_h: dict[tuple[int, int], float], layers=range(LAYERS), heads=range(HEADS)):
    return np.array([[r_h[(layer, head)] for head in heads] for layer in layers])


# The original README, section 编程接口 1: create an extractor, set the structure, hooks.
def test_readme_1_create_extractor_and_register_hooks(models):
    from activation_extract import ActivationExtractor

    model = load(models[0])
    extractor = ActivationExtractor(model, model_name="my_model")
    assert (extractor.num_layers, extractor.num_heads) == (LAYERS, HEADS)
    extractor.set_model_structure(num_layers=LAYERS, num_heads=HEADS)
    extractor.register_hooks()
    hooked = attached_hooks(model)
    assert [f"transformer.h.{i}.attn.c_proj" for i in range(LAYERS)] == [
        name for name in hooked if name]
    assert "" in hooked  # the model itself: it reads each call's attention mask
    extractor.register_hooks(layers=[0, 1, 2], heads=[0, 1, 2, 3])
    assert len(attached_hooks(model)) == LAYERS + 1  # registered again, not twice
    extractor.remove_hooks()
    assert attached_hooks(model) == []


# Section 2: extract over a DataLoader with a tokenizer function, R_h, stats, save, clean up.
@pytest.mark.parametrize("how", ["hf-tokenizer", "tokenize-function", "unpadded-lists"])
def test_readme_2_extract_compute_save_remove(how, models, texts, per_sample, tmp_path):
    from activation_extract import ActivationExtractor

    model = load(models[0])
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    if how == "tokenize-function":
        tokenizer.pad_token = tokenizer.eos_token

        def tokenize_fn(batch):
            # transformers 4.x also returns token_type_ids, which GPT-2 would add as
            # embeddings: a function like the original README's passes ids and mask only.
            enc = tokenizer(batch, return_tensors="pt", padding=True)
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

        tokenizer_arg = tokenize_fn
    elif how == "unpadded-lists":
        def tokenize_lists(batch):
            enc = tokenizer(batch)  # lists of different lengths: padded on the right
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

        tokenizer_arg = tokenize_lists
    else:
        tokenizer_arg = tokenizer
    extractor = ActivationExtractor(model, model_name="my_model")
    extractor.register_hooks()
    dataloader = DataLoader(texts, batch_size=8)
    assert extractor.extract_activations(dataloader, tokenizer=tokenizer_arg) == len(texts)

    r_h = extractor.compute_R_h()
    assert isinstance(r_h[(0, 0)], float)
    np.testing.assert_allclose(grid(r_h), per_sample["pre"].mean(axis=0), rtol=1e-5)

    stats = extractor.get_all_stats()
    assert [(s.layer_idx, s.head_idx) for s in stats] == [
        (layer, head) for layer in range(LAYERS) for head in range(HEADS)]
    for stat in stats:
        x = per_sample["pre"][:, stat.layer_idx, stat.head_idx]
        assert stat.R_h == r_h[(stat.layer_idx, stat.head_idx)]
        assert stat.ci_low < stat.R_h < stat.ci_high
        assert stat.std == pytest.approx(x.std(ddof=1), rel=1e-4)
        assert stat.num_samples == len(texts)
        assert f"R_h = {stat.R_h:.4f}"  # the README prints it this way

    saved = json.loads(extractor.save_results(tmp_path / "results.json").read_text())
    assert schema_errors(saved, "activations-v1.schema.json") == []
    assert saved["model_name"] == "my_model" and saved["num_samples"] == len(texts)
    assert saved["stats"][0]["R_h"] == stats[0].R_h
    np.testing.assert_allclose(np.array(saved["R_h"]), grid(r_h), rtol=1e-12)

    extractor.remove_hooks()
    assert attached_hooks(model) == []


# Section 3: two extractors over one data loader (no tokenizer given), compare, plot, save.
def test_readme_3_compare(models, texts, per_sample, tmp_path):
    from activation_extract import ActivationComparator, ActivationExtractor

    pre_model, fine_model = load(models[0]), load(models[1])
    dataloader = DataLoader(texts, batch_size=8)
    pre_extractor = ActivationExtractor(pre_model, "pre_tuned")
    fine_extractor = ActivationExtractor(fine_model, "fine_tuned")
    pre_extractor.extract_activations(dataloader)  # the model's own tokenizer
    fine_extractor.extract_activations(dataloader)
    assert attached_hooks(pre_model) == [] and attached_hooks(fine_model) == []

    comparator = ActivationComparator(pre_extractor, fine_extractor)
    comparison = comparator.compare()
    json.dumps(comparison, allow_nan=False)  # JSON-serializable as it is
    r_pre, r_fine = per_sample["pre"].mean(axis=0), per_sample["fine"].mean(axis=0)
    np.testing.assert_allclose(np.array(comparison["differences"]), r_fine - r_pre,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.array(comparison["ratios"]), r_fine / r_pre, rtol=1e-5)
    # ... and exactly the two extractors' own R_h
    pre_r, fine_r = grid(pre_extractor.compute_R_h()), grid(fine_extractor.compute_R_h())
    np.testing.assert_allclose(np.array(comparison["R_pre"]), pre_r, rtol=1e-12)
    np.testing.assert_allclose(np.array(comparison["differences"]), fine_r - pre_r,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.array(comparison["ratios"]), fine_r / pre_r, rtol=1e-9)
    assert comparison["hypothesis"]["targets"]["abs_log_ratio"]["spearman"]["estimate"] is not None
    head = comparison["per_head"][5]
    assert head["difference_ci"][0] <= head["difference"] <= head["difference_ci"][1]

    picture = comparator.visualize_comparison(tmp_path / "comparison.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(comparator.save_comparison(tmp_path / "comparison.json").read_text())
    assert schema_errors(saved, "comparison-v1.schema.json") == []
    assert saved["differences"] == comparison["differences"]

    # exactly what `headact analyze` reports on the extractors' stores
    pre_extractor.to_store(tmp_path / "pre.zarr")
    fine_extractor.to_store(tmp_path / "fine.zarr")
    result = analyze_stores(tmp_path / "pre.zarr", tmp_path / "fine.zarr")
    assert np.array_equal(np.array(comparison["differences"]).ravel(),
                          result.comparison.diff.value)
    assert np.array_equal(np.array([h["ratio_ci"] for h in comparison["per_head"]]),
                          np.stack([result.comparison.ratio.low, result.comparison.ratio.high],
                                   axis=1))


# Section 自定义 Hook 位置: a hook on a named module.
def test_readme_custom_hook_point(models, texts, per_sample):
    from activation_extract import ActivationHook

    model = load(models[0])
    with pytest.raises(ModelError, match=r"transformer\.h\.0\.attn\.c_attn is the fused "
                                         r"query/key/value projection.*transformer\.h\.0\.attn"
                                         r"\.c_proj"):
        ActivationHook(layer_idx=0, head_idx=0).register(model, "transformer.h.0.attn.c_attn")
    assert attached_hooks(model) == []

    tokenizer = AutoTokenizer.from_pretrained(models[0])
    hook = ActivationHook(layer_idx=1, head_idx=2, keep_activations=True)
    hook.register(model, "transformer.h.1.attn.c_proj")  # the right module
    assert hook.mode == "projection input"
    ids = [tokenizer(t, return_tensors="pt")["input_ids"] for t in texts[:3]]
    with torch.no_grad():
        for x in ids:
            model(x)  # no attention mask: every token counts
        width = max(x.shape[1] for x in ids) + 3  # right padding with a mask
        padded = torch.zeros(2, width, dtype=torch.long)
        mask = torch.zeros(2, width, dtype=torch.long)
        for row, x in enumerate(ids[1:]):
            padded[row, : x.shape[1]], mask[row, : x.shape[1]] = x[0], 1
        model(input_ids=padded, attention_mask=mask)
    hook.remove()
    assert attached_hooks(model) == []
    expected = per_sample["pre"][[0, 1, 2, 1, 2], 1, 2]
    np.testing.assert_allclose(hook.values(), expected, rtol=1e-5)
    assert hook.compute_R_h() == pytest.approx(expected.mean(), rel=1e-5)
    assert [a.shape for a in hook.activations] == [(x.shape[1], 8) for x in ids + ids[1:]]


def test_hook_on_other_modules_splits_their_output(model_factory, texts):
    from activation_extract import ActivationHook

    folder = model_factory("llama")
    model = load(folder)
    x = AutoTokenizer.from_pretrained(folder)(texts[1], return_tensors="pt")["input_ids"]
    with ActivationHook(0, 3).register(model, "model.layers.0.self_attn.q_proj") as hook:
        assert hook.mode == "module output"
        queries = {}
        handle = model.model.layers[0].self_attn.q_proj.register_forward_hook(
            lambda m, a, out: queries.setdefault("q", out.detach()))
        with torch.no_grad():
            model(x)
        handle.remove()
    expected = queries["q"][0].view(x.shape[1], HEADS, 8)[:, 3].norm(dim=-1).mean().item()
    assert hook.compute_R_h() == pytest.approx(expected, rel=1e-5)
    assert attached_hooks(model) == []
    # k_proj of a grouped-query model is num_key_value_heads x head_dim wide: refused
    with pytest.raises(ModelError, match=r"k_proj is a Linear: its output is 16 wide, not 4 "
                                         r"heads × 8.*model\.layers\.0\.self_attn\.o_proj"):
        ActivationHook(0, 0).register(model, "model.layers.0.self_attn.k_proj")
    with pytest.warns(UserWarning, match="mixes the heads"):
        ActivationHook(0, 0).register(model, "model.layers.0.self_attn").remove()
    assert attached_hooks(model) == []


# 扩展功能: only some layers, only some heads, equal to the same entries of a full run.
def test_readme_subset_of_layers_and_heads(models, texts, per_sample):
    from activation_extract import ActivationExtractor

    model = load(models[0])
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    full = ActivationExtractor(model, "full")
    full.extract_activations(DataLoader(texts, batch_size=4), tokenizer=tokenizer)
    for layers, heads in (([0, 1, 2], None), (None, [0, 1, 2, 3]), ([0, 2], [1, 3]), ([1], [2])):
        extractor = ActivationExtractor(model, "subset")
        extractor.register_hooks(layers=layers, heads=heads)
        extractor.extract_activations(DataLoader(texts, batch_size=4), tokenizer=tokenizer)
        extractor.remove_hooks()
        part = extractor.compute_R_h()
        assert list(part) == [(la, h) for la in (layers or range(LAYERS))
                              for h in (heads or range(HEADS))]
        for key, value in part.items():
            assert value == pytest.approx(full.compute_R_h()[key], rel=1e-6, abs=0)
    assert attached_hooks(model) == []


# 分析特定样本: a data loader over a few records in the original data format.
def test_readme_specific_samples(models, texts, per_sample, texts_file):
    from activation_extract import ActivationExtractor, create_simple_dataloader

    records = json.loads(texts_file.read_text())
    model = load(models[0])
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    samples = records
    specific_samples = [samples[0], samples[5], samples[10]]
    specific_dataloader = create_simple_dataloader(specific_samples, tokenizer)
    extractor = ActivationExtractor(model, "specific")
    extractor.extract_activations(specific_dataloader)
    np.testing.assert_allclose(grid(extractor.compute_R_h()),
                               per_sample["pre"][[0, 5, 10]].mean(axis=0), rtol=1e-5)
    assert [s.text for s in extractor.samples] == [texts[0], texts[5], texts[10]]


def test_max_batches_and_dicts_of_tensors(models, texts, per_sample):
    from activation_extract import ActivationExtractor, create_simple_dataloader

    model = load(models[0])
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    batches = list(create_simple_dataloader(texts, tokenizer, batch_size=3))
    plain = [{"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
             for b in batches]
    extractor = ActivationExtractor(model, "dicts")
    assert extractor.extract_activations(plain, max_batches=2) == 6
    np.testing.assert_allclose(grid(extractor.compute_R_h()),
                               per_sample["pre"][:6].mean(axis=0), rtol=1e-5)
    assert extractor.samples[0].text is None
    assert extractor.samples[0].n_tokens == len(tokenizer(texts[0])["input_ids"])


def test_store_is_a_dump_of_the_same_texts(models, texts, tmp_path):
    from activation_extract import ActivationExtractor
    from headact.dump import dump_model
    from headact.store import open_store

    model = load(models[0])
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    extractor = ActivationExtractor(model, "tiny")
    extractor.extract_activations(DataLoader(texts, batch_size=5), tokenizer=tokenizer)
    extractor.to_store(tmp_path / "extracted.h5")
    dump_model(model, tokenizer, texts, tmp_path / "dumped.zarr", model_name="tiny")
    with open_store(tmp_path / "extracted.h5") as a, open_store(tmp_path / "dumped.zarr") as b:
        sa, sb = a.samples(), b.samples()
        for name in ("index", "text_hash", "token_hash", "n_tokens", "truncated"):
            assert np.array_equal(getattr(sa, name), getattr(sb, name)), name
        for site in ("z", "out"):
            for stat in ("sum", "sumsq", "first", "last", "max"):
                np.testing.assert_allclose(a.read_norm(site, stat), b.read_norm(site, stat),
                                           rtol=1e-5, err_msg=f"{site}/{stat}")
        assert a.metadata["model"]["num_layers"] == LAYERS
        assert a.metadata["hook"]["modules"] == b.metadata["hook"]["modules"]
    single = analyze_stores(tmp_path / "extracted.h5")
    assert np.array_equal(single.estimates.r.value, grid(extractor.compute_R_h()).ravel())
    assert np.array_equal(single.estimates.r.low,
                          np.array([s.ci_low for s in extractor.get_all_stats()]))


def test_structure_set_by_hand_and_hook_point_overridden(models, texts):
    from activation_extract import ActivationExtractor

    class Bare(torch.nn.Module):  # no config: nothing to detect the structure from
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    gpt2 = load(models[0])
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    reference = ActivationExtractor(gpt2, "plain")
    reference.extract_activations(DataLoader(texts, batch_size=4), tokenizer=tokenizer)

    bare = Bare(gpt2)
    extractor = ActivationExtractor(bare, "bare")
    with pytest.raises(ModelError, match=r"call set_model_structure\(num_layers=..., "):
        extractor.register_hooks()
    extractor.set_model_structure(num_layers=LAYERS, num_heads=HEADS)
    extractor.extract_activations(DataLoader(texts, batch_size=4), tokenizer=tokenizer)
    assert extractor.compute_R_h() == pytest.approx(reference.compute_R_h(), rel=1e-6)

    class Custom(ActivationExtractor):
        def _get_hook_point(self, layer_idx: int) -> str:
            return f"inner.transformer.h.{layer_idx}.attn.c_proj"

    custom = Custom(bare, "custom")
    custom.set_model_structure(num_layers=LAYERS, num_heads=HEADS)
    custom.extract_activations(DataLoader(texts, batch_size=4), tokenizer=tokenizer)
    assert custom.compute_R_h() == pytest.approx(reference.compute_R_h(), rel=1e-6)
    assert custom._resolved_hooked.resolved_by == "user"

    class Wrong(ActivationExtractor):
        def _get_hook_point(self, layer_idx: int) -> str:
            return f"transformer.h.{layer_idx}.ln_1"

    with pytest.raises(ModelError, match="ln_1 is a LayerNorm, not a Linear or Conv1D"):
        Wrong(gpt2, "wrong").register_hooks()
    assert attached_hooks(gpt2) == [] and attached_hooks(bare) == []


def test_different_samples_are_refused(models, texts):
    from activation_extract import ActivationComparator, ActivationExtractor

    pre = ActivationExtractor(load(models[0]), "pre_tuned")
    fine = ActivationExtractor(load(models[1]), "fine_tuned")
    pre.extract_activations(DataLoader(texts, batch_size=4))
    fine.extract_activations(DataLoader(texts[::-1], batch_size=4))
    with pytest.raises(PairingError, match=r"^pre_tuned and fine_tuned saw different samples "
                                           r"\(sample 0 differs\); run both over the same data "
                                           r"loader without shuffling to compare them\.$"):
        ActivationComparator(pre, fine).compare()
    fine.clear()
    fine.extract_activations(DataLoader(texts[:5], batch_size=4))
    with pytest.raises(PairingError, match="pre_tuned saw 11 samples and fine_tuned 5"):
        ActivationComparator(pre, fine).compare()


def test_texts_and_token_ids_of_the_same_samples_pair(models, texts):
    from activation_extract import (
        ActivationComparator,
        ActivationExtractor,
        create_simple_dataloader,
    )

    tokenizer = AutoTokenizer.from_pretrained(models[0])
    pre = ActivationExtractor(load(models[0]), "pre_tuned")
    fine = ActivationExtractor(load(models[1]), "fine_tuned")
    pre.extract_activations(DataLoader(texts, batch_size=4), tokenizer=tokenizer)
    fine.extract_activations([{"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
                              for b in create_simple_dataloader(texts, tokenizer, 4)])
    comparison = ActivationComparator(pre, fine, n_boot=200).compare()
    assert comparison["num_samples"] == len(texts)
    np.testing.assert_allclose(np.array(comparison["differences"]),
                               grid(fine.compute_R_h()) - grid(pre.compute_R_h()), rtol=1e-9)


def test_a_call_without_a_token_mask_is_refused(models, texts):
    from activation_extract import ActivationExtractor

    model = load(models[0])
    extractor = ActivationExtractor(model, "x")
    extractor.register_hooks()
    ids = AutoTokenizer.from_pretrained(models[0])(texts[0], return_tensors="pt")["input_ids"]
    square = torch.ones(1, 1, ids.shape[1], ids.shape[1])
    with pytest.raises(ModelError, match="called with a 4-D attention mask; the hooked heads "
                                         r"need the \[batch, tokens\] mask"):
        model(input_ids=ids, attention_mask=square)
    with torch.no_grad():
        model(input_ids=ids)  # the model's own call is captured too: all tokens count
    extractor.remove_hooks()
    assert extractor.num_samples == 1 and extractor.samples[0].n_tokens == ids.shape[1]
    assert attached_hooks(model) == []


def test_errors_leave_no_hook_and_say_what_to_do(models, texts):
    from activation_extract import ActivationExtractor

    model = load(models[0])
    extractor = ActivationExtractor(model, "x", tokenizer=AutoTokenizer.from_pretrained(models[0]))
    with pytest.raises(DataError, match="cannot read a batch of type int"):
        extractor.extract_activations([texts[:2], 7])
    assert attached_hooks(model) == []
    assert extractor.num_samples == 2  # the good batch before the bad one is kept
    with pytest.raises(DataError, match=r"layers 5 is out of range; the model has 3 layers"):
        extractor.register_hooks(layers=[0, 5])
    assert attached_hooks(model) == []


def test_import_headact_stays_torch_free():
    code = ("import sys, headact, activation_extract, headact.original; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert 'ActivationExtractor' in dir(headact); "
            "print(*bad); sys.exit(1 if bad else 0)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
