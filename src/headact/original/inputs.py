"""Turn one batch of a data loader into model inputs and the identity of its samples.

A batch may be a list of texts (or of records in the original data format), a mapping of
tensors with `input_ids` / `attention_mask` (optionally `texts`, as `create_simple_dataloader`
makes), a mapping of text lists (a default-collated batch of records), or a 2-D tensor of
token ids. Texts are tokenized exactly as `headact dump` does: each text on its own, without
padding, truncated to the model's limit, then padded on the right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from headact.dump.batching import pad_id_of, pad_right, tokenize_texts
from headact.dump.data import TEXT_FIELDS, record_text
from headact.errors import DataError

# Entries of a mapping batch that describe the samples and are not passed to the model.
META_KEYS = ("texts", "truncated", "labels", "label")
_TENSOR_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass
class PreparedBatch:
    """Model inputs (on the host) and what is known about each sample."""

    inputs: dict[str, torch.Tensor]
    texts: list[str] | None
    truncated: np.ndarray | None  # bool [batch]


def is_hf_tokenizer(tokenizer: Any) -> bool:
    """A Hugging Face tokenizer (slow or fast), as opposed to any callable."""
    try:
        from transformers import PreTrainedTokenizerBase
    except ImportError:  # pragma: no cover - transformers is part of the dump extra
        return False
    return isinstance(tokenizer, PreTrainedTokenizerBase)


def batch_texts(batch: Any) -> list[str] | None:
    """The texts of a batch of texts or records, or None when the batch is not texts."""
    if isinstance(batch, str):
        return [batch]
    if isinstance(batch, Mapping):
        for name in TEXT_FIELDS:
            values = batch.get(name)
            if isinstance(values, (list, tuple)) and values and all(
                    isinstance(v, str) for v in values):
                return list(values)
        return None
    if isinstance(batch, (list, tuple)) and batch and all(
            isinstance(r, (str, Mapping)) for r in batch):
        return [record_text(dict(r) if isinstance(r, Mapping) else r, i, None)[0]
                for i, r in enumerate(batch)]
    return None


def prepare_batch(batch: Any, tokenizer: Any, max_length: Callable[[Any], int],
                  texts: list[str] | None = None) -> PreparedBatch:
    """Model inputs for one batch; `tokenizer` is needed only when the batch holds texts."""
    if isinstance(batch, torch.Tensor):
        return PreparedBatch({"input_ids": _ids_tensor(batch)}, texts, None)
    if isinstance(batch, Mapping) and _ragged(batch.get("input_ids")):
        # Unpadded token id lists (a tokenizer called without padding): pad on the right.
        ids, mask = pad_right([np.asarray(x, dtype=np.int64) for x in batch["input_ids"]], 0)
        batch = {**{k: v for k, v in batch.items() if k in META_KEYS},
                 "input_ids": ids, "attention_mask": mask}
    if isinstance(batch, Mapping) and ("input_ids" in batch or "inputs_embeds" in batch):
        inputs = {}
        for key, value in batch.items():
            if key in META_KEYS:
                continue
            if isinstance(value, torch.Tensor):
                inputs[key] = value
            elif key in _TENSOR_INPUTS:
                inputs[key] = torch.as_tensor(np.asarray(value))
        if "input_ids" in inputs:
            inputs["input_ids"] = _ids_tensor(inputs["input_ids"])
        given = batch.get("texts")
        if isinstance(given, (list, tuple)) and all(isinstance(t, str) for t in given):
            texts = list(given)
        truncated = batch.get("truncated")
        if truncated is not None:
            truncated = np.asarray(truncated, dtype=bool).reshape(-1)
        return PreparedBatch(inputs, texts, truncated)
    found = batch_texts(batch)
    if found is None:
        raise DataError(
            f"cannot read a batch of type {type(batch).__name__}; give lists of texts (or of "
            "records with input/text/question), or dicts of tensors with input_ids and "
            "attention_mask."
        )
    if tokenizer is None:
        raise DataError(
            "the batches hold texts but no tokenizer is known; pass tokenizer= (a Hugging Face "
            "tokenizer, or a function from a list of texts to model inputs)."
        )
    if is_hf_tokenizer(tokenizer):
        tokens = tokenize_texts(tokenizer, found, max_length(tokenizer))
        ids, mask = pad_right(tokens.ids, pad_id_of(tokenizer))
        return PreparedBatch({"input_ids": ids, "attention_mask": mask}, found, tokens.truncated)
    if not callable(tokenizer):
        raise DataError(f"tokenizer= is a {type(tokenizer).__name__}; pass a Hugging Face "
                        "tokenizer or a function from a list of texts to model inputs.")
    encoded = tokenizer(found)
    if isinstance(encoded, torch.Tensor):
        encoded = {"input_ids": encoded}
    if not isinstance(encoded, Mapping) or "input_ids" not in encoded:
        raise DataError(
            f"the tokenizer function returned a {type(encoded).__name__}; it must return a "
            "dict (or BatchEncoding) with input_ids and, for padded batches, attention_mask."
        )
    return prepare_batch(dict(encoded), None, max_length, texts=found)


def _ids_tensor(value: torch.Tensor) -> torch.Tensor:
    if value.dim() == 1:
        value = value.unsqueeze(0)
    if value.dim() != 2 or value.dtype.is_floating_point:
        raise DataError(
            f"input_ids must be integer token ids [batch, tokens], not {value.dtype} of shape "
            f"{tuple(value.shape)}."
        )
    return value


def _ragged(ids: Any) -> bool:
    """Token id lists of different lengths."""
    if not isinstance(ids, (list, tuple)) or not ids or not all(
            isinstance(x, (list, tuple, np.ndarray)) for x in ids):
        return False
    return len({len(x) for x in ids}) > 1
