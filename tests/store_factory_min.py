"""A small complete store with known values, written through the real writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from headact.store import STATS, SampleTable, StorePlan, StoreWriter


def store_metadata(name: str = "tiny-model") -> dict:
    """Metadata that satisfies the store schema."""
    return {
        "model": {"name": name, "architecture": "TinyModel", "model_type": "tiny",
                  "num_layers": 2, "num_heads": 3, "num_key_value_heads": 3, "head_dim": 4,
                  "hidden_size": 12, "dtype": "float32", "num_parameters": 100,
                  "fingerprint": "0" * 64},
        "tokenizer": {"name": name, "class": "TinyTokenizer", "vocab_size": 50,
                      "padding_side": "right", "max_length": 16},
        "data": {"path": "texts.json", "sha256": "1" * 64, "n_records": 9, "field": "text",
                 "sample_num": None, "seed": 42, "selection": "all records in file order"},
        "hook": {"modules": ["l.0.o", "l.1.o"], "weight_layout": "linear",
                 "resolved_by": "table", "sites": ["z", "out"], "stats": list(STATS)},
        "run": {"headact_version": "0", "torch_version": "2.13", "transformers_version": "5.0",
                "python_version": "3.11", "device": "cpu", "batch_size": 2,
                "compute_dtype": "float32", "attn_implementation": "sdpa"},
    }


def make_store(path: Path, n: int = 9, block: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    plan = StorePlan(n, (0, 1), (0, 1, 2), ("z", "out"), block)
    samples = SampleTable.build(list(range(n)), [f"text {i}" for i in range(n)],
                                [list(range(i + 1)) for i in range(n)], [0] * n)
    writer = StoreWriter.create(path, plan, samples, store_metadata())
    for b in range(plan.n_blocks):
        rows = plan.block_rows(b)
        m = rows.stop - rows.start
        writer.write_block(b, {(site, stat): rng.uniform(0.5, 2.0, (m, 2, 3)).astype(np.float32)
                               for site in plan.sites for stat in STATS})
    writer.finalize()
    writer.close()
    return path
