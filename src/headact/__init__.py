"""headact: per-head attention activation strength before and after fine-tuning."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
