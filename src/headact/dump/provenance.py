"""The store's metadata sections that say where numbers came from: model, tokenizer, hook, run."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

import torch

from headact import __version__
from headact.dump.batching import pad_id_of
from headact.dump.loading import tokenizer_fingerprint, weights_fingerprint
from headact.dump.projections import Projection, ResolvedProjections, config_value
from headact.store import layout


def model_metadata(model: torch.nn.Module, resolved: ResolvedProjections, name: str | None,
                   revision: str | None) -> dict[str, Any]:
    """The `model` section: identity, shape, dtype, size and a fingerprint of the weights."""
    config = model.config
    text_config = getattr(config, "text_config", None) or config
    first = resolved.projections[0]
    fingerprint, method = weights_fingerprint(model)
    heads = first.num_heads
    return {
        "name": name or str(getattr(config, "_name_or_path", "") or type(model).__name__),
        "revision": revision,
        "commit_hash": getattr(config, "_commit_hash", None),
        "architecture": type(model).__name__,
        "model_type": str(getattr(config, "model_type", "") or "unknown"),
        "num_layers": len(resolved.projections),
        "num_heads": heads,
        "num_key_value_heads": config_value(text_config, "num_key_value_heads", "num_kv_heads",
                                            "n_head_kv") or heads,
        "head_dim": first.head_dim,
        "hidden_size": first.out_features,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "fingerprint": fingerprint,
        "fingerprint_method": method,
        "adapter": _adapter_name(model),
    }


def _adapter_name(model: torch.nn.Module) -> str | None:
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return None
    first = next(iter(peft_config.values()))
    return str(getattr(first, "base_model_name_or_path", None) or "peft adapter")


def tokenizer_metadata(tokenizer: Any, max_length: int, *, model: torch.nn.Module | None = None,
                       padding_side: str = "right") -> dict[str, Any]:
    """The `tokenizer` section; also for token ids that came without a Hugging Face tokenizer."""
    if tokenizer is not None and hasattr(tokenizer, "__len__"):
        return {
            "name": str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
            "class": type(tokenizer).__name__,
            "vocab_size": int(len(tokenizer)),
            "padding_side": padding_side,
            "pad_token_id": pad_id_of(tokenizer),
            "add_special_tokens": True,
            "max_length": int(max_length),
            "files_hash": tokenizer_fingerprint(tokenizer),
        }
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    name = getattr(tokenizer, "__name__", None) if tokenizer is not None else None
    return {
        "name": name or "token ids given by the caller",
        "class": type(tokenizer).__name__ if tokenizer is not None else "none",
        "vocab_size": int(getattr(config, "vocab_size", 0) or 0),
        "padding_side": padding_side,
        "pad_token_id": None,
        "max_length": int(max_length),
        "files_hash": None,
    }


def hook_metadata(resolved: ResolvedProjections, projections: Sequence[Projection],
                  sites: Sequence[str]) -> dict[str, Any]:
    """The `hook` section: which modules were hooked, how they were found, what was kept."""
    return {
        "modules": [p.path for p in projections],
        "weight_layout": resolved.layout,
        "resolved_by": resolved.resolved_by,
        "template": resolved.template,
        "sites": list(sites),
        "stats": list(layout.STATS),
        "token_filter": "attention_mask == 1 after truncation",
    }


def caller_data_metadata(n_samples: int, selection: str) -> dict[str, Any]:
    """The `data` section for texts handed over in Python rather than read from a file."""
    return {"path": None, "sha256": None, "n_records": int(n_samples), "format": None,
            "field": None, "sample_num": None, "seed": None, "selection": selection}


def run_metadata(model: torch.nn.Module, device: torch.device, *, batch_size: int,
                 command_line: str | None = None) -> dict[str, Any]:
    """The `run` section: versions, device, batch size, attention kernel (timings come later)."""
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
        "batch_size": max(1, int(batch_size)),
        "compute_dtype": "float32",
        "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation",
                                       None),
        "world_size": 1,
        "command_line": command_line,
        "duration_s": None,
        "samples_per_s": None,
        "tokens_per_s": None,
    }
