"""`headact demo`: fine-tune a small model, dump it and its base, and compare their heads."""

from __future__ import annotations
