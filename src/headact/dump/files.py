"""The whole dump from paths: read the data file, load the model, dump, report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from headact.dump.data import file_sha256, read_samples
from headact.dump.loading import ModelSpec, load_model
from headact.dump.runner import DumpOptions, DumpResult, dump_model
from headact.errors import StoreExistsError
from headact.store.backends import backend_kind


def dump_files(
    spec: ModelSpec,
    data_path: str | os.PathLike,
    out: str | os.PathLike,
    options: DumpOptions,
    *,
    sample_num: int | None = None,
    seed: int = 42,
    field: str | None = None,
    report: Callable[[str], None] | None = None,
    model_name: str | None = None,
) -> DumpResult:
    """Check the output path, read the samples, load the model, then dump.

    `model_name` is what the store calls the model (default: the path or hub id given).
    """
    backend_kind(out)
    if Path(out).exists() and not (options.overwrite or options.resume):
        raise StoreExistsError(
            f"{out} already exists; pass --overwrite to replace it, or --resume to finish it."
        )
    samples = read_samples(data_path, sample_num=sample_num, seed=seed, field=field)
    model, tokenizer, _device = load_model(spec)
    data = {
        "path": str(data_path),
        "sha256": file_sha256(data_path),
        "n_records": samples.n_records,
        "format": samples.data_format,
        "field": samples.field,
        "sample_num": sample_num,
        "seed": seed,
        "selection": samples.selection,
    }
    result = dump_model(model, tokenizer, samples.texts, out, options=options,
                        index=samples.index, model_name=model_name or spec.name,
                        revision=spec.revision,
                        data=data, report=report)
    if sample_num is not None and sample_num > samples.n_records:
        note = (f"--sample-num {sample_num} is more than the {samples.n_records} records in "
                f"{data_path}; used all of them.")
        result = dataclasses.replace(result, notes=(*result.notes, note))
    return result
