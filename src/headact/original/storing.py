"""Write what an extractor captured as a format-1 store, readable by `headact analyze`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headact.dump.projections import ResolvedProjections
from headact.dump.provenance import (
    caller_data_metadata,
    hook_metadata,
    model_metadata,
    run_metadata,
)
from headact.store import layout
from headact.store.samples import SampleTable
from headact.store.writer import StorePlan, StoreWriter, default_block_size


def store_metadata(*, model: torch.nn.Module, model_name: str, resolved: ResolvedProjections,
                   num_layers: int, tokenizer: dict[str, Any], n_samples: int, sites: tuple,
                   device: torch.device, batch_size: int) -> dict[str, Any]:
    """Every metadata section of an extractor's store (the same fields a dump writes)."""
    model_section = model_metadata(model, resolved, model_name, None)
    model_section["num_layers"] = int(num_layers)
    return {
        "model": model_section,
        "tokenizer": tokenizer,
        "data": caller_data_metadata(
            n_samples, "the samples ActivationExtractor saw, in the order it saw them"),
        "hook": hook_metadata(resolved, resolved.projections, sites),
        "run": run_metadata(model, device, batch_size=batch_size),
    }


def write_store(path: str | os.PathLike, *, stats: np.ndarray, samples: SampleTable,
                layers: tuple[int, ...], heads: tuple[int, ...], sites: tuple[str, ...],
                metadata: dict[str, Any], overwrite: bool = False) -> Path:
    """Write stats [sample, site, layer, stat, head] and the sample table as a complete store."""
    plan = StorePlan(len(samples), tuple(layers), tuple(heads), tuple(sites),
                     default_block_size(len(layers), len(heads)))
    writer = StoreWriter.create(path, plan, samples, metadata, overwrite=overwrite)
    try:
        for block in range(plan.n_blocks):
            rows = plan.block_rows(block)
            writer.write_block(block, {
                (site, stat): stats[rows, s, :, k, :]
                for s, site in enumerate(sites) for k, stat in enumerate(layout.STATS)
            })
        writer.finalize()
    finally:
        writer.close()
    return Path(path)
