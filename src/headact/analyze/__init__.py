"""The CPU-only analysis stage: per-head strength, its change, and whether one predicts it."""

from __future__ import annotations

from headact.analyze.accumulate import Accumulated, Accumulator, accumulate_arrays
from headact.analyze.bootstrap import CI_METHODS, Estimate
from headact.analyze.comparison import (
    FLAG_REASONS,
    HeadComparison,
    HeadEstimates,
    compare_arrays,
    compare_heads,
    estimate_arrays,
    estimate_heads,
)
from headact.analyze.hypothesis import HypothesisResult, relate_strength_to_change
from headact.analyze.options import PLOT_FORMATS, AnalysisOptionError, AnalysisOptions
from headact.analyze.pairing import Pairing, pair_stores, select_rows
from headact.analyze.reductions import REDUCTIONS, reduce_stats
from headact.analyze.resampling import BootstrapWeights
from headact.analyze.run import AnalysisResult, StoreInfo, analyze_stores

__all__ = [
    "CI_METHODS",
    "FLAG_REASONS",
    "PLOT_FORMATS",
    "REDUCTIONS",
    "Accumulated",
    "Accumulator",
    "AnalysisOptionError",
    "AnalysisOptions",
    "AnalysisResult",
    "BootstrapWeights",
    "Estimate",
    "HeadComparison",
    "HeadEstimates",
    "HypothesisResult",
    "Pairing",
    "StoreInfo",
    "accumulate_arrays",
    "analyze_stores",
    "compare_arrays",
    "compare_heads",
    "estimate_arrays",
    "estimate_heads",
    "pair_stores",
    "reduce_stats",
    "relate_strength_to_change",
    "select_rows",
]
