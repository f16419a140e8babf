"""`create_simple_dataloader`: texts or records in, batches tokenized as `headact dump` does."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from headact.dump.batching import pad_id_of, pad_right, tokenize_texts
from headact.dump.data import record_text
from headact.original.inputs import is_hf_tokenizer

_NO_LIMIT = 1_000_000


class TextCollator:
    """Tokenize each text on its own (no padding, truncated), then pad the batch on the right.

    Batches are dicts with `input_ids`, `attention_mask`, the `texts` and which were
    `truncated`; without a tokenizer, batches are lists of texts.
    """

    def __init__(self, tokenizer: Any, max_length: int | None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> dict[str, Any] | list[str]:
        if self.tokenizer is None:
            return list(texts)
        if not is_hf_tokenizer(self.tokenizer):  # any function from texts to model inputs
            return {**dict(self.tokenizer(list(texts))), "texts": list(texts)}
        tokens = tokenize_texts(self.tokenizer, texts, self.max_length or sys.maxsize)
        ids, mask = pad_right(tokens.ids, pad_id_of(self.tokenizer))
        return {"input_ids": ids, "attention_mask": mask, "texts": list(texts),
                "truncated": torch.from_numpy(tokens.truncated)}


def create_simple_dataloader(samples: Sequence[Any], tokenizer: Any = None, batch_size: int = 8,
                             *, max_length: int | None = None,
                             field: str | None = None) -> DataLoader:
    """A DataLoader over texts or records ({"input"|"text"|"question": ...}), in order.

    With a Hugging Face tokenizer each batch is tokenized like `headact dump` (truncated to
    `max_length`, by default the tokenizer's limit); without one, batches are lists of texts
    for `extract_activations(..., tokenizer=...)`.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, not {batch_size!r}.")
    texts = [record_text(record, i, field)[0] for i, record in enumerate(samples)]
    if max_length is None and tokenizer is not None:
        limit = getattr(tokenizer, "model_max_length", None)
        max_length = limit if isinstance(limit, int) and 0 < limit < _NO_LIMIT else None
    return DataLoader(texts, batch_size=batch_size, shuffle=False,
                      collate_fn=TextCollator(tokenizer, max_length))
