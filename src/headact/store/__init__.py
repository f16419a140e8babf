"""The format-1 store shared by dump and analyze: layout, writer, reader, validation."""

from __future__ import annotations

from headact.store.layout import FORMAT, FORMAT_VERSION, SITES, STATS
from headact.store.reader import NormBlock, Store, open_store
from headact.store.samples import SampleTable, text_hash, token_hash
from headact.store.writer import StorePlan, StoreWriter, default_block_size

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SITES",
    "STATS",
    "NormBlock",
    "SampleTable",
    "Store",
    "StorePlan",
    "StoreWriter",
    "default_block_size",
    "open_store",
    "text_hash",
    "token_hash",
]
