"""A short human summary of a store, for `headact inspect`."""

from __future__ import annotations

import os

from headact.store.backends import store_size_bytes
from headact.store.reader import Store


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def describe_store(path: str | os.PathLike) -> str:
    """Model, data, sites, layers x heads, progress, status, size, dates and versions."""
    with Store(path, check=False) as store:
        m = store.metadata
        model, data, run, tok = (m.get(k) or {} for k in ("model", "data", "run", "tokenizer"))
        hook = m.get("hook") or {}
        layers, heads = store.layers, store.heads
        done = int(store.done().sum())
        n_tokens = store.samples().n_tokens
        lines = [
            f"store      {path} ({store.kind}, format {m.get('format_version')})",
            f"status     {store.status}: {done} / {store.n_samples} samples done",
            f"model      {model.get('name')} ({model.get('architecture')}, "
            f"{model.get('model_type')}, {model.get('dtype')}, "
            f"{model.get('num_parameters', 0):,} parameters)",
            f"heads      {len(layers)} layers x {len(heads)} heads "
            f"(layers {_ranges(layers)}; heads {_ranges(heads)}; head_dim {model.get('head_dim')})",
            f"sites      {', '.join(store.sites)} via {hook.get('resolved_by')} "
            f"({(hook.get('modules') or ['?'])[0]} ...)",
            f"data       {data.get('path')} (field {data.get('field')!r}, "
            f"{data.get('n_records')} records, {data.get('selection')})",
            f"tokens     {int(n_tokens[n_tokens > 0].sum()):,} counted, max_length "
            f"{tok.get('max_length')}, {tok.get('name')}",
            f"size       {human_bytes(store_size_bytes(path))} on disk",
            f"dates      created {m.get('created_at')}, completed {m.get('completed_at') or '-'}",
            f"versions   headact {run.get('headact_version')}, torch {run.get('torch_version')}, "
            f"transformers {run.get('transformers_version')}, python {run.get('python_version')}",
            f"run        {run.get('device')} ({run.get('device_name') or '-'}), batch "
            f"{run.get('batch_size')}, {run.get('compute_dtype')}, attention "
            f"{run.get('attn_implementation')}",
        ]
        nonfinite = m.get("nonfinite") or {}
        if any(nonfinite.values()):
            lines.append(f"non-finite {nonfinite} (sample, layer, head) cells")
        return "\n".join(lines)


def _ranges(values) -> str:
    values = [int(v) for v in values]
    if not values:
        return "-"
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts)
