"""headact: per-head attention activation strength before and after fine-tuning."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# The original tool's interface (headact.original), loaded on first use: `import headact`
# stays light and never imports torch.
_ORIGINAL = ("ActivationComparator", "ActivationExtractor", "ActivationHook",
             "create_simple_dataloader")

__all__ = ["__version__", *_ORIGINAL]


def __getattr__(name: str) -> Any:
    if name in _ORIGINAL:
        import headact.original

        return getattr(headact.original, name)
    raise AttributeError(f"module 'headact' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ORIGINAL))
