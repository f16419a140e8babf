"""Pairing two stores: refusals that name the difference, --align, partial stores, warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from store_factory import planted_pair, stats_from_values, store_metadata, texts_for, write_store

from headact.analyze import analyze_stores
from headact.cli import main
from headact.errors import IncompleteStoreError, PairingError, StoreError

FAST = {"n_boot": 200, "n_perm": 50, "plots": False}


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _values(seed: int = 0, n: int = 40, n_layers: int = 2, n_heads: int = 3):
    lr = np.zeros((n_layers, n_heads))
    lr[0, 1] = 0.3
    return planted_pair(np.random.default_rng(seed), n, n_layers, n_heads, log_ratio=lr)


def _pair(tmp_path, fine_kwargs=None, pre_kwargs=None, n: int = 40):
    x_pre, x_fine, _, _ = _values(n=n)
    n_tok = np.arange(n) % 7 + 2
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, n_tok), n_tokens=n_tok,
                      **(pre_kwargs or {}))
    fine_kwargs = dict(fine_kwargs or {})
    fine_values = fine_kwargs.pop("values", x_fine)
    fine_tok = fine_kwargs.pop("n_tokens", n_tok)
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(fine_values, fine_tok),
                       n_tokens=fine_tok, name="fine-model", **fine_kwargs)
    return pre, fine, x_pre, x_fine, n_tok


def test_refuses_other_samples_naming_the_row(tmp_path):
    n = 40
    pre, fine, *_ = _pair(tmp_path, {"index": [i + (i >= 17) for i in range(n)]})
    with pytest.raises(PairingError, match=r"row 17 is sample 17 of the data file in pre but "
                                           r"18 in fine.*--align to pair the 17 samples"):
        analyze_stores(pre, fine, **FAST)
    result = cli("analyze", str(pre), str(fine), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "hold different samples" in result.output and "--align" in result.output
    assert "Traceback" not in result.output


def test_refuses_other_texts(tmp_path):
    texts = texts_for(40)
    texts[5] = "a different text"
    pre, fine, *_ = _pair(tmp_path, {"texts": texts})
    with pytest.raises(PairingError, match=r"row 5 \(sample 5\) has another text in fine"):
        analyze_stores(pre, fine, **FAST)


def test_refuses_another_number_of_samples(tmp_path):
    x_pre, x_fine, _, _ = _values(n=40)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, np.full(40, 3)))
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine[:30], np.full(30, 3)))
    with pytest.raises(PairingError, match="pre holds 40 samples, fine 30.*the 30 samples"):
        analyze_stores(pre, fine, **FAST)


def test_refuses_other_heads(tmp_path):
    x_pre, _, _, _ = _values(n_heads=4)
    _, x_fine, _, _ = _values(n_heads=3)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, np.full(40, 3)))
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine, np.full(40, 3)))
    with pytest.raises(PairingError, match=r"different heads: pre has 0-3, fine has 0-2 "
                                           r"\(heads 3 only in pre\)"):
        analyze_stores(pre, fine, **FAST)


def test_refuses_other_layers(tmp_path):
    x_pre, x_fine, _, _ = _values(n_layers=2)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, np.full(40, 3)),
                      layers=(0, 1))
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine, np.full(40, 3)),
                       layers=(4, 5))
    with pytest.raises(PairingError, match=r"different layers: pre has 0-1, fine has 4-5.*"
                                           r"--layers"):
        analyze_stores(pre, fine, **FAST, align=True)  # --align pairs samples, not layers


def test_align_pairs_the_common_samples(tmp_path):
    n = 40
    x_pre, x_fine, _, _ = _values(n=n)
    n_tok = np.arange(n) % 7 + 2
    texts = texts_for(n)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, n_tok), n_tokens=n_tok)
    # fine holds the samples in another order, misses 5 of them and adds 3 others.
    order = np.random.default_rng(1).permutation(n)[:35]
    extra_values = np.ones((3,) + x_fine.shape[1:])
    fine_values = np.concatenate([x_fine[order], extra_values])
    fine_tok = np.concatenate([n_tok[order], [4, 4, 4]])
    fine = write_store(
        tmp_path / "fine.zarr", stats_from_values(fine_values, fine_tok), n_tokens=fine_tok,
        index=list(order) + [100, 101, 102], texts=[texts[i] for i in order] + texts_for(3, 100),
    )
    with pytest.raises(PairingError, match="--align"):
        analyze_stores(pre, fine, **FAST)
    result = analyze_stores(pre, fine, **FAST, align=True)
    common = np.sort(order)
    assert result.n_samples == 35 and result.pairing.aligned
    np.testing.assert_allclose(result.comparison.r_pre.value,
                               x_pre[common].reshape(35, -1).mean(0), rtol=1e-6)
    np.testing.assert_allclose(result.comparison.r_fine.value,
                               x_fine[common].reshape(35, -1).mean(0), rtol=1e-6)
    assert any("--align: pairing the 35 samples" in w for w in result.warnings)


def test_align_refuses_repeated_samples(tmp_path):
    x_pre, x_fine, _, _ = _values(n=40)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre[:39], np.full(39, 3)))
    texts = texts_for(40)
    texts[39] = texts[0]
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine, np.full(40, 3)),
                       index=list(range(39)) + [0], texts=texts)
    with pytest.raises(PairingError, match="repeated samples"):
        analyze_stores(pre, fine, **FAST, align=True)


def test_changed_tokenizer_is_reported(tmp_path, caplog):
    pre, fine, *_ = _pair(tmp_path, {"token_offset": 1})
    out = tmp_path / "out"
    result = analyze_stores(pre, fine, out, **FAST)
    assert result.pairing.token_hash_differs == 40
    assert any("tokenization differs in 40 of 40 samples" in w for w in result.warnings)
    assert "tokenization differs" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"]["token_hash_differs"] == 40
    assert any("tokenization differs" in w for w in summary["warnings"])


def test_run_setting_differences_are_each_named(tmp_path):
    meta = store_metadata("fine-model", 2, 3, run={"transformers_version": "4.46.3",
                                                   "attn_implementation": "sdpa"},
                          model={"dtype": "bfloat16"})
    pre, fine, *_ = _pair(tmp_path, {"metadata": meta})
    result = analyze_stores(pre, fine, tmp_path / "out", **FAST)
    fields = {d.field: (d.pre, d.fine) for d in result.pairing.differences}
    assert fields == {"run.transformers_version": ("5.0.0", "4.46.3"),
                      "run.attn_implementation": ("eager", "sdpa"),
                      "model.dtype": ("float32", "bfloat16")}
    text = "\n".join(result.warnings)
    assert "transformers version: '5.0.0' (pre) vs '4.46.3' (fine)" in text
    assert "transformers 4 and 5 read some configs differently" in text
    assert "attention implementation" in text and "model dtype" in text
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {d["field"] for d in summary["provenance_differences"]} == set(fields)


def test_same_weights_are_reported(tmp_path):
    pre, fine, *_ = _pair(tmp_path, {"metadata": store_metadata("pre-model", 2, 3)})
    result = analyze_stores(pre, fine, **FAST)
    assert any("same weight fingerprint" in w for w in result.warnings)


def test_partial_store_needs_allow_partial(tmp_path):
    n = 40  # blocks of 16 rows: 0-15, 16-31, 32-39
    x_pre, x_fine, _, _ = _values(n=n)
    n_tok = np.full(n, 4)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, n_tok), n_tokens=n_tok,
                      done_blocks=[0, 2])
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine, n_tok),
                       n_tokens=n_tok)
    with pytest.raises(IncompleteStoreError, match="24 of 40 samples done.*--allow-partial"):
        analyze_stores(pre, fine, **FAST)
    result = cli("analyze", str(pre), str(fine), "-o", str(tmp_path / "o"))
    assert result.exit_code == 1 and "--allow-partial" in result.output
    result = analyze_stores(pre, fine, **FAST, allow_partial=True)
    done = np.r_[0:16, 32:40]
    assert result.n_samples == 24
    np.testing.assert_allclose(result.comparison.r_pre.value,
                               x_pre[done].reshape(24, -1).mean(0), rtol=1e-6)
    assert any("in progress: using its 24 done samples of 40" in w for w in result.warnings)
    single = analyze_stores(pre, None, **FAST, allow_partial=True)
    assert single.n_samples == 24


def test_missing_site_is_refused(tmp_path):
    x_pre, x_fine, _, _ = _values()
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, np.full(40, 3)),
                      sites=("z",))
    with pytest.raises(StoreError, match="has no site 'out'.*--site z"):
        analyze_stores(pre, None, **FAST, site="out")
