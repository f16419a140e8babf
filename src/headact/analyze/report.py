"""Turn an analysis result into the table, summary.json, plots and the terminal summary."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from headact import __version__
from headact.analyze.comparison import FLAG_REASONS
from headact.analyze.hypothesis import HypothesisResult
from headact.store.backends import json_safe
from headact.store.schemas import schema_errors

if TYPE_CHECKING:
    from headact.analyze.run import AnalysisResult, StoreInfo

SUMMARY_SCHEMA = "analyze-summary-v1.schema.json"
PAIRED_COLUMNS: tuple[str, ...] = (
    "layer", "head", "r_pre", "r_pre_lo", "r_pre_hi", "r_fine", "r_fine_lo", "r_fine_hi",
    "diff", "diff_lo", "diff_hi", "ratio", "ratio_lo", "ratio_hi", "log_ratio", "log_ratio_lo",
    "log_ratio_hi", "p_value", "q_value", "d_z", "changed",
)
SINGLE_COLUMNS: tuple[str, ...] = ("layer", "head", "r", "r_lo", "r_hi", "n")
TABLE_CSV, TABLE_PARQUET, SUMMARY_JSON = "heads.csv", "heads.parquet", "summary.json"


def heads_table(result: AnalysisResult) -> pl.DataFrame:
    """One row per head, the fixed columns in their fixed order; undefined values are null."""
    columns: dict[str, Any] = {
        "layer": result.head_layer.astype(np.int64),
        "head": result.head_index.astype(np.int64),
    }
    if result.comparison is not None:
        c = result.comparison
        for name, est in (("r_pre", c.r_pre), ("r_fine", c.r_fine), ("diff", c.diff),
                          ("ratio", c.ratio), ("log_ratio", c.log_ratio)):
            columns[name] = est.value
            columns[f"{name}_lo"] = est.low
            columns[f"{name}_hi"] = est.high
        columns["p_value"] = c.p_value
        columns["q_value"] = c.q_value
        columns["d_z"] = c.d_z
        columns["changed"] = c.changed.astype(str)
        order = PAIRED_COLUMNS
    else:
        assert result.estimates is not None
        e = result.estimates
        columns.update(r=e.r.value, r_lo=e.r.low, r_hi=e.r.high, n=e.n.astype(np.int64))
        order = SINGLE_COLUMNS
    frame = pl.DataFrame({name: columns[name] for name in order})
    floats = [name for name, dtype in frame.schema.items() if dtype == pl.Float64]
    # Infinite or NaN values become null: a reader sees "missing", never a fake number.
    return frame.with_columns(
        [pl.when(pl.col(f).is_finite()).then(pl.col(f)).otherwise(None).alias(f) for f in floats]
    )


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _pair(ci: tuple[float, float] | None) -> list[float | None] | None:
    return None if ci is None else [_num(ci[0]), _num(ci[1])]


def _store(info: StoreInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    m = info.metadata
    return {
        "path": info.path,
        "model_name": info.model_name,
        "status": info.status,
        "n_samples": info.n_samples,
        "n_done": info.n_done,
        "format_version": m.get("format_version"),
        "created_at": m.get("created_at"),
        "completed_at": m.get("completed_at"),
        "model": m.get("model"),
        "tokenizer": m.get("tokenizer"),
        "data": m.get("data"),
        "run": m.get("run"),
    }


def _hypothesis(h: HypothesisResult | None) -> dict[str, Any] | None:
    if h is None:
        return None
    targets = {}
    for name, t in h.targets.items():
        targets[name] = {
            "spearman": {"estimate": _num(t.spearman.estimate),
                         "ci_samples": _pair(t.spearman.ci_samples),
                         "ci_layers": _pair(t.spearman.ci_layers),
                         "permutation_p": _num(t.spearman.permutation_p)},
            "kendall": {"estimate": _num(t.kendall.estimate),
                        "ci_samples": _pair(t.kendall.ci_samples),
                        "ci_layers": _pair(t.kendall.ci_layers)},
            "partial_spearman_given_layer": {"estimate": _num(t.partial.estimate),
                                             "p_value": _num(t.partial.p_value),
                                             "ci_samples": _pair(t.partial.ci_samples)},
            "split_sample": {"spearman": _num(t.split_sample.spearman),
                             "kendall": _num(t.split_sample.kendall),
                             "spearman_folds": [_num(v) for v in t.split_sample.spearman_folds],
                             "kendall_folds": [_num(v) for v in t.split_sample.kendall_folds]},
        }
    k = h.top_k
    return {
        "x": "log_r_pre",
        "n_heads": h.n_heads,
        "n_layers": h.n_layers,
        "ci": h.level,
        "n_permutations": h.n_perm,
        "targets": targets,
        "top_k": {"k": k.k, "overlap": k.overlap, "expected_overlap": _num(k.expected_overlap),
                  "overlap_fraction": _num(k.overlap_fraction),
                  "precision_at_k": _num(k.precision_at_k), "base_rate": _num(k.base_rate)},
        "sentence": h.sentence,
        "notes": list(h.notes),
    }


def _flagged(result: AnalysisResult) -> list[dict[str, Any]]:
    flags = result.flags
    if not flags:
        return []
    any_flag = np.zeros(result.head_layer.shape[0], dtype=bool)
    for mask in flags.values():
        any_flag |= mask
    rows = []
    for k in np.flatnonzero(any_flag):
        rows.append({"layer": int(result.head_layer[k]), "head": int(result.head_index[k]),
                     "flags": [name for name, mask in flags.items() if mask[k]]})
    return rows


def most_changed(result: AnalysisResult, limit: int = 10) -> list[dict[str, Any]]:
    """The changed heads with the largest |log-ratio|, most changed first."""
    c = result.comparison
    if c is None:
        return []
    idx = np.flatnonzero(c.changed != "none")
    idx = idx[np.argsort(-np.abs(c.log_ratio.value[idx]), kind="stable")][:limit]
    return [{"layer": int(result.head_layer[k]), "head": int(result.head_index[k]),
             "ratio": _num(c.ratio.value[k]), "ratio_lo": _num(c.ratio.low[k]),
             "ratio_hi": _num(c.ratio.high[k]), "log_ratio": _num(c.log_ratio.value[k]),
             "q_value": _num(c.q_value[k]), "changed": str(c.changed[k])} for k in idx]


def strongest(result: AnalysisResult, limit: int = 10) -> list[dict[str, Any]]:
    """The heads with the largest R (one store), strongest first."""
    e = result.estimates
    if e is None:
        return []
    r = np.where(np.isfinite(e.r.value), e.r.value, -np.inf)
    idx = np.argsort(-r, kind="stable")[:limit]
    return [{"layer": int(result.head_layer[k]), "head": int(result.head_index[k]),
             "r": _num(e.r.value[k]), "r_lo": _num(e.r.low[k]), "r_hi": _num(e.r.high[k])}
            for k in idx if np.isfinite(e.r.value[k])]


def summary_dict(result: AnalysisResult) -> dict[str, Any]:
    """Settings, both stores' provenance, head counts, hypothesis statistics and warnings."""
    o = result.options
    settings = o.to_dict()
    settings.pop("chunk_rows", None)
    settings["min_effect_log"] = float(np.log1p(o.min_effect))
    p = result.pairing
    heads: dict[str, Any] = {
        "layers": [int(v) for v in result.layers],
        "heads": [int(v) for v in result.heads],
        "n_heads": int(result.head_layer.shape[0]),
        "n_flagged": len(_flagged(result)),
    }
    if result.comparison is not None:
        heads.update(result.comparison.counts())
        heads["n_valid"] = int(result.comparison.valid.sum())
    else:
        assert result.estimates is not None
        heads["n_valid"] = int(np.isfinite(result.estimates.r.value).sum())
    outputs = {name: path.name for name, path in result.outputs.items()}
    return {
        "schema": "analyze-summary-v1",
        "headact_version": __version__,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        .replace("+00:00", "Z"),
        "mode": "paired" if result.paired else "single",
        "settings": settings,
        "stores": {"pre": _store(result.pre), "fine": _store(result.fine)},
        "samples": {
            "analyzed": result.n_samples,
            "pre_store": p.n_pre,
            "fine_store": p.n_fine,
            "aligned": p.aligned,
            "excluded_few_tokens": result.excluded_samples,
            "token_hash_differs": p.token_hash_differs,
        },
        "provenance_differences": [{"field": d.field, "pre": d.pre, "fine": d.fine}
                                   for d in p.differences],
        "heads": heads,
        "flagged_heads": _flagged(result),
        "flag_reasons": dict(FLAG_REASONS),
        "most_changed": most_changed(result),
        "strongest": strongest(result),
        "hypothesis": _hypothesis(result.hypothesis),
        "hypothesis_sentence": result.hypothesis.sentence if result.hypothesis else None,
        "warnings": list(result.warnings),
        "outputs": outputs,
    }


def write_outputs(result: AnalysisResult, out_dir: Path) -> dict[str, Path]:
    """Write the table (CSV, Parquet), the plots and summary.json into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = heads_table(result)
    outputs = {"table_csv": out_dir / TABLE_CSV, "table_parquet": out_dir / TABLE_PARQUET}
    table.write_csv(outputs["table_csv"])
    table.write_parquet(outputs["table_parquet"])
    if result.options.plots:
        from headact.analyze.plots import write_plots

        outputs.update(write_plots(result, out_dir, result.options.plot_format))
    outputs["summary"] = out_dir / SUMMARY_JSON
    result.outputs = outputs
    summary = json_safe(summary_dict(result))
    problems = schema_errors(summary, SUMMARY_SCHEMA)
    if problems:  # a bug in headact, not in the user's data
        raise RuntimeError("summary.json is off its schema: " + "; ".join(problems[:5]))
    outputs["summary"].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n",
                                  encoding="utf-8")
    return outputs


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def terminal_summary(result: AnalysisResult, limit: int = 10) -> str:
    """A few lines for the terminal: what was compared, the most changed heads, the sentence."""
    o = result.options
    lines = []
    n_heads = result.head_layer.shape[0]
    if result.comparison is not None and result.fine is not None:
        counts = result.comparison.counts()
        lines.append(
            f"{result.pre.short_name} -> {result.fine.short_name}: site {o.site}, "
            f"{o.reduction}, {result.n_samples} samples, {n_heads} heads, {o.n_boot} resamples"
        )
        lines.append(
            f"changed (q <= {o.fdr:g} and |ratio - 1| beyond {100 * o.min_effect:g}%): "
            f"{counts['up']} up, {counts['down']} down, {counts['none']} not changed"
        )
        top = most_changed(result, limit)
        if top:
            lines.append("most changed heads:")
            for row in top:
                lines.append(
                    f"  layer {row['layer']:>3} head {row['head']:>3}  ratio "
                    f"{_fmt(row['ratio'])} ({_fmt(row['ratio_lo'])} to {_fmt(row['ratio_hi'])})"
                    f"  q {_fmt(row['q_value'], 2)}  {row['changed']}"
                )
        if result.hypothesis is not None:
            lines.append(result.hypothesis.sentence)
    else:
        lines.append(
            f"{result.pre.short_name}: site {o.site}, {o.reduction}, {result.n_samples} "
            f"samples, {n_heads} heads, {o.n_boot} resamples"
        )
        lines.append("strongest heads:")
        for row in strongest(result, limit):
            lines.append(f"  layer {row['layer']:>3} head {row['head']:>3}  R {_fmt(row['r'])} "
                         f"({_fmt(row['r_lo'])} to {_fmt(row['r_hi'])})")
    if result.warnings:
        lines.append(f"{len(result.warnings)} warning(s); see summary.json")
    if result.outputs:
        folder = next(iter(result.outputs.values())).parent
        lines.append(f"wrote {len(result.outputs)} files to {folder}")
    return "\n".join(lines)
