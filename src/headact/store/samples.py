"""The per-sample identity columns every store holds, and the hashes that define them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from headact.store.layout import HASH_BYTES


def text_hash(text: str) -> bytes:
    """blake2b-128 of the UTF-8 text that was tokenized."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=HASH_BYTES).digest()


def token_hash(token_ids: Sequence[int] | np.ndarray) -> bytes:
    """blake2b-128 of the counted token ids as little-endian int64."""
    data = np.asarray(token_ids, dtype="<i8").tobytes()
    return hashlib.blake2b(data, digest_size=HASH_BYTES).digest()


@dataclass(frozen=True)
class SampleTable:
    """One row per sample, in dump order: where it came from and what was counted."""

    index: np.ndarray  # int64 [n]
    text_hash: np.ndarray  # uint8 [n, 16]
    token_hash: np.ndarray  # uint8 [n, 16]
    n_tokens: np.ndarray  # int32 [n]
    truncated: np.ndarray  # uint8 [n]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @classmethod
    def build(
        cls,
        index: Sequence[int],
        texts: Sequence[str],
        token_ids: Sequence[Sequence[int]],
        truncated: Sequence[bool],
    ) -> SampleTable:
        """Hash texts and counted token ids into a table."""
        n = len(index)
        return cls(
            index=np.asarray(index, dtype=np.int64).reshape(n),
            text_hash=hash_rows([text_hash(t) for t in texts], n),
            token_hash=hash_rows([token_hash(ids) for ids in token_ids], n),
            n_tokens=np.asarray([len(ids) for ids in token_ids], dtype=np.int32).reshape(n),
            truncated=np.asarray(truncated, dtype=np.uint8).reshape(n),
        )

    def take(self, rows: np.ndarray) -> SampleTable:
        """The table restricted to `rows`, in that order."""
        return SampleTable(
            index=self.index[rows],
            text_hash=self.text_hash[rows],
            token_hash=self.token_hash[rows],
            n_tokens=self.n_tokens[rows],
            truncated=self.truncated[rows],
        )


def hash_rows(digests: list[bytes], n: int) -> np.ndarray:
    """Digests as a uint8 [n, 16] array."""
    if not digests:
        return np.zeros((0, HASH_BYTES), dtype=np.uint8)
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(n, HASH_BYTES).copy()
