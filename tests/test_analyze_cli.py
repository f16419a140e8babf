"""`headact analyze` end to end with CliRunner on real stores, checked against plain numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from scipy import stats
from store_factory import planted_pair, stats_from_values, write_store

from headact.analyze import CI_METHODS, PLOT_FORMATS, REDUCTIONS, analyze_stores
from headact.analyze.report import PAIRED_COLUMNS, SINGLE_COLUMNS
from headact.cli import analyze_cmd, main
from headact.store import SITES
from headact.store.schemas import schema_errors

N, LAYERS, HEADS = 120, 3, 4
PAIRED = ["layer", "head", "r_pre", "r_pre_lo", "r_pre_hi", "r_fine", "r_fine_lo", "r_fine_hi",
          "diff", "diff_lo", "diff_hi", "ratio", "ratio_lo", "ratio_hi", "log_ratio",
          "log_ratio_lo", "log_ratio_hi", "p_value", "q_value", "d_z", "changed"]


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Two stores with two changed heads: (1, 2) up 35 %, (2, 0) down 20 %."""
    folder = tmp_path_factory.mktemp("planted")
    lr = np.zeros((LAYERS, HEADS))
    lr[1, 2], lr[2, 0] = np.log(1.35), np.log(0.8)
    x_pre, x_fine, _, _ = planted_pair(np.random.default_rng(42), N, LAYERS, HEADS,
                                       log_ratio=lr)
    n_tok = np.random.default_rng(1).integers(2, 30, size=N)
    s_pre, s_fine = stats_from_values(x_pre, n_tok), stats_from_values(x_fine, n_tok)
    pre = write_store(folder / "pre.zarr", s_pre, n_tokens=n_tok, name="org/base-model")
    fine = write_store(folder / "fine.h5", s_fine, n_tokens=n_tok, name="org/tuned-model")
    return {"pre": pre, "fine": fine, "s_pre": s_pre, "s_fine": s_fine, "n_tok": n_tok}


@pytest.fixture(scope="module")
def paired_run(planted, tmp_path_factory):
    out = tmp_path_factory.mktemp("paired") / "results"
    result = cli("analyze", str(planted["pre"]), str(planted["fine"]), "-o", str(out),
                 "--n-boot", "1000", "--n-perm", "200", "--seed", "7")
    assert result.exit_code == 0, result.output
    return out, result.output


def _token_mean(s: dict[str, np.ndarray], n_tok: np.ndarray) -> np.ndarray:
    # From the float32 arrays that went into the store, in float64, samples x heads.
    return (s["sum"].astype(np.float64) / n_tok[:, None, None]).reshape(len(n_tok), -1)


def test_paired_table_matches_numpy(planted, paired_run):
    out, _ = paired_run
    table = pl.read_csv(out / "heads.csv")
    assert table.columns == PAIRED == list(PAIRED_COLUMNS)
    assert pl.read_parquet(out / "heads.parquet").columns == PAIRED
    pre = _token_mean(planted["s_pre"], planted["n_tok"])
    fine = _token_mean(planted["s_fine"], planted["n_tok"])
    r_pre, r_fine = pre.mean(0), fine.mean(0)
    u = fine / r_fine - pre / r_pre
    se = u.std(0, ddof=1) / math.sqrt(N)
    lr = np.log(r_fine / r_pre)
    p = 2 * stats.norm.sf(np.abs(lr) / se)
    d = fine - pre
    assert table["layer"].to_list() == list(np.repeat(np.arange(LAYERS), HEADS))
    assert table["head"].to_list() == list(np.tile(np.arange(HEADS), LAYERS))
    for column, expected in (("r_pre", r_pre), ("r_fine", r_fine), ("diff", r_fine - r_pre),
                             ("ratio", r_fine / r_pre), ("log_ratio", lr), ("p_value", p),
                             ("q_value", stats.false_discovery_control(p)),
                             ("d_z", d.mean(0) / d.std(0, ddof=1))):
        np.testing.assert_allclose(table[column].to_numpy(), expected, rtol=1e-9, atol=1e-300,
                                   err_msg=column)
    for name in ("r_pre", "r_fine", "diff", "ratio", "log_ratio"):
        assert (table[f"{name}_lo"] <= table[name]).all()
        assert (table[name] <= table[f"{name}_hi"]).all()
    changed = dict(zip(zip(table["layer"], table["head"], strict=True), table["changed"],
                       strict=True))
    assert changed.pop((1, 2)) == "up" and changed.pop((2, 0)) == "down"
    assert set(changed.values()) == {"none"}


def test_paired_summary_validates_and_counts(paired_run):
    out, output = paired_run
    summary = json.loads((out / "summary.json").read_text())
    assert schema_errors(summary, "analyze-summary-v1.schema.json") == []
    assert summary["mode"] == "paired"
    heads = summary["heads"]
    assert (heads["up"], heads["down"], heads["none"]) == (1, 1, 10)
    assert summary["settings"]["n_boot"] == 1000 and summary["settings"]["seed"] == 7
    assert summary["stores"]["pre"]["model_name"] == "org/base-model"
    assert summary["stores"]["fine"]["path"].endswith("fine.h5")
    assert summary["hypothesis"]["targets"]["abs_log_ratio"]["spearman"]["ci_layers"] is not None
    assert summary["hypothesis_sentence"] == summary["hypothesis"]["sentence"]
    assert [(h["layer"], h["head"]) for h in summary["most_changed"]] == [(1, 2), (2, 0)]
    # Terminal: what was compared, the most changed heads, and the sentence.
    assert "base-model -> org/tuned-model" in output
    assert "1 up, 1 down, 10 not changed" in output
    assert "layer   1 head   2  ratio 1.3" in output
    assert summary["hypothesis_sentence"] in output


def test_paired_plots_exist(paired_run):
    out, _ = paired_run
    for name in ("heatmap_r_pre", "heatmap_r_fine", "heatmap_log_ratio", "scatter"):
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_one_store(planted, tmp_path):
    out = tmp_path / "single"
    result = cli("analyze", str(planted["pre"]), "-o", str(out), "--n-boot", "500")
    assert result.exit_code == 0, result.output
    table = pl.read_csv(out / "heads.csv")
    assert table.columns == list(SINGLE_COLUMNS) == ["layer", "head", "r", "r_lo", "r_hi", "n"]
    pre = _token_mean(planted["s_pre"], planted["n_tok"])
    np.testing.assert_allclose(table["r"].to_numpy(), pre.mean(0), rtol=1e-9)
    assert (table["n"] == N).all()
    assert ((table["r_lo"] < table["r"]) & (table["r"] < table["r_hi"])).all()
    summary = json.loads((out / "summary.json").read_text())
    assert schema_errors(summary, "analyze-summary-v1.schema.json") == []
    assert summary["mode"] == "single" and summary["hypothesis"] is None
    assert summary["stores"]["fine"] is None
    assert (out / "heatmap_r.png").exists()
    assert "strongest heads:" in result.output


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_reduction(planted, reduction):
    s, n_tok = planted["s_pre"], planted["n_tok"].astype(np.float64)[:, None, None]
    f64 = {k: v.astype(np.float64) for k, v in s.items()}
    expected = {
        "token-mean": f64["sum"] / n_tok,
        "rms": np.sqrt(f64["sumsq"] / n_tok),
        "frobenius": np.sqrt(f64["sumsq"]),
        "first": f64["first"],
        "last": f64["last"],
        "no-first": (f64["sum"] - f64["first"]) / (n_tok - 1),
    }[reduction]
    result = analyze_stores(planted["pre"], None, reduction=reduction, n_boot=200, plots=False)
    np.testing.assert_allclose(result.estimates.r.value, expected.reshape(N, -1).mean(0),
                               rtol=1e-9)


def test_no_first_leaves_out_one_token_texts(tmp_path):
    x = np.random.default_rng(0).uniform(1, 2, size=(20, 1, 2))
    n_tok = np.array([1, 1] + [5] * 18)
    store = write_store(tmp_path / "s.zarr", stats_from_values(x, n_tok), n_tokens=n_tok)
    result = analyze_stores(store, None, reduction="no-first", n_boot=200, plots=False)
    assert result.n_samples == 18 and result.excluded_samples == 2
    assert any("2 sample(s) have fewer than 2 counted token(s)" in w for w in result.warnings)
    assert result.table()["r"].is_not_null().all()


def test_site_out_and_bca_and_svg(planted, tmp_path):
    x = np.random.default_rng(3).uniform(1, 2, size=(30, 2, 2))
    n_tok = np.full(30, 4)
    stats_z, stats_out = stats_from_values(x, n_tok), stats_from_values(10 * x, n_tok)
    both = {**{("z", k): v for k, v in stats_z.items()},
            **{("out", k): v for k, v in stats_out.items()}}
    pre = write_store(tmp_path / "pre.zarr", both, n_tokens=n_tok)
    fine = write_store(tmp_path / "fine.zarr", both, n_tokens=n_tok, name="fine-model")
    out = tmp_path / "o"
    result = cli("analyze", str(pre), str(fine), "-o", str(out), "--site", "out",
                 "--ci-method", "bca", "--format", "svg", "--n-boot", "300")
    assert result.exit_code == 0, result.output
    table = pl.read_csv(out / "heads.csv")
    np.testing.assert_allclose(table["r_pre"].to_numpy(), 10 * x.reshape(30, -1).mean(0),
                               rtol=1e-6)
    assert sorted(p.name for p in out.glob("*.svg")) == [
        "heatmap_log_ratio.svg", "heatmap_r_fine.svg", "heatmap_r_pre.svg", "scatter.svg"]
    assert (out / "scatter.svg").read_text().lstrip().startswith("<?xml")


def test_degenerate_heads_are_flagged_not_nan(tmp_path):
    rng = np.random.default_rng(5)
    n = 32
    x_pre = rng.uniform(1, 2, size=(n, 2, 3))
    x_fine = x_pre * 1.2
    x_fine[:, 0, 0] = x_pre[:, 0, 0]  # identical in both stores
    x_pre[:, 0, 1] = x_fine[:, 0, 1] = 0.0  # a dead head: R = 0
    x_fine[[3, 7], 1, 1] = np.nan  # two non-finite samples
    x_pre[:, 1, 2] = np.inf  # nothing finite
    n_tok = np.full(n, 4)
    pre = write_store(tmp_path / "pre.zarr", stats_from_values(x_pre, n_tok), n_tokens=n_tok)
    fine = write_store(tmp_path / "fine.zarr", stats_from_values(x_fine, n_tok),
                       n_tokens=n_tok, name="fine-model")
    out = tmp_path / "o"
    result = cli("analyze", str(pre), str(fine), "-o", str(out), "--n-boot", "200")
    assert result.exit_code == 0, result.output
    csv = (out / "heads.csv").read_text()
    assert "NaN" not in csv and "inf" not in csv.lower()
    table = pl.read_csv(out / "heads.csv")
    row = {(r["layer"], r["head"]): r for r in table.iter_rows(named=True)}
    assert row[(0, 0)]["log_ratio"] == 0.0 and row[(0, 0)]["p_value"] == 1.0
    assert row[(0, 0)]["d_z"] is None
    assert row[(0, 1)]["ratio"] is None and row[(0, 1)]["r_pre"] == 0.0
    assert row[(1, 1)]["r_fine"] == pytest.approx(np.delete(x_fine[:, 1, 1], [3, 7]).mean() * 1,
                                                  rel=1e-6)
    assert row[(1, 2)]["r_pre"] is None and row[(1, 2)]["changed"] == "none"
    summary = json.loads((out / "summary.json").read_text())
    assert schema_errors(summary, "analyze-summary-v1.schema.json") == []
    flags = {(h["layer"], h["head"]): set(h["flags"]) for h in summary["flagged_heads"]}
    assert flags == {(0, 0): {"identical"}, (0, 1): {"identical", "nonpositive"},
                     (1, 1): {"nonfinite"}, (1, 2): {"no_data"}}
    for reason in ("identical", "nonpositive", "nonfinite", "no_data"):
        assert any(f"flagged {reason}" in w for w in summary["warnings"])
    assert "warning(s)" in result.output
    parquet = pl.read_parquet(out / "heads.parquet")
    nan_columns = parquet.select(pl.col(pl.Float64).is_nan().any()).row(0)
    assert len(nan_columns) == 18 and not any(nan_columns)


def test_results_do_not_depend_on_chunking_and_follow_the_seed(planted):
    common = {"n_boot": 300, "n_perm": 50, "plots": False}
    a = analyze_stores(planted["pre"], planted["fine"], seed=3, **common).table()
    b = analyze_stores(planted["pre"], planted["fine"], seed=3, chunk_rows=7, **common).table()
    c = analyze_stores(planted["pre"], planted["fine"], seed=4, **common).table()
    for column in ("r_pre_lo", "log_ratio_hi", "diff_lo"):
        # Equal up to float32 rounding in the products (the weights themselves are equal).
        np.testing.assert_allclose(b[column].to_numpy(), a[column].to_numpy(), rtol=1e-6,
                                   atol=1e-7)
        assert not np.allclose(c[column].to_numpy(), a[column].to_numpy(), rtol=1e-9)


def test_refusals_before_any_work(planted, tmp_path):
    out = str(tmp_path / "o")
    result = cli("analyze", str(planted["pre"]), "-o", out, "--n-boot", "10")
    assert result.exit_code == 2 and "--n-boot" in result.output
    result = cli("analyze", str(planted["pre"]), str(planted["pre"]), str(planted["pre"]),
                 "-o", out)
    assert result.exit_code == 2 and "one store or two" in result.output
    result = cli("analyze", str(planted["pre"]), "-o", out, "--align")
    assert result.exit_code == 2 and "--align pairs two stores" in result.output
    result = cli("analyze", str(planted["pre"]), "-o", out, "--ci", "1.5")
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_every_option_has_help_and_the_choices_match_the_library():
    command = main.commands["analyze"]
    assert "Example" in command.help
    for param in command.params:
        if param.param_type_name == "option":
            assert param.help, param.name
    assert analyze_cmd.SITE_CHOICES == SITES
    assert analyze_cmd.REDUCTION_CHOICES == REDUCTIONS
    assert analyze_cmd.CI_METHOD_CHOICES == CI_METHODS
    assert analyze_cmd.FORMAT_CHOICES == PLOT_FORMATS
    assert "analyze" in cli("--help").output


def test_a_store_against_itself(planted, tmp_path):
    result = analyze_stores(planted["pre"], planted["pre"], tmp_path / "o", n_boot=200,
                            n_perm=50)
    c = result.comparison
    assert (c.log_ratio.value == 0).all() and (c.p_value == 1).all()
    assert result.flags["identical"].all() and (c.changed == "none").all()
    assert "does not vary" in result.hypothesis.sentence
    assert any("same weight fingerprint" in w for w in result.warnings)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert schema_errors(summary, "analyze-summary-v1.schema.json") == []
    assert summary["hypothesis"]["targets"]["log_ratio"]["spearman"]["estimate"] is None
