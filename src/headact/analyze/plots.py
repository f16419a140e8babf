"""Heatmaps [layer x head] and the strength-versus-change scatter, drawn with matplotlib's Agg."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from headact.analyze.reductions import DESCRIPTIONS

if TYPE_CHECKING:
    from headact.analyze.run import AnalysisResult

SITE_LABEL = {"z": "z (head output inside attention)", "out": "out (head's write to residual)"}


def _new_figure(width: float, height: float, *, left: float = 0.8, right: float = 0.3,
                top: float = 0.75, bottom: float = 0.65) -> Figure:
    """A Figure with its own Agg canvas (no pyplot state, no display) and margins in inches.

    Fixed margins instead of a layout engine: constrained layout doubled the drawing time.
    """
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height)
    return fig


def _ticks(labels: np.ndarray, most: int = 32) -> tuple[np.ndarray, list[str]]:
    step = max(1, int(np.ceil(labels.shape[0] / most)))
    pos = np.arange(0, labels.shape[0], step)
    return pos, [str(int(labels[p])) for p in pos]


def heatmap_figure(
    values: np.ndarray,
    layers: np.ndarray,
    heads: np.ndarray,
    *,
    title: str,
    colorbar_label: str,
    diverging: bool = False,
    marks: np.ndarray | None = None,
    mark_label: str = "",
) -> Figure:
    """values [layer, head] as an image; `marks` [layer, head] get a dot (e.g. not changed).

    Undefined cells (NaN) are light grey. A diverging map is centred on 0.
    """
    n_layers, n_heads = values.shape
    has_marks = marks is not None and bool(marks.any())
    fig = _new_figure(min(14.0, max(6.5, 5.0 + 0.2 * n_heads)),
                      min(12.0, max(3.8, 2.6 + 0.18 * n_layers)),
                      right=1.25, bottom=0.95 if has_marks else 0.65)
    ax = fig.add_subplot()
    data = np.ma.masked_invalid(values)
    if diverging:
        finite = np.abs(values[np.isfinite(values)])
        limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        cmap = colormaps["RdBu_r"].with_extremes(bad="lightgrey")
        image = ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto",
                          interpolation="nearest")
    else:
        cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
        image = ax.imshow(data, cmap=cmap, aspect="auto", interpolation="nearest")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    xpos, xlab = _ticks(heads)
    ypos, ylab = _ticks(layers)
    ax.set_xticks(xpos, xlab)
    ax.set_yticks(ypos, ylab)
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.06, pad=0.02)
    bar.set_label(colorbar_label)
    if marks is not None and has_marks:
        rows, cols = np.nonzero(marks)
        size = max(2.0, 60.0 / max(n_layers, n_heads))
        ax.scatter(cols, rows, s=size, c="0.25", marker="o", linewidths=0)
        handle = Line2D([], [], color="0.25", marker="o", linestyle="", markersize=4)
        fig.legend([handle], [mark_label], loc="lower center", frameon=False, fontsize=8)
    return fig


def scatter_figure(result: AnalysisResult, title: str) -> Figure:
    """log R_pre against the log-ratio, with both intervals as error bars and an OLS trend."""
    c = result.comparison
    assert c is not None
    valid = c.valid
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.log(c.r_pre.value)
        x_lo, x_hi = np.log(c.r_pre.low), np.log(c.r_pre.high)
    y, y_lo, y_hi = c.log_ratio.value, c.log_ratio.low, c.log_ratio.high
    fig = _new_figure(7.5, 5.8, top=0.85, bottom=0.6)
    ax = fig.add_subplot()
    styles = {"up": ("tab:red", "up"), "down": ("tab:blue", "down"),
              "none": ("0.55", "not changed")}
    for state, (colour, label) in styles.items():
        sel = valid & (c.changed == state)
        if not sel.any():
            continue
        xerr = np.vstack([x[sel] - x_lo[sel], x_hi[sel] - x[sel]])
        yerr = np.vstack([y[sel] - y_lo[sel], y_hi[sel] - y[sel]])
        ax.errorbar(x[sel], y[sel], xerr=np.nan_to_num(np.abs(xerr)),
                    yerr=np.nan_to_num(np.abs(yerr)), fmt="o", ms=3, color=colour,
                    ecolor=colour, elinewidth=0.6, alpha=0.8 if state != "none" else 0.5,
                    label=f"{label} ({int(sel.sum())})")
    if valid.sum() >= 2 and np.ptp(x[valid]) > 0:
        slope, intercept = np.polyfit(x[valid], y[valid], 1)
        grid = np.linspace(x[valid].min(), x[valid].max(), 50)
        ax.plot(grid, intercept + slope * grid, color="black", lw=1.2,
                label=f"least-squares trend (slope {slope:.3g})")
    band = c.min_effect_log
    ax.axhline(0.0, color="0.3", lw=0.8)
    if band > 0:
        for edge in (band, -band):
            ax.axhline(edge, color="0.3", lw=0.6, ls="--")
    ax.set_xlabel("log R_pre")
    ax.set_ylabel("log-ratio  log(R_fine / R_pre)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig


def write_plots(result: AnalysisResult, out_dir: Path, fmt: str = "png") -> dict[str, Path]:
    """Draw every plot of the result into `out_dir`; returns name -> path."""
    o = result.options
    how = f"site {SITE_LABEL.get(o.site, o.site)}, {o.reduction}"
    unit = f"mean over texts of the {DESCRIPTIONS[o.reduction]}"
    figures: dict[str, Figure] = {}
    if result.comparison is None:
        assert result.estimates is not None
        figures["heatmap_r"] = heatmap_figure(
            result.grid(result.estimates.r.value), result.layers, result.heads,
            title=f"R per head: {result.pre.short_name}\n{how}",
            colorbar_label=f"R ({unit})",
        )
    else:
        c = result.comparison
        assert result.fine is not None
        pre, fine = result.pre.short_name, result.fine.short_name
        figures["heatmap_r_pre"] = heatmap_figure(
            result.grid(c.r_pre.value), result.layers, result.heads,
            title=f"R_pre (before fine-tuning): {pre}\n{how}",
            colorbar_label=f"R_pre ({unit})",
        )
        figures["heatmap_r_fine"] = heatmap_figure(
            result.grid(c.r_fine.value), result.layers, result.heads,
            title=f"R_fine (after fine-tuning): {fine}\n{how}",
            colorbar_label=f"R_fine ({unit})",
        )
        figures["heatmap_log_ratio"] = heatmap_figure(
            result.grid(c.log_ratio.value), result.layers, result.heads,
            title=f"log-ratio log(R_fine / R_pre): {fine} vs {pre}\n{how}",
            colorbar_label="log(R_fine / R_pre): red grew, blue shrank",
            diverging=True,
            marks=result.grid((c.changed == "none") & c.valid),
            mark_label=(f"dot: not changed (q > {o.fdr:g} or |ratio - 1| within "
                        f"{100 * o.min_effect:g}%)"),
        )
        rho = None
        if result.hypothesis is not None:
            rho = result.hypothesis.targets["log_ratio"].spearman.estimate
        rho_text = f"\nSpearman rho(log R_pre, log-ratio) = {rho:.2f}" if rho is not None else ""
        figures["scatter"] = scatter_figure(
            result, f"Strength before vs change: {pre} -> {fine}\n{how}{rho_text}"
        )
    paths = {}
    for name, fig in figures.items():
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=130)
        paths[name] = path
    return paths
