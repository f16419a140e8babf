"""The original tool's JSON files and heatmap, built from analyze's result objects.

`activations-v1` (one model's R_h per head) and `comparison-v1` (pre against fine) are
documented in the README and have JSON Schemas in `schemas/`. Everything here takes what
`headact.analyze` computed; nothing is estimated a second time. No torch.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headact import __version__
from headact.store.backends import json_safe
from headact.store.schemas import schema_errors

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from headact.analyze import AnalysisOptions, AnalysisResult, HeadEstimates

ACTIVATIONS_SCHEMA = "activations-v1.schema.json"
COMPARISON_SCHEMA = "comparison-v1.schema.json"

DEFINITION = (
    "R_h = mean over samples of x_h, where x_h = (sum over the sample's counted tokens of "
    "||y_h,t||_2) / n_tokens and y_h is head h's output inside attention (site z: the input of "
    "the attention output projection, split into heads)"
)


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _grid(values: np.ndarray, n_layers: int, n_heads: int) -> list[list[float | None]]:
    rows = np.asarray(values, dtype=np.float64).reshape(n_layers, n_heads)
    return [[_num(v) for v in row] for row in rows]


def _settings(options: AnalysisOptions, *, paired: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "site": options.site,
        "reduction": options.reduction,
        "ci": options.ci,
        "ci_method": options.ci_method,
        "n_boot": options.n_boot,
        "seed": options.seed,
    }
    if paired:
        settings.update(fdr=options.fdr, min_effect=options.min_effect, n_perm=options.n_perm)
    return settings


def activations_document(
    *,
    model_name: str,
    layers: np.ndarray | list[int],
    heads: np.ndarray | list[int],
    estimates: HeadEstimates,
    options: AnalysisOptions,
    num_layers: int | None,
    num_heads: int | None,
    num_samples: int,
) -> dict[str, Any]:
    """One model's R_h per head (activations-v1) from analyze's per-head estimates."""
    layers = [int(v) for v in layers]
    heads = [int(v) for v in heads]
    r = estimates.r
    stats = []
    for k, (layer, head) in enumerate((layer, head) for layer in layers for head in heads):
        stats.append({
            "layer_idx": layer,
            "head_idx": head,
            "R_h": _num(r.value[k]),
            "ci_low": _num(r.low[k]),
            "ci_high": _num(r.high[k]),
            "std": _num(estimates.sd[k]),
            "num_samples": int(estimates.n[k]),
        })
    return {
        "schema": "activations-v1",
        "headact_version": __version__,
        "model_name": model_name,
        "definition": DEFINITION if options.site == "z" and options.reduction == "token-mean"
        else f"R_h = mean over samples of the {options.reduction} of ||y_h||_2 at site "
             f"{options.site}",
        "settings": _settings(options, paired=False),
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_samples": int(num_samples),
        "layers": layers,
        "heads": heads,
        "R_h": _grid(r.value, len(layers), len(heads)),
        "stats": stats,
    }


def comparison_document(result: AnalysisResult) -> dict[str, Any]:
    """Pre against fine per head (comparison-v1) from a paired analysis result."""
    c = result.comparison
    if c is None or result.fine is None:
        raise ValueError("comparison_document needs a paired (pre and fine) analysis result")
    summary = result.summary()
    n_layers, n_heads = result.layers.shape[0], result.heads.shape[0]
    per_head = []
    for k in range(c.n_heads):
        per_head.append({
            "layer_idx": int(result.head_layer[k]),
            "head_idx": int(result.head_index[k]),
            "R_pre": _num(c.r_pre.value[k]),
            "R_pre_ci": [_num(c.r_pre.low[k]), _num(c.r_pre.high[k])],
            "R_fine": _num(c.r_fine.value[k]),
            "R_fine_ci": [_num(c.r_fine.low[k]), _num(c.r_fine.high[k])],
            "difference": _num(c.diff.value[k]),
            "difference_ci": [_num(c.diff.low[k]), _num(c.diff.high[k])],
            "ratio": _num(c.ratio.value[k]),
            "ratio_ci": [_num(c.ratio.low[k]), _num(c.ratio.high[k])],
            "log_ratio": _num(c.log_ratio.value[k]),
            "log_ratio_ci": [_num(c.log_ratio.low[k]), _num(c.log_ratio.high[k])],
            "p_value": _num(c.p_value[k]),
            "q_value": _num(c.q_value[k]),
            "d_z": _num(c.d_z[k]),
            "changed": str(c.changed[k]),
            "num_samples": int(c.n[k]),
        })
    return json_safe({
        "schema": "comparison-v1",
        "headact_version": __version__,
        "pre_model": result.pre.model_name,
        "fine_model": result.fine.model_name,
        "definition": DEFINITION,
        "settings": _settings(result.options, paired=True),
        "num_samples": int(result.n_samples),
        "layers": [int(v) for v in result.layers],
        "heads": [int(v) for v in result.heads],
        "R_pre": _grid(c.r_pre.value, n_layers, n_heads),
        "R_fine": _grid(c.r_fine.value, n_layers, n_heads),
        "differences": _grid(c.diff.value, n_layers, n_heads),
        "ratios": _grid(c.ratio.value, n_layers, n_heads),
        "log_ratios": _grid(c.log_ratio.value, n_layers, n_heads),
        "changed": {key: int(v) for key, v in c.counts().items()},
        "per_head": per_head,
        "hypothesis": summary["hypothesis"],
        "hypothesis_sentence": summary["hypothesis_sentence"],
        "warnings": list(result.warnings),
    })


def write_json(document: dict[str, Any], path: str | os.PathLike, schema: str) -> Path:
    """Check `document` against its schema, then write it as indented JSON."""
    document = json_safe(document)
    problems = schema_errors(document, schema)
    if problems:  # a bug in headact, not in the user's data
        raise RuntimeError(f"{schema} document is off its schema: " + "; ".join(problems[:5]))
    target = Path(path)
    target.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return target


def comparison_heatmap_figure(result: AnalysisResult) -> Figure:
    """R_pre, R_fine (one colour scale, one colour bar) and the log-ratio as three subplots."""
    from headact.analyze.plots import (
        LOG_RATIO_LABEL,
        TITLE_SIZE,
        add_colorbar,
        describe_setting,
        draw_heatmap,
        heatmap_extent,
        new_figure,
        strength_label,
        strength_norm,
        unchanged_note,
        wrap,
    )

    c = result.comparison
    if c is None or result.fine is None:
        raise ValueError("the comparison heatmap needs a paired (pre and fine) analysis result")
    o = result.options
    how = describe_setting(o)
    pre, fine = result.pre.short_name, result.fine.short_name
    layers, heads = result.layers, result.heads
    img_w, img_h = heatmap_extent(layers.shape[0], heads.shape[0], width=5.0, height=7.0,
                                  cell=0.36)
    titles = [f"R_pre: strength before fine-tuning\n{pre}\n{how}",
              f"R_fine: strength after fine-tuning\n{fine}\n{how}",
              f"log(R_fine / R_pre): change of strength\n{fine} vs {pre}\n{how}"]
    title_width = img_w + 0.9
    title_lines = max(wrap(t, title_width, TITLE_SIZE).count("\n") + 1 for t in titles)
    fig = new_figure(3 * img_w + 5.4, img_h + 1.1 + 0.19 * title_lines)
    axes = fig.subplots(1, 3)
    r_pre, r_fine = result.grid(c.r_pre.value), result.grid(c.r_fine.value)
    shared = strength_norm(r_pre, r_fine)
    draw_heatmap(axes[0], r_pre, layers, heads, title=titles[0], title_width=title_width,
                 norm=shared)
    image = draw_heatmap(axes[1], r_fine, layers, heads, title=titles[1],
                         title_width=title_width, norm=shared)
    add_colorbar(image, [axes[0], axes[1]],
                 strength_label("R_pre and R_fine", o, "one scale for both"), height_in=img_h)
    draw_heatmap(axes[2], result.grid(c.log_ratio.value), layers, heads, title=titles[2],
                 title_width=title_width, diverging=True, colorbar_label=LOG_RATIO_LABEL,
                 marks=result.grid((c.changed == "none") & c.valid), mark_note=unchanged_note(o))
    return fig


def write_comparison_heatmap(result: AnalysisResult, path: str | os.PathLike) -> Path:
    """R_pre, R_fine and log-ratio heatmaps side by side in one PNG (comparison_heatmap_figure)."""
    target = Path(path)
    comparison_heatmap_figure(result).savefig(target, format="png", dpi=110,
                                              bbox_inches="tight", pad_inches=0.06)
    return target
