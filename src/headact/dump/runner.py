"""Dump per-sample per-head norm statistics of a loaded model over texts into a store."""

from __future__ import annotations

import contextlib
import inspect
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headact.dump.background import BackgroundBlockWriter
from headact.dump.batching import (
    bucket_batches,
    default_max_length,
    pad_id_of,
    pad_right,
    tokenize_texts,
)
from headact.dump.data import select_indices
from headact.dump.hooks import HeadStatsCollector, StopForward, verify_projections
from headact.dump.projections import resolve_output_projections
from headact.dump.provenance import (
    caller_data_metadata,
    hook_metadata,
    model_metadata,
    run_metadata,
    tokenizer_metadata,
)
from headact.dump.transfer import HostCopies
from headact.errors import DataError, DumpInterrupted, StoreError
from headact.store import layout
from headact.store.resume import open_for_resume
from headact.store.samples import SampleTable
from headact.store.writer import RawPlan, StorePlan, StoreWriter, default_block_size

log = logging.getLogger("headact.dump")


@dataclass(frozen=True)
class DumpOptions:
    """How to dump: which sites, layers and heads, batch and block sizes, truncation."""

    sites: tuple[str, ...] = layout.SITES
    layers: Sequence[int] | str | None = None  # indices, or a spec like "0,2,5-7"
    heads: Sequence[int] | str | None = None
    batch_size: int = 8
    max_length: int | None = None
    block_size: int | None = None
    overwrite: bool = False
    resume: bool = False
    hook_module: str | None = None
    progress: bool = False
    command_line: str | None = None
    raw_sites: tuple[str, ...] = ()  # empty: no raw vectors
    raw_layers: Sequence[int] | str | None = None  # default: every dumped layer
    raw_dtype: str = "float16"
    force: bool = False  # write raw vectors even when they look larger than the free space


@dataclass(frozen=True)
class DumpResult:
    """What a finished dump wrote and how fast."""

    path: Path
    n_samples: int
    n_tokens: int
    n_truncated: int
    duration_s: float
    samples_per_s: float
    tokens_per_s: float
    writing_s: float
    nonfinite: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _raw_plan(options: DumpOptions, layers: tuple[int, ...], n_heads: int, projection,
              lengths: np.ndarray) -> RawPlan | None:
    """The raw-vector layout, or None when raw vectors were not asked for."""
    if not options.raw_sites:
        return None
    sites = _check_sites(options.raw_sites)
    if options.raw_dtype not in layout.RAW_DTYPES:
        raise DataError(f"--raw-dtype {options.raw_dtype}: choose from "
                        f"{', '.join(layout.RAW_DTYPES)}.")
    raw_layers = select_indices(options.raw_layers, max(layers) + 1, "raw layers")
    missing = [layer for layer in raw_layers if layer not in layers]
    if missing:
        raise DataError(f"--raw-layers {missing[0]} is not among the dumped --layers; add it "
                        "there too.")
    dims = [projection.head_dim if site == "z" else projection.out_features for site in sites]
    return RawPlan.build(sites, raw_layers, options.raw_dtype, dims, lengths, n_heads)


def _check_raw_size(raw: RawPlan, n_heads: int, out: Path, options: DumpOptions,
                    report: Callable[[str], None] | None) -> None:
    """Say how much the raw vectors will take; refuse more than the free space unless forced."""
    from headact.store.summary import human_bytes

    size = raw.bytes_on_disk(n_heads)
    folder = out.parent if out.parent.exists() else Path(".")
    free = shutil.disk_usage(folder).free
    if report:
        report(f"raw vectors ({', '.join(raw.sites)}; {len(raw.layers)} layers, {n_heads} heads,"
               f" {raw.n_tokens:,} tokens, {raw.dtype}) will take {human_bytes(size)} "
               f"({size:,} bytes); {human_bytes(free)} free.")
    if size > free and not options.force:
        raise DataError(
            f"the raw vectors need {human_bytes(size)} but only {human_bytes(free)} is free at "
            f"{folder}; free space, narrow --raw-layers / --raw-sites, or pass --force."
        )


def _forward_kwargs(model: torch.nn.Module) -> dict[str, Any]:
    params = inspect.signature(model.forward).parameters
    extra: dict[str, Any] = {}
    if "use_cache" in params:
        extra["use_cache"] = False
    return extra


def _check_sites(sites: Sequence[str]) -> tuple[str, ...]:
    bad = [s for s in sites if s not in layout.SITES]
    if bad or not sites:
        raise DataError(f"--sites {','.join(sites)}: choose from {', '.join(layout.SITES)}.")
    return tuple(s for s in layout.SITES if s in sites)


def dump_model(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    out: str | Path,
    *,
    options: DumpOptions | None = None,
    index: Sequence[int] | None = None,
    model_name: str | None = None,
    revision: str | None = None,
    data: dict[str, Any] | None = None,
    report: Callable[[str], None] | None = None,
) -> DumpResult:
    """Hook every chosen head of an already-loaded model and write a format-1 store of `texts`.

    `index` gives each text's position in its source (default 0..n-1); `data` fills the
    store's `data` section (path, sha256, selection...) when the texts came from a file;
    `report` receives what should be said before the work starts (e.g. the raw size).
    """
    options = options or DumpOptions()
    if options.batch_size < 1:
        raise DataError("--batch-size must be at least 1.")
    texts = list(texts)
    if not texts:
        raise DataError("there are no texts to dump; give at least one.")
    sites = _check_sites(options.sites)
    resolved = resolve_output_projections(model, template=options.hook_module)
    n_layers = len(resolved.projections)
    num_heads = resolved.projections[0].num_heads
    layers = select_indices(options.layers, n_layers, "layers")
    heads = select_indices(options.heads, num_heads, "heads")
    projections = [resolved.projections[i] for i in layers]
    device = next(model.parameters()).device

    max_length = options.max_length or default_max_length(model, tokenizer)
    tokens = tokenize_texts(tokenizer, texts, max_length)
    lengths = tokens.lengths
    index = list(range(len(texts))) if index is None else list(index)
    samples = SampleTable.build(index, texts, tokens.ids, tokens.truncated)
    pad_id = pad_id_of(tokenizer)
    forward_extra = _forward_kwargs(model)

    probe = [x[:8] for x in tokens.ids[:2]]
    probe_ids, probe_mask = pad_right(probe, pad_id)
    verify_projections(model, projections, {"input_ids": probe_ids.to(device),
                                            "attention_mask": probe_mask.to(device),
                                            **forward_extra})

    block_size = options.block_size or default_block_size(len(layers), len(heads))
    raw = _raw_plan(options, layers, len(heads), projections[0], lengths)
    plan = StorePlan(len(texts), layers, heads, sites, block_size, raw)
    if raw is not None:
        _check_raw_size(raw, len(heads), Path(out), options, report)
    metadata = {
        "model": model_metadata(model, resolved, model_name, revision),
        "tokenizer": tokenizer_metadata(tokenizer, max_length, model=model),
        "data": data or caller_data_metadata(len(texts), "texts passed in by the caller, in order"),
        "hook": hook_metadata(resolved, projections, sites),
        "run": run_metadata(model, device, batch_size=options.batch_size,
                            command_line=options.command_line),
    }
    if options.resume and options.overwrite:
        raise DataError("--resume and --overwrite contradict each other; pass one of them.")
    if options.resume and Path(out).exists():
        planned = {**metadata, "layout": plan.layout_metadata(),
                   "raw": plan.raw.metadata() if plan.raw else None}
        writer = open_for_resume(out, planned, samples)
        plan = writer.plan
        done = int(np.sum(writer.done_blocks()))
        log.info("resuming %s: %d of %d blocks already done", out, done, plan.n_blocks)
    else:
        writer = StoreWriter.create(out, plan, samples, metadata, overwrite=options.overwrite,
                                    token_ids=tokens.ids)
    try:
        return _run_blocks(model, writer, plan, tokens, lengths, projections, pad_id,
                           forward_extra, options, device)
    finally:
        writer.close()


def _run_blocks(model, writer: StoreWriter, plan: StorePlan, tokens, lengths, projections,
                pad_id: int, forward_extra: dict, options: DumpOptions,
                device: torch.device) -> DumpResult:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    todo = [b for b, done in enumerate(writer.done_blocks()) if not done]
    bar = tqdm(total=plan.n_samples, unit="sample", disable=not options.progress,
               desc="dump", dynamic_ncols=True)
    bar.update(plan.n_samples - sum(plan.block_rows(b).stop - plan.block_rows(b).start
                                    for b in todo))
    background = BackgroundBlockWriter(writer.write_block)
    try:
        counted = _run_todo(model, plan, todo, tokens, lengths, projections, pad_id,
                            forward_extra, options, device, background, bar, started)
        background.close()  # waits for the last blocks; raises the writer's error, if any
    except KeyboardInterrupt:
        _close_quietly(background, bar)
        done = int(writer.backend.read(layout.DONE).sum())
        raise DumpInterrupted(
            f"interrupted: {done} of {plan.n_samples} samples are committed "
            f"in {writer.path}; finish it by running the same command with --resume."
        ) from None
    except OSError as exc:
        _close_quietly(background, bar)
        raise StoreError(
            f"cannot write to {writer.path} ({exc.strerror or exc}); what was committed stays "
            "readable — free space or fix the directory, then run the same command with "
            "--resume."
        ) from None
    finally:
        _close_quietly(background, bar)
    duration = time.perf_counter() - started
    n_samples = sum(plan.block_rows(b).stop - plan.block_rows(b).start for b in todo)
    run = {
        "duration_s": round(duration, 3),
        "samples_per_s": round(n_samples / duration, 3) if duration else None,
        "tokens_per_s": round(counted / duration, 3) if duration else None,
    }
    writer.finalize(run)
    nonfinite = writer.metadata.get("nonfinite", {})
    for site, count in nonfinite.items():
        if count:
            log.warning("%d (sample, layer, head) cells at site %s are not finite", count, site)
    return DumpResult(
        path=writer.path,
        n_samples=plan.n_samples,
        n_tokens=int(lengths.sum()),
        n_truncated=int(tokens.truncated.sum()),
        duration_s=duration,
        samples_per_s=run["samples_per_s"] or 0.0,
        tokens_per_s=run["tokens_per_s"] or 0.0,
        writing_s=background.seconds_writing,
        nonfinite=dict(nonfinite),
    )


def _run_todo(model, plan: StorePlan, todo: list[int], tokens, lengths, projections, pad_id: int,
              forward_extra: dict, options: DumpOptions, device: torch.device,
              background: BackgroundBlockWriter, bar, started: float) -> int:
    """Run every unfinished block's batches and hand each finished block to the writer."""
    cuda = device.type == "cuda"
    n_sites = len(plan.sites)
    counted = 0
    raw = plan.raw
    collector = HeadStatsCollector(
        # Nothing after the last hooked projection's input is needed (not its output, not the
        # MLP, not the layers above nor the final norm), so every forward stops there.
        projections, plan.heads, plan.sites, stop_after_last=True,
        raw_sites=raw.sites if raw else (), raw_layers=raw.layers if raw else (),
        raw_dtype=RAW_TORCH_DTYPES[raw.dtype] if raw else torch.float16,
    )
    copies = HostCopies(device)
    with collector, torch.inference_mode():
        for block in todo:
            rows = plan.block_rows(block)
            block_rows = np.arange(rows.start, rows.stop)
            values = np.empty((len(block_rows), n_sites, len(projections), len(layout.STATS),
                               len(plan.heads)), dtype=np.float32)
            raw_values = _raw_buffers(raw, rows, len(plan.heads))
            for batch in bucket_batches(block_rows, lengths, options.batch_size):
                input_ids, mask = pad_right([tokens.ids[i] for i in batch], pad_id, pin=cuda)
                input_ids = input_ids.to(device, non_blocking=cuda)
                mask = mask.to(device, non_blocking=cuda)
                collector.begin(mask)
                with contextlib.suppress(StopForward):
                    model(input_ids=input_ids, attention_mask=mask, **forward_extra)
                copies.push(collector.result(), _placer(values, batch - rows.start))
                if raw is not None:
                    _place_raw(raw, collector.raw_result(), raw_values, batch, lengths, rows)
                n_tok = int(lengths[batch].sum())
                counted += n_tok
                bar.update(len(batch))
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix_str(f"{counted / elapsed:,.0f} tok/s", refresh=False)
            copies.drain()
            background.submit(block, {
                (site, stat): values[:, s, :, k, :]
                for s, site in enumerate(plan.sites)
                for k, stat in enumerate(layout.STATS)
            }, raw_values)
    return counted


def _placer(values: np.ndarray, positions: np.ndarray) -> Callable[[np.ndarray], None]:
    """Where a batch's statistics go in its block, once they reach the host."""

    def place(array: np.ndarray) -> None:
        values[positions] = array

    return place


RAW_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                    "float32": torch.float32}


def _raw_buffers(raw: RawPlan | None, rows: slice, n_heads: int) -> dict[str, np.ndarray] | None:
    """Host buffers for one block's raw vectors, in the stored dtype."""
    if raw is None:
        return None
    tokens = raw.token_rows(rows)
    stored = layout.RAW_DTYPES[raw.dtype][0]
    return {site: np.empty((tokens.stop - tokens.start, len(raw.layers), n_heads, dim), stored)
            for site, dim in zip(raw.sites, raw.dims, strict=True)}


def _place_raw(raw: RawPlan, batch_raw: dict[str, torch.Tensor], buffers: dict[str, np.ndarray],
               batch: np.ndarray, lengths: np.ndarray, rows: slice) -> None:
    """Copy a batch's token vectors to where each sample's tokens belong in the block."""
    counts = lengths[batch]
    source_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    block_start = raw.token_start[rows.start]
    shift = np.repeat(raw.token_start[batch] - block_start - source_start, counts)
    target = np.arange(int(counts.sum())) + shift
    for site, tensor in batch_raw.items():
        host = tensor.cpu()
        if host.dtype == torch.bfloat16:  # no numpy bfloat16: keep the bits
            array = host.view(torch.int16).numpy().view(np.uint16)
        else:
            array = host.numpy()
        buffers[site][target] = array


def _close_quietly(background: BackgroundBlockWriter, bar) -> None:
    """Let queued blocks finish writing; an error already being handled takes precedence."""
    with contextlib.suppress(Exception):
        background.close()
    bar.close()
