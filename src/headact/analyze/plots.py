"""Heatmaps [layer x head] and the strength-versus-change scatter, drawn with matplotlib's Agg.

Figures are sized from the layer x head shape and laid out by matplotlib's constrained layout,
so titles, colour-bar labels and notes stay inside the image for 2 x 3 heads as for 80 x 64.
`draw_heatmap` draws onto axes it is given, so several heatmaps can share one figure (and one
colour scale, from `strength_norm` or `change_norm`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, CenteredNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from scipy.special import stdtrit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.image import AxesImage

    from headact.analyze.hypothesis import Correlation
    from headact.analyze.options import AnalysisOptions
    from headact.analyze.run import AnalysisResult

SITE_LABEL = {"z": "z (head output inside attention)", "out": "out (head's write to residual)"}

TITLE_SIZE = 10
LABEL_SIZE = 9
NOTE_SIZE = 8
DPI = 130
UNDEFINED_COLOUR = "0.82"
# Average width of a DejaVu Sans character in em, a little generous so wrapped text fits.
_EM_PER_CHAR = 0.62


def new_figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas (no pyplot state, no display) and constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def wrap(text: str | Sequence[str], width_in: float, size: float) -> str:
    """Text wrapped to about `width_in` inches at `size` points.

    A string is wrapped at spaces (each of its lines on its own); a sequence of phrases is
    joined with spaces, breaking only between phrases unless a phrase alone is too long.
    """
    chars = max(14, int(width_in * 72 / (_EM_PER_CHAR * size)))
    if isinstance(text, str):
        return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) or line
                         for line in text.split("\n"))
    lines: list[str] = []
    current = ""
    for phrase in text:
        joined = f"{current} {phrase}" if current else phrase
        if len(joined) <= chars:
            current = joined
            continue
        if current:
            lines.append(current)
        pieces = textwrap.wrap(phrase, chars, break_on_hyphens=False) or [phrase]
        lines.extend(pieces[:-1])
        current = pieces[-1]
    return "\n".join([*lines, current] if current else lines)


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _ticks(labels: np.ndarray, most: int = 32) -> tuple[np.ndarray, list[str]]:
    step = max(1, int(np.ceil(labels.shape[0] / most)))
    pos = np.arange(0, labels.shape[0], step)
    return pos, [str(int(labels[p])) for p in pos]


def _axes_inches(ax: Axes) -> tuple[float, float]:
    """The axes' width and height in inches (before layout: the subplot's nominal box)."""
    box = ax.get_position()
    width, height = ax.figure.get_size_inches()
    return box.width * width, box.height * height


def heatmap_extent(n_layers: int, n_heads: int, *, width: float = 8.5, height: float = 9.0,
                   cell: float = 0.42) -> tuple[float, float]:
    """Inches for the image of a [layer, head] grid: square cells of at most `cell` inches,
    shrunk to fit `width` x `height`; at least 2.6 x 1.4 inches."""
    side = min(cell, width / max(1, n_heads), height / max(1, n_layers))
    return max(2.6, side * n_heads), max(1.4, side * n_layers)


def strength_norm(*grids: np.ndarray) -> Normalize:
    """One linear colour scale over every finite value of `grids` (e.g. R_pre and R_fine)."""
    finite = np.concatenate([np.ravel(g)[np.isfinite(np.ravel(g))] for g in grids])
    if finite.size == 0:
        return Normalize(0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        pad = 0.5 * abs(low) if low else 0.5
        low, high = low - pad, high + pad
    return Normalize(low, high)


def change_norm(*grids: np.ndarray) -> CenteredNorm:
    """A colour scale centred on 0, reaching the largest finite |value| of `grids`."""
    finite = np.abs(np.concatenate([np.ravel(g)[np.isfinite(np.ravel(g))] for g in grids]))
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return CenteredNorm(vcenter=0.0, halfrange=limit)


def add_colorbar(image: ScalarMappable, axes: Axes | Sequence[Axes], label: str | Sequence[str],
                 *,
                 height_in: float | None = None) -> Colorbar:
    """A colour bar right of `axes` (one or several sharing it), about 0.16 inches wide, with
    `label` (a string or phrases, see `wrap`) wrapped to the bar's height so it stays readable
    and inside the figure."""
    group = list(np.ravel(axes)) if isinstance(axes, (Sequence, np.ndarray)) else [axes]
    if height_in is None:
        height_in = _axes_inches(group[0])[1]
    fig = group[0].figure
    bar = fig.colorbar(image, ax=group, aspect=max(8.0, height_in / 0.16), pad=0.02,
                       fraction=0.08)
    bar.set_label(wrap(label, max(1.3, height_in + 0.3), LABEL_SIZE), fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=NOTE_SIZE)
    return bar


def draw_heatmap(
    ax: Axes,
    values: np.ndarray,
    layers: np.ndarray,
    heads: np.ndarray,
    *,
    title: str = "",
    title_width: float | None = None,
    norm: Normalize | None = None,
    diverging: bool = False,
    colorbar_label: str | Sequence[str] | None = None,
    marks: np.ndarray | None = None,
    mark_note: str = "",
) -> AxesImage:
    """Draw values [layer, head] onto `ax` and return the image (for a shared colour bar).

    `norm` fixes the colour scale (default: `change_norm` when `diverging`, which uses a red-blue
    map centred on 0, else `strength_norm` with viridis). Undefined cells (NaN) are light grey.
    `marks` [layer, head] get a dot, explained by `mark_note` under the axes. A colour bar is
    drawn only with `colorbar_label`; `title_width` is the inches the title may be wrapped to.
    """
    values = np.asarray(values, dtype=np.float64)
    n_layers, n_heads = values.shape
    if norm is None:
        norm = change_norm(values) if diverging else strength_norm(values)
    cmap = colormaps["RdBu_r" if diverging else "viridis"].with_extremes(bad=UNDEFINED_COLOUR)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto",
                      interpolation="nearest")
    ax.set_xlabel("head", fontsize=LABEL_SIZE)
    ax.set_ylabel("layer", fontsize=LABEL_SIZE)
    ax.set_xticks(*_ticks(heads))
    ax.set_yticks(*_ticks(layers))
    ax.tick_params(labelsize=NOTE_SIZE if max(n_layers, n_heads) > 16 else LABEL_SIZE,
                   length=2)
    width_in, height_in = _axes_inches(ax)
    if title:
        fig_width = ax.figure.get_size_inches()[0]
        limit = title_width if title_width is not None else min(fig_width - 0.3, width_in + 1.5)
        ax.set_title(wrap(title, limit, TITLE_SIZE), fontsize=TITLE_SIZE)
    notes = []
    if marks is not None and np.any(marks):
        cell_pt = 72 * min(width_in / n_heads, height_in / n_layers)
        side = float(np.clip(0.18 * cell_pt, 1.8, 5.0))
        rows, cols = np.nonzero(marks)
        limits = ax.get_xlim(), ax.get_ylim()
        ax.scatter(cols, rows, s=side**2, c="0.1", marker="o", edgecolors="white",
                   linewidths=0.35 if side > 2.5 else 0.2)
        ax.set_xlim(limits[0])
        ax.set_ylim(limits[1])
        notes.append(f"\u25cf {mark_note}" if mark_note else "")
    if not np.isfinite(values).all():
        notes.append("grey: undefined")
    text = "; ".join(n for n in notes if n)
    if text:
        ax.annotate(wrap(text, max(2.0, width_in + 0.8), NOTE_SIZE), xy=(0.5, 0.0),
                    xycoords=ax.xaxis.label, xytext=(0, -3), textcoords="offset points",
                    ha="center", va="top", fontsize=NOTE_SIZE, color="0.15")
    if colorbar_label is not None:
        add_colorbar(image, ax, colorbar_label, height_in=height_in)
    return image


def heatmap_figure(
    values: np.ndarray,
    layers: np.ndarray,
    heads: np.ndarray,
    *,
    title: str,
    colorbar_label: str | Sequence[str],
    diverging: bool = False,
    norm: Normalize | None = None,
    marks: np.ndarray | None = None,
    mark_label: str = "",
) -> Figure:
    """One heatmap in a figure whose size follows the layer x head shape (see draw_heatmap)."""
    values = np.asarray(values, dtype=np.float64)
    n_layers, n_heads = values.shape
    img_w, img_h = heatmap_extent(n_layers, n_heads)
    width = img_w + 2.2
    title_lines = _lines(wrap(title, width - 0.3, TITLE_SIZE))
    has_note = (marks is not None and bool(np.any(marks))) or not np.isfinite(values).all()
    height = img_h + 0.8 + 0.19 * title_lines + (0.3 if has_note else 0.0)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    draw_heatmap(ax, values, layers, heads, title=title, title_width=width - 0.3, norm=norm,
                 diverging=diverging, colorbar_label=colorbar_label, marks=marks,
                 mark_note=mark_label)
    return fig


# --- what the figures say: shared by analyze's figures and the original API's heatmap ---


def describe_setting(options: AnalysisOptions) -> str:
    """The site and reduction, as a title line."""
    return f"site {SITE_LABEL.get(options.site, options.site)}, {options.reduction}"


def strength_label(symbol: str, options: AnalysisOptions, note: str | None = None
                   ) -> tuple[str, ...]:
    """What an R colour bar measures, as phrases for `wrap`:
    "R_pre = mean ‖y_h‖ (token-mean, site z); <note>"."""
    setting = f"({options.reduction}, site {options.site}){';' if note else ''}"
    return (f"{symbol} = mean \u2016y_h\u2016", setting, *((note,) if note else ()))


LOG_RATIO_LABEL = ("log(R_fine / R_pre),", "0 = no change;", "red grew, blue shrank")


def unchanged_note(options: AnalysisOptions) -> str:
    """What the dots on the log-ratio heatmap mean."""
    return (f"not changed: q > {options.fdr:g}, or CI not wholly beyond "
            f"\u00b1{100 * options.min_effect:g}%")


# --- the scatter -------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """A least-squares line with its pointwise confidence band for the mean, on `grid`."""

    slope: float
    grid: np.ndarray
    fit: np.ndarray
    half_width: np.ndarray | None


def least_squares_trend(x: np.ndarray, y: np.ndarray, level: float, points: int = 60
                        ) -> Trend | None:
    """y ~ a + b x by least squares and its analytic band, t(n-2) s sqrt(1/n + (x-x̄)²/Sxx)."""
    n = x.shape[0]
    if n < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    grid = np.linspace(x.min(), x.max(), points)
    fit = intercept + slope * grid
    half = None
    if n > 2:
        resid = y - (intercept + slope * x)
        s = np.sqrt(resid @ resid / (n - 2))
        sxx = np.sum((x - x.mean()) ** 2)
        t = float(stdtrit(n - 2, 0.5 + level / 2))
        half = t * s * np.sqrt(1.0 / n + (grid - x.mean()) ** 2 / sxx)
    return Trend(float(slope), grid, fit, half)


def _abs_interval(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The interval of |v| for v in [low, high]: from 0 when it holds 0."""
    a, b = np.abs(low), np.abs(high)
    holds_zero = (low <= 0) & (high >= 0)
    return np.where(holds_zero, 0.0, np.minimum(a, b)), np.maximum(a, b)


def _two(value: float) -> str:
    """Two decimals, without the sign of a value that rounds to zero."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _rho_text(corr: Correlation | None, level: float) -> str:
    if corr is None or corr.estimate is None:
        return "Spearman \u03c1: n/a"
    text = f"Spearman \u03c1 = {_two(corr.estimate)}"
    ci, over = (corr.ci_layers, "layers") if corr.ci_layers else (corr.ci_samples, "texts")
    if ci is not None:
        text += f", {100 * level:g}% CI {_two(ci[0])} to {_two(ci[1])} ({over})"
    if corr.permutation_p is not None:
        text += f", within-layer p = {corr.permutation_p:.3g}"
    return text


def _layer_colours(layers: np.ndarray) -> tuple[ListedColormap, Normalize]:
    """A sequential map over layers (viridis without its palest yellow), discrete when few."""
    cmap = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.88, 256)), name="layers")
    low, high = float(layers.min()), float(layers.max())
    if np.unique(layers).size <= 16:
        values = np.unique(layers).astype(np.float64)
        edges = np.concatenate([[values[0] - 0.5], (values[1:] + values[:-1]) / 2,
                                [values[-1] + 0.5]])
        return cmap, BoundaryNorm(edges, cmap.N)
    return cmap, Normalize(low, high)


def _scatter_panel(ax: Axes, x: np.ndarray, x_lo: np.ndarray, x_hi: np.ndarray,
                   y: np.ndarray, y_lo: np.ndarray, y_hi: np.ndarray, colours: np.ndarray,
                   changed: np.ndarray, level: float) -> Trend | None:
    many = x.shape[0] > 300
    xerr = np.nan_to_num(np.abs(np.vstack([x - x_lo, x_hi - x])))
    yerr = np.nan_to_num(np.abs(np.vstack([y - y_lo, y_hi - y])))
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.55",
                elinewidth=0.4 if many else 0.6, alpha=0.35 if many else 0.6, zorder=1)
    trend = least_squares_trend(x, y, level)
    if trend is not None:
        if trend.half_width is not None:
            ax.fill_between(trend.grid, trend.fit - trend.half_width,
                            trend.fit + trend.half_width, color="0.2", alpha=0.15, lw=0,
                            zorder=2)
        ax.plot(trend.grid, trend.fit, color="black", lw=1.3, zorder=4)
    size = 10 if many else 22
    ax.scatter(x[changed], y[changed], s=size, c=colours[changed], edgecolors="0.1",
               linewidths=0.4, zorder=3)
    ax.scatter(x[~changed], y[~changed], s=size, facecolors="white",
               edgecolors=colours[~changed], linewidths=0.9, zorder=3)
    ax.set_xlabel("log R_pre", fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=NOTE_SIZE)
    return trend


def scatter_figure(result: AnalysisResult, title: str | None = None) -> Figure:
    """log R_pre against the signed log-ratio and against |log-ratio|, two panels.

    Each panel: both intervals as error bars, points coloured by layer (filled: changed), the
    least-squares trend with its confidence band, and the panel's Spearman rho in its title.
    """
    c = result.comparison
    assert c is not None
    o = result.options
    valid = c.valid
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.log(c.r_pre.value[valid])
        x_lo, x_hi = np.log(c.r_pre.low[valid]), np.log(c.r_pre.high[valid])
    lr, lr_lo, lr_hi = (a[valid] for a in (c.log_ratio.value, c.log_ratio.low,
                                            c.log_ratio.high))
    abs_lo, abs_hi = _abs_interval(lr_lo, lr_hi)
    layer = result.head_layer[valid]
    changed = c.changed[valid] != "none"
    cmap, layer_norm = _layer_colours(layer if layer.size else result.layers)
    colours = cmap(layer_norm(layer))

    fig = new_figure(10.4, 5.6)
    left, right = fig.subplots(1, 2, sharex=True)
    hyp = result.hypothesis
    targets = {} if hyp is None else hyp.targets
    band = c.min_effect_log
    trends = {}
    for ax, key, (y, y_lo, y_hi), ylabel, name in (
        (left, "log_ratio", (lr, lr_lo, lr_hi), "log-ratio  log(R_fine / R_pre)",
         "signed change"),
        (right, "abs_log_ratio", (np.abs(lr), abs_lo, abs_hi), "|log-ratio|",
         "size of change"),
    ):
        trends[key] = _scatter_panel(ax, x, x_lo, x_hi, y, y_lo, y_hi, colours, changed, o.ci)
        target = targets.get(key)
        rho = _rho_text(target.spearman if target is not None else None, o.ci)
        ax.set_title(wrap(f"{name}: {ylabel.split('  ')[0]} vs log R_pre\n{rho}", 4.6,
                          LABEL_SIZE), fontsize=LABEL_SIZE)
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
        if band > 0:
            for edge in ((band, -band) if key == "log_ratio" else (band,)):
                ax.axhline(edge, color="0.35", lw=0.7, ls="--", zorder=0)
    left.axhline(0.0, color="0.3", lw=0.8, zorder=0)
    right.set_ylim(bottom=-0.02 * right.get_ylim()[1])

    bar = fig.colorbar(ScalarMappable(layer_norm, cmap), ax=[left, right], pad=0.01,
                       aspect=30)
    bar.set_label("layer", fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=NOTE_SIZE)
    bar.ax.yaxis.set_major_locator(MaxNLocator(nbins=min(12, np.unique(layer).size + 1),
                                               integer=True))
    bar.minorticks_off()

    n_changed = int(changed.sum())
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, mfc=cmap(0.5), mec="0.1", mew=0.4),
        Line2D([], [], ls="", marker="o", ms=5, mfc="white", mec=cmap(0.5), mew=0.9),
        Line2D([], [], color="0.55", lw=0.8, marker="+", ms=6),
        Line2D([], [], color="black", lw=1.3),
        Patch(color="0.2", alpha=0.15, lw=0),
        Line2D([], [], color="0.35", lw=0.7, ls="--"),
    ]
    slopes = [f"{t.slope:.2g}" for t in trends.values() if t is not None]
    labels = [
        f"changed ({n_changed})",
        f"not changed ({int(valid.sum()) - n_changed})",
        f"{100 * o.ci:g}% CIs",
        "least-squares trend" + (f" (slopes {', '.join(slopes)})" if slopes else ""),
        f"{100 * o.ci:g}% band of the trend",
        f"\u00b1{100 * o.min_effect:g}% change",
    ]
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=NOTE_SIZE,
               frameon=False)
    if title is None:
        assert result.fine is not None
        title = (f"Strength before vs change, {int(valid.sum())} heads: "
                 f"{result.pre.short_name} \u2192 {result.fine.short_name}\n"
                 f"{describe_setting(o)}")
    fig.suptitle(wrap(title, 10.0, TITLE_SIZE), fontsize=TITLE_SIZE)
    return fig


# --- all of a result's figures ------------------------------------------------------------


def figures_for(result: AnalysisResult) -> dict[str, Figure]:
    """Every figure of the result by file stem: heatmap_r, or heatmap_r_pre, heatmap_r_fine,
    heatmap_log_ratio and scatter."""
    o = result.options
    how = describe_setting(o)
    figures: dict[str, Figure] = {}
    if result.comparison is None:
        assert result.estimates is not None
        figures["heatmap_r"] = heatmap_figure(
            result.grid(result.estimates.r.value), result.layers, result.heads,
            title=f"R: strength per head\n{result.pre.short_name}\n{how}",
            colorbar_label=strength_label("R", o),
        )
        return figures
    c = result.comparison
    assert result.fine is not None
    pre, fine = result.pre.short_name, result.fine.short_name
    r_pre, r_fine = result.grid(c.r_pre.value), result.grid(c.r_fine.value)
    shared = strength_norm(r_pre, r_fine)
    figures["heatmap_r_pre"] = heatmap_figure(
        r_pre, result.layers, result.heads, norm=shared,
        title=f"R_pre: strength before fine-tuning\n{pre}\n{how}",
        colorbar_label=strength_label("R_pre", o, "same scale as R_fine"),
    )
    figures["heatmap_r_fine"] = heatmap_figure(
        r_fine, result.layers, result.heads, norm=shared,
        title=f"R_fine: strength after fine-tuning\n{fine}\n{how}",
        colorbar_label=strength_label("R_fine", o, "same scale as R_pre"),
    )
    figures["heatmap_log_ratio"] = heatmap_figure(
        result.grid(c.log_ratio.value), result.layers, result.heads, diverging=True,
        title=f"log(R_fine / R_pre): change of strength\n{fine} vs {pre}\n{how}",
        colorbar_label=LOG_RATIO_LABEL,
        marks=result.grid((c.changed == "none") & c.valid),
        mark_label=unchanged_note(o),
    )
    figures["scatter"] = scatter_figure(result)
    return figures


def write_plots(result: AnalysisResult, out_dir: Path, fmt: str = "png") -> dict[str, Path]:
    """Draw every plot of the result into `out_dir`; returns name -> path."""
    paths = {}
    for name, fig in figures_for(result).items():
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.06)
        paths[name] = path
    return paths
