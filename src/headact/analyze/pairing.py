"""Which store rows to analyze: done rows of one store, or the samples two stores share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headact.errors import PairingError
from headact.store import SampleTable, Store

# Run settings that change the numbers without any fine-tuning; a difference is warned about.
PROVENANCE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("run", "transformers_version", "transformers version"),
    ("run", "torch_version", "torch version"),
    ("model", "dtype", "model dtype"),
    ("run", "compute_dtype", "compute dtype"),
    ("run", "attn_implementation", "attention implementation"),
    ("model", "head_dim", "head dimension"),
    ("tokenizer", "max_length", "max length"),
    ("hook", "token_filter", "token filter"),
)


@dataclass(frozen=True)
class Difference:
    """One provenance field that differs between the two stores."""

    field: str
    pre: Any
    fine: Any


@dataclass(frozen=True)
class Pairing:
    """Store rows to analyze, in analysis order (pre rows ascending), and what was found."""

    pre_rows: np.ndarray
    fine_rows: np.ndarray | None
    n_pre: int
    n_fine: int | None
    aligned: bool = False
    token_hash_differs: int = 0
    differences: tuple[Difference, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_samples(self) -> int:
        return int(self.pre_rows.shape[0])

    def subset(self, keep: np.ndarray) -> Pairing:
        """The pairing restricted to positions where `keep` is True."""
        return Pairing(
            pre_rows=self.pre_rows[keep],
            fine_rows=None if self.fine_rows is None else self.fine_rows[keep],
            n_pre=self.n_pre,
            n_fine=self.n_fine,
            aligned=self.aligned,
            token_hash_differs=self.token_hash_differs,
            differences=self.differences,
            warnings=self.warnings,
        )


def _ranges(values: np.ndarray) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    values = np.asarray(values)
    if values.size == 0:
        return "none"
    parts, start, prev = [], int(values[0]), int(values[0])
    for v in map(int, values[1:]):
        if v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        start = prev = v
    parts.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(parts)


def _partial_rows(store: Store, allow_partial: bool) -> tuple[np.ndarray, list[str]]:
    store.require_complete(allow_partial)
    done = store.done()
    warnings = []
    if not store.is_complete:
        warnings.append(
            f"{store.path} is in progress: using its {int(done.sum())} done samples of "
            f"{store.n_samples} (--allow-partial)."
        )
    return done, warnings


def select_rows(store: Store, allow_partial: bool = False) -> Pairing:
    """The rows of one store to analyze: all, or the done ones of a partial store."""
    done, warnings = _partial_rows(store, allow_partial)
    return Pairing(np.flatnonzero(done).astype(np.int64), None, store.n_samples, None,
                   warnings=tuple(warnings))


def _check_coordinates(pre: Store, fine: Store) -> None:
    for name, a, b in (("layers", pre.layers, fine.layers), ("heads", pre.heads, fine.heads)):
        if not np.array_equal(a, b):
            only_pre = np.setdiff1d(a, b)
            only_fine = np.setdiff1d(b, a)
            detail = []
            if only_pre.size:
                detail.append(f"{name} {_ranges(only_pre)} only in pre")
            if only_fine.size:
                detail.append(f"{name} {_ranges(only_fine)} only in fine")
            if not detail:
                detail.append("the same values in another order")
            raise PairingError(
                f"{pre.path} and {fine.path} hold different {name}: pre has {_ranges(a)}, fine "
                f"has {_ranges(b)} ({'; '.join(detail)}). Dump both with the same "
                f"{'--layers' if name == 'layers' else 'model heads'} to compare them."
            )


def _keys(samples: SampleTable) -> list[bytes]:
    ids = samples.index.astype("<i8").view(np.uint8).reshape(-1, 8)
    return [bytes(row) for row in np.concatenate([ids, samples.text_hash], axis=1)]


def _first_difference(sp: SampleTable, sf: SampleTable) -> str:
    if len(sp) != len(sf):
        return f"pre holds {len(sp)} samples, fine {len(sf)}"
    index_differs = np.flatnonzero(sp.index != sf.index)
    text_differs = np.flatnonzero((sp.text_hash != sf.text_hash).any(axis=1))
    first_index = int(index_differs[0]) if index_differs.size else len(sp)
    first_text = int(text_differs[0]) if text_differs.size else len(sp)
    row = min(first_index, first_text)
    if row == first_index:
        return (f"row {row} is sample {int(sp.index[row])} of the data file in pre but "
                f"{int(sf.index[row])} in fine (samples/index differs in "
                f"{index_differs.size} rows)")
    return (f"row {row} (sample {int(sp.index[row])}) has another text in fine "
            f"(samples/text_hash differs in {text_differs.size} rows)")


def _provenance(pre: Store, fine: Store) -> tuple[list[Difference], list[str]]:
    differences, warnings = [], []
    for section, key, label in PROVENANCE_FIELDS:
        a = (pre.metadata.get(section) or {}).get(key)
        b = (fine.metadata.get(section) or {}).get(key)
        if a != b:
            differences.append(Difference(f"{section}.{key}", a, b))
            why = ""
            if key == "transformers_version":
                why = ("; transformers 4 and 5 read some configs differently, so a version "
                       "change alone can look like fine-tuning")
            warnings.append(f"the stores differ in {label}: {a!r} (pre) vs {b!r} (fine){why}.")
    fp_pre = (pre.metadata.get("model") or {}).get("fingerprint")
    fp_fine = (fine.metadata.get("model") or {}).get("fingerprint")
    if fp_pre and fp_pre == fp_fine and not (pre.metadata["model"].get("adapter")
                                            or fine.metadata["model"].get("adapter")):
        warnings.append("pre and fine have the same weight fingerprint: they are one model, so "
                        "any change comes from the run settings, not from fine-tuning.")
    return differences, warnings


def pair_stores(
    pre: Store, fine: Store, *, align: bool = False, allow_partial: bool = False
) -> Pairing:
    """Pair the samples of two stores, refusing (with the difference named) unless they match.

    The stores must hold the same samples in the same order (`samples/index` and
    `samples/text_hash`) and the same layers and heads; with `align`, only the samples both
    hold are paired. Partial stores contribute their done rows when `allow_partial`.
    """
    done_pre, warnings = _partial_rows(pre, allow_partial)
    done_fine, more = _partial_rows(fine, allow_partial)
    warnings += more
    _check_coordinates(pre, fine)
    sp, sf = pre.samples(), fine.samples()
    same = (len(sp) == len(sf) and np.array_equal(sp.index, sf.index)
            and np.array_equal(sp.text_hash, sf.text_hash))
    if same:
        pre_rows = np.arange(len(sp), dtype=np.int64)
        fine_rows = pre_rows.copy()
    else:
        keys_pre, keys_fine = _keys(sp), _keys(sf)
        lookup: dict[bytes, int] = {}
        duplicated = 0
        for row, key in enumerate(keys_fine):
            if key in lookup:
                duplicated += 1
            lookup[key] = row
        matches = [(row, lookup[key]) for row, key in enumerate(keys_pre) if key in lookup]
        if not align:
            raise PairingError(
                f"{pre.path} and {fine.path} hold different samples: "
                f"{_first_difference(sp, sf)}. Dump both from the same data with the same "
                f"selection, or pass --align to pair the {len(matches)} samples they share."
            )
        if duplicated:
            raise PairingError(
                f"{fine.path} holds {duplicated} repeated samples (same index and text), so "
                "--align cannot pair them one to one; dump it without repeats."
            )
        if not matches:
            raise PairingError(
                f"{pre.path} and {fine.path} share no sample (same index and text); check that "
                "both were dumped from the same data file."
            )
        pre_rows = np.array([m[0] for m in matches], dtype=np.int64)
        fine_rows = np.array([m[1] for m in matches], dtype=np.int64)
        warnings.append(
            f"--align: pairing the {len(matches)} samples both stores hold ({len(sp)} in pre, "
            f"{len(sf)} in fine)."
        )
    keep = done_pre[pre_rows] & done_fine[fine_rows]
    pre_rows, fine_rows = pre_rows[keep], fine_rows[keep]
    if pre_rows.size == 0:
        raise PairingError(f"{pre.path} and {fine.path} have no done sample in common.")
    token_differs = int((sp.token_hash[pre_rows] != sf.token_hash[fine_rows]).any(axis=1).sum())
    if token_differs:
        warnings.append(
            f"the tokenization differs in {token_differs} of {pre_rows.size} samples "
            "(samples/token_hash): the tokenizer changed, so each model's norms are over "
            "different tokens."
        )
    differences, more = _provenance(pre, fine)
    warnings += more
    return Pairing(
        pre_rows=pre_rows,
        fine_rows=fine_rows,
        n_pre=pre.n_samples,
        n_fine=fine.n_samples,
        aligned=not same,
        token_hash_differs=token_differs,
        differences=tuple(differences),
        warnings=tuple(warnings),
    )
