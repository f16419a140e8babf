"""The library entry point: stores in, per-head estimates, hypothesis and (optionally) files out."""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headact.analyze.accumulate import Accumulated, Accumulator
from headact.analyze.comparison import (
    FLAG_REASONS,
    HeadComparison,
    HeadEstimates,
    compare_heads,
    estimate_heads,
)
from headact.analyze.hypothesis import HypothesisResult, relate_strength_to_change
from headact.analyze.options import AnalysisOptions
from headact.analyze.pairing import Pairing, pair_stores, select_rows
from headact.analyze.reductions import MIN_TOKENS
from headact.analyze.resampling import WEIGHT_BLOCK, BootstrapWeights
from headact.analyze.values import iter_value_chunks
from headact.errors import HeadactError, StoreError
from headact.store import Store, open_store
from headact.store.raw import RawNormView

if TYPE_CHECKING:
    import polars as pl

logger = logging.getLogger("headact.analyze")

# Bounds on one chunk: values [chunk, heads] and weights [n_boot, chunk] stay near 32-64 MB.
_VALUE_CELLS = 4 << 20
_WEIGHT_CELLS = 16 << 20


@dataclass(frozen=True)
class StoreInfo:
    """Where a store came from, as the summary reports it."""

    path: str
    model_name: str
    status: str
    n_samples: int
    n_done: int
    metadata: dict[str, Any]

    @classmethod
    def of(cls, store: Store) -> StoreInfo:
        return cls(str(store.path), store.model_name, store.status, store.n_samples,
                   int(store.done().sum()), store.metadata)

    @property
    def short_name(self) -> str:
        """The last two parts of a path or hub id, enough to tell models apart in a title."""
        parts = [p for p in self.model_name.replace("\\", "/").split("/") if p]
        return "/".join(parts[-2:]) if parts else self.model_name


@dataclass
class AnalysisResult:
    """Per-head results as arrays (flattened layer-major: k = layer_pos * n_heads + head_pos)."""

    options: AnalysisOptions
    pre: StoreInfo
    fine: StoreInfo | None
    layers: np.ndarray
    heads: np.ndarray
    pairing: Pairing
    n_samples: int
    excluded_samples: int
    estimates: HeadEstimates | None = None
    comparison: HeadComparison | None = None
    hypothesis: HypothesisResult | None = None
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        return self.comparison is not None

    @property
    def head_layer(self) -> np.ndarray:
        """Layer index of each flattened head."""
        return np.repeat(self.layers, self.heads.shape[0])

    @property
    def head_index(self) -> np.ndarray:
        """Head index of each flattened head."""
        return np.tile(self.heads, self.layers.shape[0])

    @property
    def flags(self) -> dict[str, np.ndarray]:
        found = self.comparison if self.comparison is not None else self.estimates
        return found.flags if found is not None else {}

    def grid(self, values: np.ndarray) -> np.ndarray:
        """A per-head array reshaped to [layer, head]."""
        return np.asarray(values).reshape(self.layers.shape[0], self.heads.shape[0])

    def table(self) -> pl.DataFrame:
        """The per-head table exactly as heads.csv / heads.parquet hold it."""
        from headact.analyze.report import heads_table

        return heads_table(self)

    def summary(self) -> dict[str, Any]:
        """The summary exactly as summary.json holds it."""
        from headact.analyze.report import summary_dict

        return summary_dict(self)


def chunk_rows_for(n_heads: int, n_boot: int) -> int:
    """Samples per chunk so that the chunk's values and weights stay a few tens of MB."""
    rows = min(_VALUE_CELLS // max(1, n_heads), _WEIGHT_CELLS // max(1, n_boot))
    if rows >= WEIGHT_BLOCK:
        rows -= rows % WEIGHT_BLOCK
    return max(64, rows)


def _check_site(store: Store, site: str) -> None:
    if site not in store.sites:
        raise StoreError(
            f"{store.path} has no site {site!r} (it holds {', '.join(store.sites)}); pass "
            f"--site {store.sites[0]}."
        )


def _exclude_short(pairing: Pairing, pre: Store, fine: Store | None, reduction: str
                   ) -> tuple[Pairing, int]:
    """Drop samples with too few tokens for the reduction (e.g. 1 token for no-first)."""
    need = MIN_TOKENS[reduction]
    keep = pre.samples().n_tokens[pairing.pre_rows] >= need
    if fine is not None and pairing.fine_rows is not None:
        keep &= fine.samples().n_tokens[pairing.fine_rows] >= need
    return pairing.subset(keep), int((~keep).sum())


def _accumulate(pre: Store, fine: Store | None, pairing: Pairing, options: AnalysisOptions,
                n_heads: int, progress: bool = False) -> Accumulated:
    from tqdm.auto import tqdm

    weights = BootstrapWeights(pairing.n_samples, options.n_boot, options.seed)
    acc = Accumulator(weights, n_heads, paired=fine is not None)
    chunk = options.chunk_rows or chunk_rows_for(n_heads, options.n_boot)
    with tqdm(total=pairing.n_samples, unit="sample", desc=f"bootstrap ({options.n_boot})",
              disable=not progress, dynamic_ncols=True) as bar:
        for start, x_pre, x_fine in iter_value_chunks(
            pre, pairing.pre_rows, fine, pairing.fine_rows,
            site=options.site, reduction=options.reduction, chunk_rows=chunk,
        ):
            acc.add(start, x_pre, x_fine)
            bar.update(x_pre.shape[0])
    return acc.result()


def _head_names(result_layers: np.ndarray, result_heads: np.ndarray, mask: np.ndarray,
                limit: int = 5) -> str:
    idx = np.flatnonzero(mask)
    n_heads = result_heads.shape[0]
    names = [f"layer {int(result_layers[k // n_heads])} head {int(result_heads[k % n_heads])}"
             for k in idx[:limit]]
    more = f" and {idx.size - limit} more" if idx.size > limit else ""
    return ", ".join(names) + more


def _flag_warnings(flags: dict[str, np.ndarray], layers: np.ndarray, heads: np.ndarray
                   ) -> list[str]:
    messages = []
    for reason, mask in flags.items():
        count = int(mask.sum())
        if count:
            messages.append(
                f"{count} head(s) flagged {reason} ({_head_names(layers, heads, mask)}): "
                f"{FLAG_REASONS[reason]}; see flagged_heads in summary.json."
            )
    return messages


def hypothesis_for(acc: Accumulated, comparison: HeadComparison, layer_of_head: np.ndarray,
                   options: AnalysisOptions) -> HypothesisResult | None:
    """The across-head hypothesis over heads with a defined log-ratio (None below 3 heads)."""
    valid = comparison.valid
    if valid.sum() < 3:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        rep_pre = acc.rep_pre[:, valid]
        assert acc.rep_diff is not None and acc.half_diff is not None
        rep_lr = np.log1p(acc.rep_diff[:, valid] / rep_pre)
        rep_log_pre = np.log(rep_pre)
        half_pre = acc.half_pre[:, valid]
        half_lr = np.log1p(acc.half_diff[:, valid] / half_pre)
        half_log_pre = np.log(half_pre)
    return relate_strength_to_change(
        np.log(comparison.r_pre.value[valid]),
        comparison.log_ratio.value[valid],
        layer_of_head[valid],
        rep_log_r_pre=rep_log_pre,
        rep_log_ratio=rep_lr,
        half_log_r_pre=half_log_pre,
        half_log_ratio=half_lr,
        changed=comparison.changed[valid] != "none",
        level=options.ci,
        n_boot=options.n_boot,
        n_perm=options.n_perm,
        seed=options.seed,
        top_k=options.top_k,
    )


def analyze_stores(
    pre: str | os.PathLike,
    fine: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    options: AnalysisOptions | None = None,
    *,
    progress: bool = False,
    **settings: Any,
) -> AnalysisResult:
    """Analyze one store (R_h per head) or a pre / fine pair (change per head and hypothesis).

    `settings` override fields of `options` (e.g. `site="out", n_boot=1000`); `progress`
    shows a progress bar over the resampled samples on stderr. With `out_dir`,
    writes heads.csv, heads.parquet, summary.json and the plots there. Raises HeadactError
    subclasses for anything a user can fix (unpairable stores, partial stores, bad options).
    """
    options = replace(options or AnalysisOptions(), **settings)
    with ExitStack() as stack:
        s_pre = stack.enter_context(open_store(pre))
        s_fine = stack.enter_context(open_store(fine)) if fine is not None else None
        if options.from_raw:
            s_pre = RawNormView(s_pre)
            s_fine = RawNormView(s_fine) if s_fine is not None else None
        for store in (s_pre, s_fine):
            if store is not None:
                _check_site(store, options.site)
        if s_fine is not None:
            pairing = pair_stores(s_pre, s_fine, align=options.align,
                                  allow_partial=options.allow_partial)
        else:
            pairing = select_rows(s_pre, options.allow_partial)
        pairing, excluded = _exclude_short(pairing, s_pre, s_fine, options.reduction)
        warnings = list(pairing.warnings)
        if excluded:
            warnings.append(
                f"{excluded} sample(s) have fewer than {MIN_TOKENS[options.reduction]} counted "
                f"token(s), too few for reduction {options.reduction}; they are left out."
            )
        if pairing.n_samples < 2:
            raise HeadactError(
                f"only {pairing.n_samples} usable sample(s); intervals need at least 2. Dump "
                "more texts (or finish the dump)."
            )
        layers, heads = s_pre.layers, s_pre.heads
        n_heads = layers.shape[0] * heads.shape[0]
        started = time.perf_counter()
        acc = _accumulate(s_pre, s_fine, pairing, options, n_heads, progress)
        logger.info("read and resampled %d samples x %d heads in %.2f s", pairing.n_samples,
                    n_heads, time.perf_counter() - started)
        info_pre = StoreInfo.of(s_pre)
        info_fine = StoreInfo.of(s_fine) if s_fine is not None else None

    result = AnalysisResult(options, info_pre, info_fine, layers, heads, pairing,
                            pairing.n_samples, excluded)
    started = time.perf_counter()
    if info_fine is None:
        result.estimates = estimate_heads(acc, options.ci, options.ci_method)
    else:
        result.comparison = compare_heads(acc, options.ci, options.ci_method, fdr=options.fdr,
                                          min_effect=options.min_effect)
        logger.info("per-head intervals and tests in %.2f s", time.perf_counter() - started)
        started = time.perf_counter()
        result.hypothesis = hypothesis_for(acc, result.comparison, result.head_layer, options)
        logger.info("hypothesis across heads in %.2f s", time.perf_counter() - started)
        if result.hypothesis is None:
            warnings.append("fewer than 3 heads have a defined log-ratio: no hypothesis test.")
    warnings += _flag_warnings(result.flags, layers, heads)
    if options.ci_method == "bca" and options.n_boot < 1000:
        warnings.append(f"BCa intervals from {options.n_boot} resamples are rough; use "
                        "--n-boot 1000 or more.")
    result.warnings = warnings
    for message in warnings:
        logger.warning(message)
    if out_dir is not None:
        from headact.analyze.report import write_outputs

        started = time.perf_counter()
        result.outputs = write_outputs(result, Path(out_dir))
        logger.info("wrote %d files in %.2f s", len(result.outputs), time.perf_counter() - started)
    return result
