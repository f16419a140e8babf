"""The torch side: load a model, hook every attention head, write per-sample statistics."""

from __future__ import annotations

from headact.dump.data import Samples, read_samples
from headact.dump.runner import DumpOptions, DumpResult, dump_model

__all__ = ["DumpOptions", "DumpResult", "Samples", "dump_model", "dump_files", "read_samples"]


def __getattr__(name: str):
    if name == "dump_files":
        from headact.dump.files import dump_files

        return dump_files
    raise AttributeError(name)
