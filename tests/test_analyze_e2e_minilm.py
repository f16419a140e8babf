"""Real weights end to end: all-MiniLM-L6-v2 against a copy with a few value projections
scaled (and every weight slightly perturbed); analyze must mark exactly the scaled heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from headact.analyze import analyze_stores
from headact.cli import main

pytestmark = pytest.mark.dump

# Heads of the last layer, so no other head sees a changed input: (layer, head) -> factor.
SCALED = {(5, 2): 1.5, (5, 7): 0.6, (5, 10): 1.25}
SUBJECTS = ["The old dog", "A young teacher", "My neighbour", "The small robot", "Every student",
            "The tired pilot", "Her brother", "The quiet city"]
ACTIONS = ["walked to the market", "read a long book", "painted the kitchen wall",
           "fixed the broken radio", "sang a cheerful song", "planted tomatoes in spring",
           "wrote a letter home", "watched the rain fall"]


def _scaled_copy(source, target) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source)
    generator = torch.Generator().manual_seed(0)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1e-3 * param.std() * torch.randn(param.shape, generator=generator))
        for (layer, head), factor in SCALED.items():
            value = model.encoder.layer[layer].attention.self.value
            rows = slice(head * head_dim, (head + 1) * head_dim)
            # z_h = softmax(QK^T) V_h: scaling V_h's rows scales the head's output exactly.
            value.weight[rows] *= factor
            value.bias[rows] *= factor
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)


def test_changed_marks_exactly_the_scaled_heads(minilm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = [f"{subject} {action}." for subject in SUBJECTS for action in ACTIONS]
    data = tmp_path / "texts.json"
    data.write_text(json.dumps(texts), encoding="utf-8")
    fine_dir = tmp_path / "fine-model"
    _scaled_copy(minilm_dir, fine_dir)
    for name, model in (("pre", minilm_dir), ("fine", fine_dir)):
        result = CliRunner().invoke(main, ["dump", "-q", "--model", str(model), "--data",
                                           str(data), "--out", str(tmp_path / f"{name}.zarr"),
                                           "--sites", "z", "--device", "cpu"])
        assert result.exit_code == 0, result.output

    result = analyze_stores(tmp_path / "pre.zarr", tmp_path / "fine.zarr", tmp_path / "out",
                            n_boot=1000, n_perm=200)
    c = result.comparison
    assert result.n_samples == 64
    marked = {(int(layer), int(head)): state for layer, head, state in
              zip(result.head_layer, result.head_index, c.changed, strict=True)
              if state != "none"}
    assert marked == {key: "up" if factor > 1 else "down" for key, factor in SCALED.items()}
    for (layer, head), factor in SCALED.items():
        k = layer * 12 + head
        assert c.ratio.value[k] == pytest.approx(factor, rel=0.03)
    others = np.ones(c.n_heads, dtype=bool)
    others[[layer * 12 + head for layer, head in SCALED]] = False
    assert np.abs(c.log_ratio.value[others]).max() < np.log(1.05)
    assert not any("differ in" in w for w in result.warnings)  # same run settings
