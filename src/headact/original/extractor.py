"""`ActivationExtractor`: the original interface on headact's hooks, store and analysis.

Hooks are headact's `HeadStatsCollector` on the projections `resolve_output_projections`
finds (or `_get_hook_point` names); texts are tokenized as `headact dump` tokenizes them;
R_h and its interval come from `headact.analyze`. So an extractor's R_h equals the R_h of
`headact analyze` on a dump of the same texts, and `to_store` writes that very store.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from headact.dump.batching import default_max_length, pad_right
from headact.dump.data import select_indices
from headact.dump.hooks import HeadStatsCollector, StopForward, verify_projections
from headact.dump.projections import (
    Projection,
    ResolvedProjections,
    model_shape,
    resolve_output_projections,
)
from headact.errors import DataError, HeadactError, ModelError
from headact.original.hook import _as_projection, find_module
from headact.original.inputs import PreparedBatch, is_hf_tokenizer, prepare_batch
from headact.original.watch import ForwardWatch
from headact.store import layout
from headact.store.samples import SampleTable, hash_rows, text_hash, token_hash

if TYPE_CHECKING:
    from headact.analyze import AnalysisOptions, HeadEstimates

log = logging.getLogger("headact.original")


@dataclass(frozen=True)
class HeadStat:
    """One head's R_h with its bootstrap interval, the standard deviation over samples of
    the per-sample values, and how many samples gave a finite value."""

    layer_idx: int
    head_idx: int
    R_h: float
    ci_low: float
    ci_high: float
    std: float
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExtractedSample:
    """What identifies one extracted sample."""

    text: str | None
    token_ids: np.ndarray | None  # counted ids, None when the call passed no input_ids
    n_tokens: int
    truncated: bool


class ActivationExtractor:
    """Per-head activation strength R_h of one model, the original tool's interface.

    `ActivationExtractor(model, model_name)` detects the layers, heads and each layer's
    attention output projection; `set_model_structure` overrides the counts and
    `_get_hook_point(layer_idx)` (overridable) names the module to hook. The model is moved
    to CUDA when one is available and it is on the CPU (pass `device="cpu"` to keep it).
    """

    def __init__(
        self,
        model: nn.Module,
        model_name: str | None = None,
        *,
        tokenizer: Any = None,
        device: str | torch.device | None = None,
        sites: Sequence[str] = layout.SITES,
        max_length: int | None = None,
    ) -> None:
        self.model = model
        self.model_name = model_name or _name_of(model)
        self.tokenizer = tokenizer
        self.max_length = max_length
        bad = [s for s in sites if s not in layout.SITES]
        if bad or not sites:
            raise ValueError(f"`sites` must be among {', '.join(layout.SITES)}, not {sites!r}.")
        self.sites = tuple(s for s in layout.SITES if s in sites)
        self.device = _place(model, device)
        try:
            self.num_layers, self.num_heads = model_shape(model)
        except ModelError:
            self.num_layers = self.num_heads = None  # set_model_structure must give them
        self.layers: tuple[int, ...] | None = None
        self.heads: tuple[int, ...] | None = None
        self.projections: list[Projection] = []
        self._resolved: ResolvedProjections | None = None
        self._resolved_hooked: ResolvedProjections | None = None
        self._stack: contextlib.ExitStack | None = None
        self._collector: HeadStatsCollector | None = None
        self._watch: ForwardWatch | None = None
        self._verified = False
        self._pending: PreparedBatch | None = None
        self._batch_ids: torch.Tensor | None = None
        self._batch_mask: torch.Tensor | None = None
        self._stats: list[np.ndarray] = []  # per batch [batch, sites, layers, stats, heads]
        self._samples: list[ExtractedSample] = []
        self._largest_batch = 0
        self.version = 0  # changes whenever the extracted data change
        self._cache: dict[tuple, HeadEstimates] = {}

    # Structure --------------------------------------------------------------------------
    def set_model_structure(self, num_layers: int | None = None,
                            num_heads: int | None = None) -> None:
        """Override the detected number of layers and of attention heads."""
        for name, value in (("num_layers", num_layers), ("num_heads", num_heads)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be a positive integer, not {value!r}.")
        if self.registered:
            raise HeadactError("hooks are registered; call remove_hooks() before changing the "
                               "model structure.")
        self.num_layers = num_layers or self.num_layers
        self.num_heads = num_heads or self.num_heads
        self._resolved = None

    def _structure(self) -> tuple[int, int]:
        if self.num_layers is None or self.num_heads is None:
            raise ModelError(
                f"cannot detect the number of layers and heads of {type(self.model).__name__}; "
                "call set_model_structure(num_layers=..., num_heads=...)."
            )
        return self.num_layers, self.num_heads

    def _resolved_projections(self) -> ResolvedProjections:
        if self._resolved is None:
            num_layers, num_heads = self._structure()
            try:
                self._resolved = resolve_output_projections(
                    self.model, num_layers=num_layers, num_heads=num_heads)
            except ModelError as exc:
                raise ModelError(
                    f"{exc} In Python, override _get_hook_point(layer_idx) to return the "
                    "attention output projection's module path."
                ) from None
        return self._resolved

    def _get_hook_point(self, layer_idx: int) -> str:
        """The path of layer `layer_idx`'s attention output projection (whose input is y_h).

        Override it for models headact cannot resolve; the module must be a Linear or
        Conv1D whose input is num_heads × head_dim wide.
        """
        return self._resolved_projections().projections[layer_idx].path

    # Hooks ------------------------------------------------------------------------------
    @property
    def registered(self) -> bool:
        return self._stack is not None

    def register_hooks(self, layers: Iterable[int] | None = None,
                       heads: Iterable[int] | None = None) -> None:
        """Hook the chosen layers (default all) and keep the chosen heads (default all)."""
        num_layers, num_heads = self._structure()
        chosen_layers = select_indices(layers, num_layers, "layers")
        chosen_heads = select_indices(heads, num_heads, "heads")
        if self._samples and (chosen_layers, chosen_heads) != (self.layers, self.heads):
            raise HeadactError(
                f"{self.num_samples} samples were extracted for other layers or heads; call "
                "clear() first to extract a different selection."
            )
        self.remove_hooks()
        overridden = type(self)._get_hook_point is not ActivationExtractor._get_hook_point
        projections = []
        for layer in chosen_layers:
            path, module = find_module(self.model, self._get_hook_point(layer))
            projections.append(_as_projection(path, module, layer, num_heads))
        widths = {p.in_features for p in projections}
        if len(widths) > 1:
            raise ModelError(
                f"the hooked modules take inputs of different widths ({sorted(widths)}); every "
                "layer's hook point must be its attention output projection."
            )
        resolved_by = "user" if overridden else self._resolved_projections().resolved_by
        self._resolved_hooked = ResolvedProjections(projections, resolved_by, None)
        self.projections = projections
        self.layers, self.heads = chosen_layers, chosen_heads
        collector = HeadStatsCollector(projections, chosen_heads, self.sites)
        watch = ForwardWatch(self.model, self._begin, self._end)
        with contextlib.ExitStack() as stack:
            stack.enter_context(collector)
            watch.attach(stack)
            self._stack = stack.pop_all()
        self._collector, self._watch = collector, watch
        self._verified = False

    def remove_hooks(self) -> None:
        """Detach every hook this extractor attached; the model is left as it was."""
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._collector = None
        self._watch = None

    # Capturing --------------------------------------------------------------------------
    def _begin(self, mask: torch.Tensor, ids: torch.Tensor | None) -> None:
        assert self._collector is not None
        self._collector.begin(mask)
        self._batch_ids, self._batch_mask = ids, mask

    def _end(self) -> None:
        assert self._collector is not None
        stats = self._collector.result().to("cpu").numpy().copy()
        mask = self._batch_mask.to("cpu", torch.bool)
        ids = self._batch_ids.to("cpu") if self._batch_ids is not None else None
        pending, self._pending = self._pending, None
        batch = mask.shape[0]
        texts = pending.texts if pending is not None and pending.texts is not None and len(
            pending.texts) == batch else None
        truncated = pending.truncated if pending is not None and pending.truncated is not None \
            and len(pending.truncated) == batch else None
        for row in range(batch):
            counted = ids[row][mask[row]].numpy().astype(np.int64) if ids is not None else None
            self._samples.append(ExtractedSample(
                text=texts[row] if texts is not None else None,
                token_ids=counted,
                n_tokens=int(mask[row].sum()),
                truncated=bool(truncated[row]) if truncated is not None else False,
            ))
        self._stats.append(stats)
        self._largest_batch = max(self._largest_batch, batch)
        self.version += 1
        self._cache.clear()

    def _limit(self, tokenizer: Any) -> int:
        return self.max_length or default_max_length(self.model, tokenizer)

    def _tokenizer_for(self, batch_tokenizer: Any, batch: Any) -> Any:
        if batch_tokenizer is not None:
            if self.tokenizer is None:
                self.tokenizer = batch_tokenizer
            return batch_tokenizer
        if self.tokenizer is None and _holds_texts(batch):
            self.tokenizer = _load_tokenizer(self.model)
        return self.tokenizer

    def extract_activations(self, dataloader: Iterable[Any], tokenizer: Any = None,
                            max_batches: int | None = None) -> int:
        """Run the model over the batches and keep every hooked head's statistics.

        Batches: lists of texts or records (tokenized with `tokenizer`, a Hugging Face
        tokenizer or a function from texts to inputs; by default the model's own tokenizer),
        or dicts of tensors with `input_ids` and `attention_mask`. Hooks are registered for
        all layers and heads when none are, and removed again afterwards. Returns the number
        of samples added.
        """
        if max_batches is not None and max_batches < 0:
            raise ValueError(f"`max_batches` must be 0 or more, not {max_batches!r}.")
        auto = not self.registered
        if auto:
            self.register_hooks()
        before = self.num_samples
        training = self.model.training
        self.model.eval()
        try:
            for number, batch in enumerate(dataloader):
                if max_batches is not None and number >= max_batches:
                    break
                chosen = self._tokenizer_for(tokenizer, batch)
                prepared = prepare_batch(batch, chosen, self._limit)
                self._run(prepared)
        finally:
            self.model.train(training)
            if auto:
                self.remove_hooks()
        return self.num_samples - before

    def _run(self, prepared: PreparedBatch) -> None:
        assert self._collector is not None and self._watch is not None and self.layers
        inputs = {k: v.to(self.device) for k, v in prepared.inputs.items()}
        extra = _forward_kwargs(self.model)
        if not self._verified and "input_ids" in inputs:
            self._verify(inputs, extra)
        stop_early = self.num_layers is not None and self.layers[-1] < self.num_layers - 1
        self._pending = prepared
        self._collector.stop_after_last = stop_early
        try:
            with torch.inference_mode(), contextlib.suppress(StopForward):
                self.model(**inputs, **extra)
            self._watch.finish()
        except BaseException:
            self._watch.abandon()
            self._pending = None
            raise
        finally:
            self._collector.stop_after_last = False

    def _verify(self, inputs: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        """headact's check of the hook points on the first two samples' first 8 tokens."""
        assert self._watch is not None
        ids = inputs["input_ids"][:2].cpu()
        mask = inputs.get("attention_mask")
        mask = mask[:2].cpu().bool() if mask is not None else torch.ones_like(ids, dtype=bool)
        probe = [ids[i][mask[i]][:8].numpy() for i in range(ids.shape[0])]
        probe_ids, probe_mask = pad_right([p for p in probe if len(p)] or [ids[0][:8].numpy()],
                                          0)
        self._watch.paused = True
        try:
            verify_projections(self.model, self.projections,
                               {"input_ids": probe_ids.to(self.device),
                                "attention_mask": probe_mask.to(self.device), **extra})
        finally:
            self._watch.paused = False
        self._verified = True

    def clear(self) -> None:
        """Forget every extracted sample (hooks stay as they are)."""
        self._stats, self._samples = [], []
        self._largest_batch = 0
        self.version += 1
        self._cache.clear()

    # Results ----------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return len(self._samples)

    @property
    def samples(self) -> list[ExtractedSample]:
        return list(self._samples)

    def statistics(self, site: str = "z") -> dict[str, np.ndarray]:
        """float32 [sample, layer, head] per statistic (sum, sumsq, first, last, max)."""
        if site not in self.sites:
            raise DataError(f"site {site!r} was not extracted (sites: {', '.join(self.sites)}).")
        data = self._all_stats()
        s = self.sites.index(site)
        return {stat: data[:, s, :, k, :] for k, stat in enumerate(layout.STATS)}

    @property
    def n_tokens(self) -> np.ndarray:
        return np.array([s.n_tokens for s in self._samples], dtype=np.int64)

    def _all_stats(self) -> np.ndarray:
        if not self._stats:
            raise HeadactError("nothing was extracted yet; call extract_activations(dataloader) "
                               "first.")
        return np.concatenate(self._stats, axis=0)

    def estimates(self, options: AnalysisOptions | None = None, **settings: Any
                  ) -> HeadEstimates:
        """analyze's per-head estimates of R_h over the extracted samples.

        The same computation as `headact analyze` on `to_store`'s store: values of the
        reduction per sample, samples with too few tokens left out, bootstrap intervals from
        the same resampling weights.
        """
        from headact.analyze import AnalysisOptions, accumulate_arrays, estimate_heads
        from headact.analyze.reductions import MIN_TOKENS, reduce_stats
        from headact.analyze.run import chunk_rows_for

        options = replace(options or AnalysisOptions(), **settings)
        key = (self.version, options.site, options.reduction, options.n_boot, options.ci,
               options.ci_method, options.seed)
        if key not in self._cache:
            n_tokens = self.n_tokens
            values = reduce_stats(self.statistics(options.site), n_tokens, options.reduction)
            values = values[n_tokens >= MIN_TOKENS[options.reduction]]
            values = values.reshape(values.shape[0], -1)
            if values.shape[0] == 0:
                raise HeadactError(f"no extracted sample has enough tokens for reduction "
                                   f"{options.reduction}.")
            k = values.shape[1]
            acc = accumulate_arrays(values, n_boot=options.n_boot, seed=options.seed,
                                    chunk=chunk_rows_for(k, options.n_boot),
                                    matmul_dtype=np.float32)
            self._cache[key] = estimate_heads(acc, options.ci, options.ci_method)
        return self._cache[key]

    def get_all_stats(self, **settings: Any) -> list[HeadStat]:
        """One HeadStat per hooked head, layer by layer (settings as in AnalysisOptions)."""
        est = self.estimates(**settings)
        assert self.layers is not None and self.heads is not None
        stats = []
        for k, (layer, head) in enumerate((la, h) for la in self.layers for h in self.heads):
            stats.append(HeadStat(layer, head, float(est.r.value[k]), float(est.r.low[k]),
                                  float(est.r.high[k]), float(est.sd[k]), int(est.n[k])))
        return stats

    def compute_R_h(self, **settings: Any) -> dict[tuple[int, int], float]:
        """{(layer, head): R_h}; R_h is the mean over samples of the token-mean of ‖y_h‖₂."""
        return {(s.layer_idx, s.head_idx): s.R_h for s in self.get_all_stats(**settings)}

    def results(self, **settings: Any) -> dict[str, Any]:
        """The activations-v1 document (what save_results writes)."""
        from headact.analyze import AnalysisOptions
        from headact.analyze.reductions import MIN_TOKENS
        from headact.original.results import activations_document

        options = replace(AnalysisOptions(), **settings)
        est = self.estimates(options)
        return activations_document(
            model_name=self.model_name, layers=list(self.layers or ()),
            heads=list(self.heads or ()), estimates=est, options=options,
            num_layers=self.num_layers, num_heads=self.num_heads,
            num_samples=int((self.n_tokens >= MIN_TOKENS[options.reduction]).sum()),
        )

    def save_results(self, path: str | os.PathLike, **settings: Any) -> Path:
        """Write R_h per head with intervals as JSON (layout activations-v1, see README)."""
        from headact.original.results import ACTIVATIONS_SCHEMA, write_json

        return write_json(self.results(**settings), path, ACTIVATIONS_SCHEMA)

    def sample_table(self, texts: Sequence[str] | None = None) -> SampleTable:
        """The store's sample table: position, text hash, token hash, counts, truncation.

        A sample given as token ids is known by the text "token ids: 1 2 3 ..." (its text
        hash is that string's); `texts` overrides every sample's text.
        """
        n = self.num_samples
        if texts is None:
            texts = [identity_text(s) for s in self._samples]
        elif len(texts) != n:
            raise ValueError(f"`texts` has {len(texts)} entries for {n} samples")
        tokens = [s.token_ids if s.token_ids is not None else np.zeros(0, np.int64)
                  for s in self._samples]
        return SampleTable(
            index=np.arange(n, dtype=np.int64),
            text_hash=hash_rows([text_hash(t) for t in texts], n),
            token_hash=hash_rows([token_hash(t) for t in tokens], n),
            n_tokens=self.n_tokens.astype(np.int32),
            truncated=np.array([s.truncated for s in self._samples], dtype=np.uint8),
        )

    def to_store(self, path: str | os.PathLike, *, overwrite: bool = False,
                 texts: Sequence[str] | None = None) -> Path:
        """Write the extracted statistics as a format-1 store (NAME.zarr or NAME.h5).

        `headact analyze` reads it like any dump; its R_h equals `compute_R_h()`.
        """
        from headact.dump.provenance import tokenizer_metadata
        from headact.original.storing import store_metadata, write_store

        stats = self._all_stats()
        assert self.layers is not None and self.heads is not None
        assert self._resolved_hooked is not None
        tokenizer = self.tokenizer if is_hf_tokenizer(self.tokenizer) else None
        limit = self._limit(tokenizer) if tokenizer is not None else self.max_length or int(
            self.n_tokens.max(initial=1))
        metadata = store_metadata(
            model=self.model, model_name=self.model_name, resolved=self._resolved_hooked,
            num_layers=self.num_layers or len(self.layers),
            tokenizer=tokenizer_metadata(self.tokenizer, limit, model=self.model),
            n_samples=self.num_samples, sites=self.sites, device=self.device,
            batch_size=self._largest_batch,
        )
        return write_store(path, stats=stats, samples=self.sample_table(texts),
                           layers=self.layers,
                           heads=self.heads, sites=self.sites, metadata=metadata,
                           overwrite=overwrite)

    def __enter__(self) -> ActivationExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_hooks()


def identity_text(sample: ExtractedSample, *, use_text: bool = True) -> str:
    """The text a sample is known by: its own, else its token ids written out."""
    if sample.text is not None and use_text:
        return sample.text
    if sample.token_ids is not None:
        return "token ids: " + " ".join(str(int(t)) for t in sample.token_ids)
    return ""


def _name_of(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "_name_or_path", "") or getattr(model, "name_or_path", "")
               or type(model).__name__)


def _place(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """CUDA when available (the original's default) unless the model is placed already."""
    current = next(model.parameters()).device
    if getattr(model, "hf_device_map", None):
        return current
    if device is None or device == "auto":
        if current.type != "cpu" or not torch.cuda.is_available():
            return current
        device = "cuda"
    target = torch.device(device)
    if target != current:
        model.to(target)
    return next(model.parameters()).device


def _forward_kwargs(model: nn.Module) -> dict[str, Any]:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"use_cache": False} if "use_cache" in params else {}


def _holds_texts(batch: Any) -> bool:
    from headact.original.inputs import batch_texts

    if isinstance(batch, dict) and ("input_ids" in batch or "inputs_embeds" in batch):
        return False
    return batch_texts(batch) is not None


def _load_tokenizer(model: nn.Module) -> Any:
    """The tokenizer saved beside the model, for batches of texts given without one."""
    name = _name_of(model)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, TypeError):
        raise DataError(
            f"the batches hold texts and no tokenizer was given, and none loads from {name!r}; "
            "pass tokenizer= to extract_activations."
        ) from None
    log.info("tokenizing with the tokenizer of %s", name)
    return tokenizer
