"""Fine-tune a sentence encoder as a mean-pooled classifier on the CPU and save the encoder."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from headact.demo.data import LABELS, Example

log = logging.getLogger("headact.demo")

RECORD_FILE = "finetune.json"  # written last: its presence marks a finished fine-tune
HEAD_FILE = "classifier-head.safetensors"


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune: examples, epochs, batch size, optimizer settings, seed."""

    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_length: int = 64
    max_examples: int | None = None  # the first N training examples; None: all
    train_embeddings: bool = False  # the token embedding matrix is half the weights; keep it
    seed: int = 0


@dataclass(frozen=True)
class FinetuneResult:
    """What fine-tuning did: steps, time, first and last loss, accuracies afterwards."""

    model_dir: Path
    steps: int
    duration_s: float
    first_loss: float
    last_loss: float
    train_accuracy: float
    eval_accuracy: float | None  # on the held-out examples, when some were given

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


class MeanPoolClassifier(nn.Module):
    """An encoder, the mean of its last hidden states over counted tokens, a linear head."""

    def __init__(self, encoder: nn.Module, n_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


def _batches(examples: Sequence[Example], size: int, order: Sequence[int]):
    for start in range(0, len(order), size):
        yield [examples[i] for i in order[start:start + size]]


def _encode(tokenizer, batch: Sequence[Example], max_length: int):
    enc = tokenizer([e.text for e in batch], padding=True, truncation=True,
                    max_length=max_length, return_tensors="pt")
    labels = torch.tensor([e.label for e in batch], dtype=torch.long)
    return enc["input_ids"], enc["attention_mask"], labels


@torch.inference_mode()
def accuracy(model: MeanPoolClassifier, tokenizer, examples: Sequence[Example],
             max_length: int = 64, batch_size: int = 64) -> float:
    """The share of `examples` whose label the classifier predicts."""
    was_training = model.training
    model.eval()
    right = 0
    for batch in _batches(examples, batch_size, range(len(examples))):
        ids, mask, labels = _encode(tokenizer, batch, max_length)
        right += int((model(ids, mask).argmax(dim=-1) == labels).sum())
    model.train(was_training)
    return right / max(len(examples), 1)


def load_classifier(model_dir: str | Path, seed: int = 0):
    """(MeanPoolClassifier with a freshly seeded head, tokenizer) for a model directory."""
    from transformers import AutoModel, AutoTokenizer

    from headact.dump.loading import quiet_transformers

    torch.manual_seed(seed)
    with quiet_transformers():
        encoder = AutoModel.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return MeanPoolClassifier(encoder, len(LABELS)), tokenizer


def finetune(
    base_dir: str | Path,
    train: Sequence[Example],
    out_dir: str | Path,
    *,
    config: FinetuneConfig | None = None,
    evaluation: Sequence[Example] = (),
    progress: bool = False,
) -> FinetuneResult:
    """Train `base_dir`'s encoder plus a linear head on `train` with AdamW; save to `out_dir`.

    `out_dir` becomes a normal Hugging Face directory (encoder and tokenizer, loadable with
    AutoModel) with a record of the run (RECORD_FILE); the linear head goes beside it
    (HEAD_FILE). The directory is written under another name and renamed into place at the
    end, so a directory at `out_dir` is always a finished one.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    config = config or FinetuneConfig()
    out_dir = Path(out_dir)
    train = list(train)[: config.max_examples]
    model, tokenizer = load_classifier(base_dir, config.seed)
    torch.manual_seed(config.seed)
    steps_per_epoch = -(-len(train) // config.batch_size)
    total = steps_per_epoch * config.epochs
    embeddings = model.encoder.get_input_embeddings()
    embeddings.weight.requires_grad_(config.train_embeddings)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_fraction * total), total)
    generator = torch.Generator().manual_seed(config.seed)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=total, unit="step", desc="fine-tune", disable=not progress,
               dynamic_ncols=True)
    try:
        for _epoch in range(config.epochs):
            order = torch.randperm(len(train), generator=generator).tolist()
            for batch in _batches(train, config.batch_size, order):
                ids, mask, labels = _encode(tokenizer, batch, config.max_length)
                loss = loss_fn(model(ids, mask), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(loss.detach().item())
                bar.update(1)
                bar.set_postfix_str(f"loss {losses[-1]:.3f}", refresh=False)
    finally:
        bar.close()
    duration = time.perf_counter() - started
    model.eval()
    train_accuracy = accuracy(model, tokenizer, train, config.max_length)
    eval_accuracy = accuracy(model, tokenizer, evaluation, config.max_length) if evaluation \
        else None
    log.info("fine-tuned %d steps in %.1f s; training accuracy %.3f, held-out %s", total,
             duration, train_accuracy, eval_accuracy)
    result = FinetuneResult(out_dir, total, duration, losses[0] if losses else float("nan"),
                            losses[-1] if losses else float("nan"), train_accuracy,
                            eval_accuracy)
    _save(model, tokenizer, out_dir, config, result, base_dir)
    return result


def _save(model: MeanPoolClassifier, tokenizer, out_dir: Path, config: FinetuneConfig,
          result: FinetuneResult, base_dir: str | Path) -> None:
    from safetensors.torch import save_file

    from headact.dump.loading import quiet_transformers

    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with quiet_transformers():
        model.encoder.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    # The head sits beside the encoder's directory, so the directory's weight files (and the
    # fingerprint a dump records) are the encoder's alone.
    head = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(out_dir.with_name(HEAD_FILE)), metadata={"labels": ",".join(LABELS)})
    record = {"base_model": str(base_dir), "labels": list(LABELS), "config": asdict(config),
              "result": result.to_dict()}
    (partial / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)


def finished_record(model_dir: str | Path) -> dict | None:
    """The record of a finished fine-tune in `model_dir` (config, result), or None."""
    record_path = Path(model_dir) / RECORD_FILE
    if not record_path.is_file() or not (Path(model_dir) / "config.json").is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = {f.name for f in fields(FinetuneResult)}
    if not isinstance(record.get("config"), dict) or not wanted <= set(record.get("result", {})):
        return None  # unreadable, or written by another version of the demo
    return record
