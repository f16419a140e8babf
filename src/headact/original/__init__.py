"""The original activation_extract.py interface, built on headact's hooks, store and analysis.

Names load on first use, so importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

EXPORTS: dict[str, str] = {
    "ActivationExtractor": "headact.original.extractor",
    "HeadStat": "headact.original.extractor",
    "ActivationComparator": "headact.original.comparator",
    "ActivationHook": "headact.original.hook",
    "create_simple_dataloader": "headact.original.dataloader",
    "run_compare": "headact.original.oneshot",
    "CompareOutputs": "headact.original.oneshot",
    "PairingError": "headact.errors",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        return getattr(importlib.import_module(EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
