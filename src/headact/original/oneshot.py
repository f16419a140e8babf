"""The original one-shot command as a library call: dump both models, analyze, write files.

Stores and the full analyze outputs stay in the output directory next to the original
tool's four files, so every number can be re-derived with `headact analyze`.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from headact.analyze import AnalysisOptions, AnalysisResult, analyze_stores
from headact.original.results import (
    ACTIVATIONS_SCHEMA,
    COMPARISON_SCHEMA,
    activations_document,
    comparison_document,
    write_comparison_heatmap,
    write_json,
)

PRE_ACTIVATIONS = "pre_tuned_activations.json"
FINE_ACTIVATIONS = "fine_tuned_activations.json"
COMPARISON = "comparison.json"
HEATMAP = "comparison_heatmap.png"
PRE_STORE = "pre_tuned.zarr"
FINE_STORE = "fine_tuned.zarr"
ANALYSIS_DIR = "analysis"


@dataclass(frozen=True)
class CompareOutputs:
    """Where the one-shot comparison put everything, and analyze's paired result."""

    output_dir: Path
    pre_store: Path
    fine_store: Path
    analysis_dir: Path
    pre_activations: Path
    fine_activations: Path
    comparison: Path
    heatmap: Path
    result: AnalysisResult

    @property
    def original_files(self) -> tuple[Path, ...]:
        return (self.pre_activations, self.fine_activations, self.comparison, self.heatmap)


def run_compare(
    pre_tuned_model: str,
    fine_tuned_model: str,
    data_path: str | os.PathLike,
    output_dir: str | os.PathLike = "./results",
    *,
    sample_num: int | None = None,
    batch_size: int = 8,
    layers: str | None = None,
    heads: str | None = None,
    seed: int = 42,
    device: str = "auto",
    n_boot: int = 2000,
    field: str | None = None,
    max_length: int | None = None,
    command_line: str | None = None,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> CompareOutputs:
    """Dump both models over the same samples, analyze the pair, write the original's files.

    `layers` / `heads` are index lists like "0,2,5-7"; `seed` picks the `sample_num`
    samples (as `headact dump --seed`); the analysis uses analyze's defaults, so
    `headact analyze` on the kept stores gives the same numbers. Stores are replaced.
    """
    from headact.dump.files import dump_files
    from headact.dump.loading import ModelSpec
    from headact.dump.runner import DumpOptions

    say = report or (lambda message: None)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = DumpOptions(layers=layers, heads=heads, batch_size=batch_size,
                          max_length=max_length, overwrite=True, command_line=command_line,
                          progress=progress)
    stores = {"pre": out / PRE_STORE, "fine": out / FINE_STORE}
    for label, model, store in (("pre-tuned", pre_tuned_model, stores["pre"]),
                                ("fine-tuned", fine_tuned_model, stores["fine"])):
        say(f"dumping the {label} model {model} -> {store}")
        dumped = dump_files(ModelSpec(model, device=device), data_path, store, options,
                            sample_num=sample_num, seed=seed, field=field)
        say(f"  {dumped.n_samples} samples, {dumped.n_tokens:,} tokens in "
            f"{dumped.duration_s:.1f} s")
        for note in dumped.notes:
            say(f"note: {note}")
        _release_memory()

    analysis = AnalysisOptions(n_boot=n_boot)
    say(f"analyzing {stores['pre'].name} against {stores['fine'].name} -> {out / ANALYSIS_DIR}")
    result = analyze_stores(stores["pre"], stores["fine"], out / ANALYSIS_DIR, analysis)
    files = {}
    for label, name in (("pre", PRE_ACTIVATIONS), ("fine", FINE_ACTIVATIONS)):
        single = analyze_stores(stores[label], options=replace(analysis, plots=False))
        assert single.estimates is not None
        model = single.pre.metadata.get("model", {})
        document = activations_document(
            model_name=single.pre.model_name, layers=single.layers, heads=single.heads,
            estimates=single.estimates, options=analysis,
            num_layers=model.get("num_layers"), num_heads=model.get("num_heads"),
            num_samples=single.n_samples,
        )
        files[label] = write_json(document, out / name, ACTIVATIONS_SCHEMA)
    comparison = write_json(comparison_document(result), out / COMPARISON, COMPARISON_SCHEMA)
    heatmap = write_comparison_heatmap(result, out / HEATMAP)
    return CompareOutputs(out, stores["pre"], stores["fine"], out / ANALYSIS_DIR, files["pre"],
                          files["fine"], comparison, heatmap, result)


def _release_memory() -> None:
    """Let the dumped model go before the next one loads (GPU memory above all)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
