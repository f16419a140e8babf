"""The original activation_extract.py interface, now served by headact.

    from activation_extract import ActivationExtractor, ActivationComparator, ActivationHook
    python -m activation_extract --pre_tuned_model A --fine_tuned_model B --data_path D ...

Names load on first use (torch only when an extractor, hook or data loader is asked for).
"""

from __future__ import annotations

from typing import Any

from headact.original import EXPORTS

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    import headact.original

    if name in EXPORTS:
        return getattr(headact.original, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
