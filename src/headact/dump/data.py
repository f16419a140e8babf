"""Read the texts to dump from a JSON array or JSON Lines file and pick the samples."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headact.errors import DataError

TEXT_FIELDS = ("input", "text", "question")


@dataclass(frozen=True)
class Samples:
    """The texts chosen for a dump, with their positions in the source file."""

    index: list[int]
    texts: list[str]
    n_records: int
    field: str | None
    data_format: str
    selection: str


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def detect_format(path: Path) -> str:
    """`json` when the first non-blank character opens an array, `jsonl` otherwise."""
    with open(path, "rb") as f:
        while True:
            piece = f.read(4096)
            if not piece:
                raise DataError(f"{path} is empty; give a JSON array or JSON Lines file of texts.")
            stripped = piece.lstrip()
            if stripped.startswith(b"\xef\xbb\xbf"):
                stripped = stripped[3:].lstrip()
            if stripped:
                return "json" if stripped[:1] == b"[" else "jsonl"


def iter_records(
    path: Path, data_format: str, wanted: set[int] | None = None
) -> Iterator[tuple[int, Any]]:
    """(position, record) one at a time. JSON Lines is streamed, and with `wanted` only those
    lines are parsed (the others come as None), so huge files stay out of memory and fast."""
    try:
        if data_format == "json":
            with open(path, encoding="utf-8-sig") as f:
                try:
                    records = json.load(f)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); give a JSON "
                        "array or one JSON value per line."
                    ) from None
            if not isinstance(records, list):
                raise DataError(f"{path}: expected a JSON array of records at the top level.")
            yield from enumerate(records)
            return
        with open(path, encoding="utf-8-sig") as f:
            position = 0
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                position += 1
                if wanted is not None and position - 1 not in wanted:
                    yield position - 1, None
                    continue
                try:
                    yield position - 1, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path}: line {lineno} is not valid JSON ({exc.msg}); give a JSON array "
                        "or one JSON value per line."
                    ) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8."
        ) from None


def record_text(record: Any, position: int, field: str | None) -> tuple[str, str | None]:
    """The text of one record and the field it came from."""
    if isinstance(record, str):
        text, used = record, None
    elif isinstance(record, dict):
        names = (field,) if field else TEXT_FIELDS
        used = next((name for name in names if name in record), None)
        if used is None:
            wanted = f"no field {field!r}" if field else "none of the fields input, text, question"
            raise DataError(
                f"record {position} has {wanted}; pass --field NAME to name its text field."
            )
        text = record[used]
    else:
        raise DataError(
            f"record {position} is a {type(record).__name__}; records must be strings or objects "
            "with a text field."
        )
    if not isinstance(text, str):
        raise DataError(
            f"record {position}: the text ({used or 'record'}) is a {type(text).__name__}, not a "
            "string."
        )
    if not text.strip():
        raise DataError(f"record {position}: the text is empty; remove the record or fill it in.")
    return text, used


def count_records(path: Path, data_format: str) -> int:
    """How many records the file holds, without keeping them (JSON Lines: without parsing)."""
    return sum(1 for _ in iter_records(path, data_format, wanted=set()))


def read_samples(
    path: str | os.PathLike,
    *,
    sample_num: int | None = None,
    seed: int = 42,
    field: str | None = None,
) -> Samples:
    """Pick `sample_num` records at random (reproducibly from `seed`), or all, in file order."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such data file; check the path.")
    if p.is_dir():
        raise DataError(f"{path} is a directory; give a JSON or JSON Lines file.")
    data_format = detect_format(p)
    n_records = count_records(p, data_format)
    if n_records == 0:
        raise DataError(f"{path} holds no records; give at least one text.")
    if sample_num is not None and sample_num < 1:
        raise DataError("--sample-num must be at least 1.")
    if sample_num is None or sample_num >= n_records:
        chosen = np.arange(n_records)
        selection = "all records in file order"
        if sample_num is not None and sample_num > n_records:
            selection += f" (asked for {sample_num}, the file has {n_records})"
    else:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(n_records, size=sample_num, replace=False))
        selection = f"{sample_num} of {n_records} at random without replacement (numpy seed {seed})"
    wanted = set(chosen.tolist())
    index, texts, fields = [], [], set()
    for position, record in iter_records(p, data_format, wanted):
        if position in wanted:
            text, used = record_text(record, position, field)
            index.append(position)
            texts.append(text)
            fields.add(used)
    fields.discard(None)
    used_field = field or (",".join(sorted(fields)) if fields else None)
    return Samples(index, texts, n_records, used_field, data_format, selection)


def parse_index_list(spec: str | None, upper: int, what: str) -> list[int] | None:
    """'0,2,5-7' -> [0, 2, 5, 6, 7], each checked to lie in [0, upper)."""
    if spec is None or spec.strip() in ("", "all"):
        return None
    values: list[int] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo_text, hi_text = part.split("-", 1) if part[0] != "-" else ("", "")
                lo, hi = int(lo_text), int(hi_text)
                if hi < lo:
                    raise ValueError
                values.extend(range(lo, hi + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise DataError(
                f"--{what} {spec!r}: {part!r} is not an index or a range like 5-7."
            ) from None
    bad = [v for v in values if not 0 <= v < upper]
    if bad:
        raise DataError(
            f"--{what} {spec!r}: {bad[0]} is out of range; the model has {upper} {what} "
            f"(0-{upper - 1})."
        )
    return sorted(set(values))


def select_indices(values: Sequence[int] | int | str | None, upper: int,
                   what: str) -> tuple[int, ...]:
    """Sorted unique indices in [0, upper) from a list, one index, a spec like '0,2-3', or
    None (all of them); anything out of range is refused naming it."""
    if isinstance(values, str):
        values = parse_index_list(values, upper, what)
    if values is None:
        return tuple(range(upper))
    if isinstance(values, int):
        values = [values]
    chosen = sorted({int(v) for v in values})
    bad = [v for v in chosen if not 0 <= v < upper]
    if bad or not chosen:
        raise DataError(
            f"{what} {bad[0] if bad else '(none)'} is out of range; the model has {upper} {what} "
            f"(0-{upper - 1})."
        )
    return tuple(chosen)
