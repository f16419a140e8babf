"""Tokenize the samples once, then form length-bucketed, right-padded batches per block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from headact.errors import DataError

# Above this, `model_max_length` is the tokenizer's "no limit" sentinel, not a real limit.
_NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class Tokenized:
    """Counted token ids per sample (after truncation) and which samples were cut."""

    ids: list[np.ndarray]
    truncated: np.ndarray  # bool [sample]
    max_length: int

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def default_max_length(model: torch.nn.Module, tokenizer) -> int:
    """The model's maximum positions, capped by the tokenizer's own limit when it has one."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    limits = [
        getattr(config, name, None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
    ]
    limits = [v for v in limits if isinstance(v, int) and v > 0]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < _NO_LIMIT:
        limits.append(tok_limit)
    if not limits:
        return 2048
    return min(limits)


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int) -> Tokenized:
    """Token ids with the tokenizer's special tokens, truncated to `max_length`."""
    if max_length < 1:
        raise DataError("--max-length must be at least 1.")
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    ids = [np.asarray(x, dtype=np.int64) for x in full["input_ids"]]
    long_rows = [i for i, x in enumerate(ids) if len(x) > max_length]
    if long_rows:
        cut = tokenizer([texts[i] for i in long_rows], add_special_tokens=True, truncation=True,
                        max_length=max_length, verbose=False)
        for row, x in zip(long_rows, cut["input_ids"], strict=True):
            ids[row] = np.asarray(x, dtype=np.int64)
    empty = [i for i, x in enumerate(ids) if len(x) == 0]
    if empty:
        raise DataError(
            f"sample {empty[0]} tokenizes to no tokens; remove it or use another tokenizer."
        )
    truncated = np.zeros(len(ids), dtype=bool)
    truncated[long_rows] = True
    return Tokenized(ids, truncated, max_length)


def pad_id_of(tokenizer) -> int:
    """The pad id, or eos when there is none (GPT-2); padded positions are masked out anyway."""
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


def bucket_batches(rows: np.ndarray, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split a block's rows into batches of similar length (longest first, stable)."""
    order = rows[np.argsort(-lengths[rows], kind="stable")]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_right(
    ids: Sequence[np.ndarray], pad_id: int, pin: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded on the right.

    headact always pads on the right: counted tokens keep positions 0..n-1 in every model,
    whether it derives positions from indices (GPT-2, RoBERTa) or from the mask.
    """
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = x
        mask[i, : len(x)] = 1
    tensors = torch.from_numpy(input_ids), torch.from_numpy(mask)
    if pin:
        tensors = tuple(t.pin_memory() for t in tensors)
    return tensors
