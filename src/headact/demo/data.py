"""The labelled product-review sentences that ship with headact for the demo."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

LABELS = ("negative", "positive")
TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"


@dataclass(frozen=True)
class Example:
    """One review sentence and its sentiment label (an index into LABELS)."""

    text: str
    label: int


def bundled(name: str) -> list[Example]:
    """The examples of one of the bundled files, TRAIN_FILE or EVAL_FILE."""
    text = resources.files("headact.demo").joinpath("data", name).read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [Example(r["text"], int(r["label"])) for r in records]


def copy_bundled(folder: Path) -> dict[str, Path]:
    """Copy the bundled files into `folder` (so stores can name a file that stays); name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in (TRAIN_FILE, EVAL_FILE):
        target = folder / name
        with resources.as_file(resources.files("headact.demo").joinpath("data", name)) as src:
            if not target.exists() or target.read_bytes() != Path(src).read_bytes():
                shutil.copyfile(src, target)
        paths[name] = target
    return paths
