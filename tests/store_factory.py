"""Stores with planted values, written through the real StoreWriter, for analyze's tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from headact.store import STATS, SampleTable, StorePlan, StoreWriter


def store_metadata(name: str = "pre-model", n_layers: int = 2, n_heads: int = 3,
                   **sections: dict[str, Any]) -> dict[str, Any]:
    """Metadata satisfying schemas/store-v1; `sections` update single fields, e.g.
    run={"transformers_version": "4.46.0"}."""
    meta: dict[str, Any] = {
        "model": {"name": name, "architecture": "TinyForTests", "model_type": "tiny",
                  "num_layers": n_layers, "num_heads": n_heads, "num_key_value_heads": n_heads,
                  "head_dim": 4, "hidden_size": 4 * n_heads, "dtype": "float32",
                  "num_parameters": 1000, "fingerprint": f"sha256:{name}"},
        "tokenizer": {"name": name, "class": "TinyTokenizer", "vocab_size": 100,
                      "padding_side": "right", "max_length": 64},
        "data": {"path": "texts.json", "sha256": "1" * 64, "n_records": 0, "field": "text",
                 "sample_num": None, "seed": 0, "selection": "all records in file order"},
        "hook": {"modules": [f"layers.{i}.o_proj" for i in range(n_layers)],
                 "weight_layout": "linear", "resolved_by": "table", "sites": ["z", "out"],
                 "stats": list(STATS)},
        "run": {"headact_version": "0.1.0", "torch_version": "2.5.0",
                "transformers_version": "5.0.0", "python_version": "3.11", "device": "cpu",
                "batch_size": 8, "compute_dtype": "float32", "attn_implementation": "eager"},
    }
    for section, fields in sections.items():
        meta[section] = {**meta.get(section, {}), **fields}
    return meta


def stats_from_values(x: np.ndarray, n_tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample statistics whose token-mean is exactly x [n, L, H] (up to float32).

    sumsq, first, last and max are fixed multiples, so every reduction has a known value:
    rms = x sqrt(1.21), frobenius = x sqrt(1.21 n), first = 0.9 x, last = 1.1 x.
    """
    n = np.asarray(n_tokens, dtype=np.float64)[:, None, None]
    x = np.asarray(x, dtype=np.float64)
    return {
        "sum": (x * n).astype(np.float32),
        "sumsq": (1.21 * x * x * n).astype(np.float32),
        "first": (0.9 * x).astype(np.float32),
        "last": (1.1 * x).astype(np.float32),
        "max": (1.5 * x).astype(np.float32),
    }


def stats_from_token_norms(token_norms: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Statistics of per-token norm arrays, one [tokens, L, H] array per sample."""
    out = {stat: np.stack([_stat(t, stat) for t in token_norms]).astype(np.float32)
           for stat in STATS}
    return out


def _stat(t: np.ndarray, stat: str) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return {"sum": t.sum(0), "sumsq": (t * t).sum(0), "first": t[0], "last": t[-1],
            "max": t.max(0)}[stat]


def texts_for(n: int, start: int = 0) -> list[str]:
    return [f"sample text number {i}" for i in range(start, start + n)]


def write_store(
    path: Path,
    stats: dict[str, np.ndarray] | dict[tuple[str, str], np.ndarray],
    *,
    n_tokens: np.ndarray | None = None,
    index: list[int] | np.ndarray | None = None,
    texts: list[str] | None = None,
    token_offset: int = 0,
    layers: tuple[int, ...] | None = None,
    heads: tuple[int, ...] | None = None,
    sites: tuple[str, ...] = ("z", "out"),
    block_size: int = 16,
    name: str = "pre-model",
    metadata: dict[str, Any] | None = None,
    done_blocks: list[int] | None = None,
) -> Path:
    """Write a store. `stats` maps stat -> [n, L, H] (same for every site) or (site, stat).

    Each sample's token ids are token_offset + 0 .. n_tokens-1, so a different offset models a
    changed tokenizer. `done_blocks` writes only those blocks and leaves the store in progress.
    """
    first = next(iter(stats.values()))
    n, n_layers, n_heads = first.shape
    n_tok = np.full(n, 5, dtype=np.int64) if n_tokens is None else np.asarray(n_tokens)
    index = list(range(n)) if index is None else list(index)
    texts = texts_for(n) if texts is None else texts
    token_ids = [list(range(token_offset, token_offset + int(t))) for t in n_tok]
    layers = tuple(range(n_layers)) if layers is None else layers
    heads = tuple(range(n_heads)) if heads is None else heads
    plan = StorePlan(n, layers, heads, sites, block_size)
    samples = SampleTable.build(index, texts, token_ids, [False] * n)
    meta = copy.deepcopy(metadata) if metadata is not None else store_metadata(
        name, n_layers, n_heads)
    writer = StoreWriter.create(path, plan, samples, meta)
    try:
        for b in range(plan.n_blocks):
            if done_blocks is not None and b not in done_blocks:
                continue
            rows = plan.block_rows(b)
            block = {}
            for site in sites:
                for stat in STATS:
                    full = stats[(site, stat)] if (site, stat) in stats else stats[stat]
                    block[(site, stat)] = np.asarray(full[rows], dtype=np.float32)
            writer.write_block(b, block)
        if done_blocks is None:
            writer.finalize()
    finally:
        writer.close()
    return path


def planted_pair(
    rng: np.random.Generator,
    n: int = 200,
    n_layers: int = 3,
    n_heads: int = 4,
    *,
    log_ratio: np.ndarray | None = None,
    noise: float = 0.2,
    fine_noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_pre, x_fine, r_true [L, H], log_ratio [L, H]): per-sample token-mean values.

    x_pre = R_h * text factor * noise, x_fine = x_pre * exp(log_ratio_h) * small noise, so the
    planted change of head h is log_ratio_h (in expectation of the log of the means).
    """
    r_true = np.exp(rng.normal(0.0, 0.6, size=(n_layers, n_heads))) * 3.0
    lr = np.zeros((n_layers, n_heads)) if log_ratio is None else np.asarray(log_ratio)
    text = rng.lognormal(0.0, noise, size=(n, 1, 1))
    x_pre = r_true * text * rng.lognormal(0.0, noise / 2, size=(n, n_layers, n_heads))
    x_fine = x_pre * np.exp(lr) * rng.lognormal(0.0, fine_noise, size=x_pre.shape)
    return x_pre, x_fine, r_true, lr
