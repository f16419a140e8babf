"""Write what an extractor captured as a format-1 store, readable by `headact analyze`."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headact import __version__
from headact.dump.loading import tokenizer_fingerprint
from headact.dump.projections import ResolvedProjections
from headact.dump.runner import model_metadata
from headact.store import layout
from headact.store.samples import SampleTable
from headact.store.writer import StorePlan, StoreWriter, default_block_size


def tokenizer_metadata(tokenizer: Any, model: torch.nn.Module, max_length: int | None,
                       padding_side: str) -> dict[str, Any]:
    """The store's `tokenizer` section, also when batches came without a tokenizer."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    if tokenizer is not None and hasattr(tokenizer, "__len__"):
        from headact.dump.batching import pad_id_of

        return {
            "name": str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
            "class": type(tokenizer).__name__,
            "vocab_size": int(len(tokenizer)),
            "padding_side": padding_side,
            "pad_token_id": pad_id_of(tokenizer),
            "add_special_tokens": True,
            "max_length": int(max_length or 1),
            "files_hash": tokenizer_fingerprint(tokenizer),
        }
    name = getattr(tokenizer, "__name__", None) if tokenizer is not None else None
    return {
        "name": name or "token ids given by the caller",
        "class": type(tokenizer).__name__ if tokenizer is not None else "none",
        "vocab_size": int(getattr(config, "vocab_size", 0) or 0),
        "padding_side": padding_side,
        "pad_token_id": None,
        "max_length": int(max_length or 1),
        "files_hash": None,
    }


def run_metadata(model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """The store's `run` section for an extraction in Python."""
    import h5py
    import transformers
    import zarr

    return {
        "headact_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "zarr_version": zarr.__version__,
        "h5py_version": h5py.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "batch_size": 1,  # batches were the caller's; sizes are not fixed
        "compute_dtype": "float32",
        "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation",
                                       None),
        "world_size": 1,
        "command_line": None,
        "duration_s": None,
        "samples_per_s": None,
        "tokens_per_s": None,
    }


def store_metadata(*, model: torch.nn.Module, model_name: str, resolved: ResolvedProjections,
                   num_layers: int, tokenizer: dict[str, Any], n_samples: int, sites: tuple,
                   device: torch.device, batch_size: int) -> dict[str, Any]:
    """Every metadata section of an extractor's store (the same fields a dump writes)."""
    model_section = model_metadata(model, resolved, model_name, None)
    model_section["num_layers"] = int(num_layers)
    run = run_metadata(model, device)
    run["batch_size"] = max(1, int(batch_size))
    return {
        "model": model_section,
        "tokenizer": tokenizer,
        "data": {
            "path": None, "sha256": None, "n_records": int(n_samples), "format": None,
            "field": None, "sample_num": None, "seed": None,
            "selection": "the samples ActivationExtractor saw, in the order it saw them",
        },
        "hook": {
            "modules": [p.path for p in resolved.projections],
            "weight_layout": resolved.layout,
            "resolved_by": resolved.resolved_by,
            "template": resolved.template,
            "sites": list(sites),
            "stats": list(layout.STATS),
            "token_filter": "attention_mask == 1 after truncation",
        },
        "run": run,
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
