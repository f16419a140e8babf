"""analyze's figures, checked through matplotlib's objects: one colour scale for R_pre and
R_fine, a change scale centred on 0, labelled axes, text that fits inside the figure, and the
two-panel scatter with intervals, trends and layer colours."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import CenteredNorm
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from scipy import stats
from store_factory import planted_pair, stats_from_values, write_store

from headact.analyze import AnalysisResult, analyze_stores
from headact.analyze.plots import (
    figures_for,
    heatmap_figure,
    least_squares_trend,
    wrap,
    write_plots,
)
from headact.original.results import comparison_heatmap_figure, write_comparison_heatmap

SHAPES = [(6, 12), (32, 32), (2, 3), (48, 8)]
FAST = {"n_boot": 200, "n_perm": 50, "plots": False}


def _analysis(n_layers: int, n_heads: int, folder) -> AnalysisResult:
    """A paired analysis of planted stores, about 30 % of the heads changed."""
    rng = np.random.default_rng(n_layers * n_heads)
    lr = np.where(rng.random((n_layers, n_heads)) < 0.3, rng.normal(0, 0.15, (n_layers, n_heads)),
                  0.0)
    x_pre, x_fine, _, _ = planted_pair(rng, 48, n_layers, n_heads, log_ratio=lr)
    n_tok = rng.integers(3, 20, size=48)
    pre = write_store(folder / "pre.zarr", stats_from_values(x_pre, n_tok), n_tokens=n_tok,
                      name="org/some-base-model")
    fine = write_store(folder / "fine.zarr", stats_from_values(x_fine, n_tok), n_tokens=n_tok,
                       name="org/some-base-model-tuned-on-reviews")
    return analyze_stores(pre, fine, **FAST)


@pytest.fixture(scope="module", params=SHAPES, ids=[f"{n}x{h}" for n, h in SHAPES])
def result(request, tmp_path_factory) -> AnalysisResult:
    n_layers, n_heads = request.param
    return _analysis(n_layers, n_heads, tmp_path_factory.mktemp(f"plots{n_layers}x{n_heads}"))


@pytest.fixture(scope="module")
def small_result(tmp_path_factory) -> AnalysisResult:
    return _analysis(2, 3, tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def figures(result) -> dict[str, Figure]:
    return figures_for(result)


def _panels(fig: Figure) -> list:
    """The figure's axes that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _colorbars(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _assert_text_inside(fig: Figure) -> None:
    """Every axes with its drawn decorations (tick labels, titles, axis and colour-bar labels,
    notes) and every figure-level text and legend lies inside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    parts = [(ax.get_label() or ax.get_title(), ax.get_tightbbox(renderer)) for ax in fig.axes]
    parts += [(t.get_text(), t.get_window_extent(renderer)) for t in fig.texts]
    parts += [("legend", legend.get_window_extent(renderer)) for legend in fig.legends]
    if fig._suptitle is not None:
        parts.append((fig._suptitle.get_text(), fig._suptitle.get_window_extent(renderer)))
    for name, ext in parts:
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1, name
        assert ext.y0 >= box.y0 - 1 and ext.y1 <= box.y1 + 1, name


def test_strength_heatmaps_share_one_scale(result, figures):
    c = result.comparison
    images = [_panels(figures[name])[0].images[0] for name in ("heatmap_r_pre", "heatmap_r_fine")]
    both = np.concatenate([c.r_pre.value, c.r_fine.value])
    for image in images:
        assert (image.norm.vmin, image.norm.vmax) == pytest.approx((both.min(), both.max()))
    labels = [_colorbars(figures[name])[0].get_ylabel().replace("\n", " ")
              for name in ("heatmap_r_pre", "heatmap_r_fine")]
    assert labels[0] == "R_pre = mean \u2016y_h\u2016 (token-mean, site z); same scale as R_fine"
    assert labels[1].endswith("same scale as R_pre")


def test_log_ratio_scale_is_centred_on_zero_and_marks_unchanged(result, figures):
    c = result.comparison
    ax = _panels(figures["heatmap_log_ratio"])[0]
    norm = ax.images[0].norm
    assert isinstance(norm, CenteredNorm) and norm.vcenter == 0
    assert norm.vmax == pytest.approx(-norm.vmin)
    assert norm.vmax == pytest.approx(np.abs(c.log_ratio.value).max())
    assert norm(0.0) == pytest.approx(0.5)
    dots = ax.collections[0].get_offsets()
    assert len(dots) == int(((c.changed == "none") & c.valid).sum())
    note = [t.get_text() for t in ax.texts]
    assert len(note) == 1 and "not changed: q > 0.05" in note[0].replace("\n", " ")


def test_heatmaps_are_labelled(result, figures):
    for name in ("heatmap_r_pre", "heatmap_r_fine", "heatmap_log_ratio"):
        ax = _panels(figures[name])[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("head", "layer")
        title = ax.get_title().replace("\n", " ")
        assert "org/some-base-model" in title and "site z" in title and "token-mean" in title
        assert _colorbars(figures[name])[0].get_ylabel()
    assert "0 = no change" in _colorbars(figures["heatmap_log_ratio"])[0].get_ylabel()


def test_text_fits_and_the_heatmap_fills_its_figure(figures):
    for fig in figures.values():
        _assert_text_inside(fig)
    fig = figures["heatmap_log_ratio"]
    ax = _panels(fig)[0]
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    assert axes_box.height >= 0.4 * fig.bbox.height and axes_box.width >= 0.5 * fig.bbox.width
    # The note sits just under the axes (below the head label), not at the figure's foot.
    note = ax.texts[0].get_window_extent(renderer)
    assert note.y1 < axes_box.y0 and axes_box.y0 - note.y1 < 0.6 * fig.dpi


def test_scatter_has_two_panels_with_rho_intervals_trend_and_layers(result, figures):
    fig = figures["scatter"]
    panels = _panels(fig)
    assert len(panels) == 2
    targets = result.hypothesis.targets
    for ax, key, ylabel in zip(panels, ("log_ratio", "abs_log_ratio"),
                               ("log-ratio", "|log-ratio|"), strict=True):
        assert ax.get_xlabel() == "log R_pre" and ax.get_ylabel().startswith(ylabel)
        assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)
        assert len(ax.lines) >= 1  # the trend
        rho = f"\u03c1 = {targets[key].spearman.estimate:.2f}".replace("-0.00", "0.00")
        assert rho in ax.get_title()
    bars = _colorbars(fig)
    assert len(bars) == 1 and bars[0].get_ylabel() == "layer"
    points = np.concatenate([c.get_offsets() for c in panels[0].collections
                             if len(c.get_offsets()) and c.get_offsets().shape[1] == 2
                             and type(c).__name__ == "PathCollection"])
    assert len(points) == int(result.comparison.valid.sum())


def test_comparison_heatmap_is_three_subplots_of_one_figure(result):
    fig = comparison_heatmap_figure(result)
    panels = _panels(fig)
    assert len(panels) == 3 and all(len(ax.images) == 1 for ax in panels)
    pre, fine, lr = (ax.images[0].norm for ax in panels)
    assert (pre.vmin, pre.vmax) == (fine.vmin, fine.vmax)
    assert isinstance(lr, CenteredNorm) and lr.vcenter == 0
    assert len(_colorbars(fig)) == 2  # one for R_pre and R_fine, one for the log-ratio
    _assert_text_inside(fig)


def test_files_png_and_svg(small_result, tmp_path):
    paths = write_plots(small_result, tmp_path, "svg")
    assert sorted(paths) == ["heatmap_log_ratio", "heatmap_r_fine", "heatmap_r_pre", "scatter"]
    for path in paths.values():
        assert path.read_text().lstrip().startswith("<?xml")
    buffer = io.BytesIO()
    comparison_heatmap_figure(small_result).savefig(buffer, format="svg")
    assert b"<svg" in buffer.getvalue()
    path = write_comparison_heatmap(small_result, tmp_path / "comparison_heatmap.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_undefined_cells_are_explained():
    values = np.array([[1.0, np.nan, 2.0], [0.5, 1.5, 3.0]])
    fig = heatmap_figure(values, np.arange(2), np.arange(3), title="t", colorbar_label="R")
    ax = _panels(fig)[0]
    assert [t.get_text() for t in ax.texts] == ["grey: undefined"]
    _assert_text_inside(fig)


def test_wrap_breaks_between_phrases():
    # 1 inch at 9 points holds 12 characters; the minimum is 14.
    assert wrap(("R_pre = mean", "(token-mean, site z);", "same"), 1.0, 9) == (
        "R_pre = mean\n(token-mean,\nsite z); same")
    assert wrap(("a b", "c d"), 5.0, 9) == "a b c d"
    assert wrap("one two\nthree", 5.0, 9) == "one two\nthree"


def test_trend_band_is_the_ols_confidence_band():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(scale=0.3, size=40)
    trend = least_squares_trend(x, y, 0.95)
    fit = stats.linregress(x, y)
    assert trend.slope == pytest.approx(fit.slope)
    resid = y - (fit.intercept + fit.slope * x)
    s = np.sqrt(resid @ resid / 38)
    sxx = ((x - x.mean()) ** 2).sum()
    expected = stats.t.ppf(0.975, 38) * s * np.sqrt(1 / 40 + (trend.grid - x.mean()) ** 2 / sxx)
    np.testing.assert_allclose(trend.half_width, expected, rtol=1e-10)
    assert least_squares_trend(np.ones(5), y[:5], 0.95) is None
