"""`headact demo`: fine-tune a small model, dump it and its base, and compare their heads."""

from __future__ import annotations

from headact.demo.pipeline import FULL, QUICK, DemoResult, DemoSettings, run_demo

__all__ = ["FULL", "QUICK", "DemoResult", "DemoSettings", "run_demo"]
