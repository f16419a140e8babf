"""`ActivationComparator`: pre against fine per head, computed by `headact analyze` itself.

The two extractors' statistics are written as format-1 stores (in a temporary directory)
and `analyze_stores` compares them: the differences, ratios, intervals, tests and the
hypothesis statistics are exactly what `headact analyze PRE FINE` reports on those stores.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headact.errors import PairingError

if TYPE_CHECKING:
    from headact.analyze import AnalysisOptions, AnalysisResult
    from headact.original.extractor import ActivationExtractor


def _range_text(values: tuple[int, ...] | None) -> str:
    return ", ".join(str(v) for v in values) if values else "none"


def check_same_samples(pre: ActivationExtractor, fine: ActivationExtractor) -> None:
    """Refuse two extractors that saw different samples or hooked different heads."""
    if (pre.layers, pre.heads) != (fine.layers, fine.heads):
        raise PairingError(
            f"{pre.model_name} and {fine.model_name} hooked different heads (layers "
            f"{_range_text(pre.layers)} vs {_range_text(fine.layers)}, heads "
            f"{_range_text(pre.heads)} vs {_range_text(fine.heads)}); register the same layers "
            "and heads on both."
        )
    a, b = pre.samples, fine.samples
    if len(a) != len(b):
        raise PairingError(
            f"{pre.model_name} saw {len(a)} samples and {fine.model_name} {len(b)}; run both "
            "over the same data loader (without shuffling) to compare them."
        )
    for row, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.text is not None and y.text is not None:
            same = x.text == y.text
        elif x.token_ids is not None and y.token_ids is not None:
            same = np.array_equal(x.token_ids, y.token_ids)
        else:
            same = x.n_tokens == y.n_tokens
        if not same:
            raise PairingError(
                f"{pre.model_name} and {fine.model_name} saw different samples (sample {row} "
                "differs); run both over the same data loader without shuffling to compare "
                "them."
            )


def shared_identities(pre: ActivationExtractor, fine: ActivationExtractor) -> list[str]:
    """One text per sample for both stores: the text when both know it, else the token ids."""
    from headact.original.extractor import identity_text

    return [x.text if x.text is not None and y.text is not None else identity_text(
        x if x.token_ids is not None else y, use_text=False)
        for x, y in zip(pre.samples, fine.samples, strict=True)]


class ActivationComparator:
    """Compare a pre-tuned and a fine-tuned extractor that saw the same samples.

    `settings` are analyze's options (`n_boot`, `ci`, `ci_method`, `seed`, `fdr`,
    `min_effect`, `site`, `reduction`, ...); the defaults are `headact analyze`'s.
    """

    def __init__(self, pre_extractor: ActivationExtractor, fine_extractor: ActivationExtractor,
                 options: AnalysisOptions | None = None, **settings: Any) -> None:
        from headact.analyze import AnalysisOptions

        self.pre_extractor = pre_extractor
        self.fine_extractor = fine_extractor
        self.options = replace(options or AnalysisOptions(), plots=False, **settings)
        self._result: AnalysisResult | None = None
        self._key: tuple[int, int] | None = None

    def analysis(self) -> AnalysisResult:
        """analyze's paired result (computed once per extracted data)."""
        from headact.analyze import analyze_stores

        key = (self.pre_extractor.version, self.fine_extractor.version)
        if self._result is None or self._key != key:
            check_same_samples(self.pre_extractor, self.fine_extractor)
            texts = shared_identities(self.pre_extractor, self.fine_extractor)
            with tempfile.TemporaryDirectory(prefix="headact-compare-") as folder:
                pre = self.pre_extractor.to_store(Path(folder) / "pre.h5", texts=texts)
                fine = self.fine_extractor.to_store(Path(folder) / "fine.h5", texts=texts)
                self._result = analyze_stores(pre, fine, None, self.options)
            self._key = key
        return self._result

    def compare(self) -> dict[str, Any]:
        """The comparison-v1 document: `differences` (R_fine − R_pre) and `ratios`
        (R_fine / R_pre) as [layer][head] grids, with every head's intervals and tests in
        `per_head` and the strength-versus-change statistics in `hypothesis`."""
        from headact.original.results import comparison_document

        return comparison_document(self.analysis())

    def visualize_comparison(self, path: str | os.PathLike = "comparison_heatmap.png") -> Path:
        """R_pre, R_fine and log(R_fine / R_pre) heatmaps side by side, as one PNG."""
        from headact.original.results import write_comparison_heatmap

        return write_comparison_heatmap(self.analysis(), path)

    def save_comparison(self, path: str | os.PathLike = "comparison.json") -> Path:
        """Write `compare()` as JSON (layout comparison-v1, see README)."""
        from headact.original.results import COMPARISON_SCHEMA, write_json

        return write_json(self.compare(), path, COMPARISON_SCHEMA)
