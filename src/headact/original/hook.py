"""`ActivationHook`: one head's output at one layer, hooked on any named module.

On an attention output projection it captures the head's slice of the projection's input
(y_h, site z, exactly what `headact dump` measures) through headact's own
`HeadStatsCollector`; on any other module it splits the module's output into heads when that
output is heads × head_dim wide, and refuses otherwise.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from headact.dump.head_stats import masked_norm_stats, token_norms
from headact.dump.hooks import HeadStatsCollector
from headact.dump.projections import (
    Projection,
    ResolvedProjections,
    base_model_of,
    config_value,
    model_shape,
    resolve_output_projections,
    weight_layout,
)
from headact.errors import HeadactError, ModelError
from headact.original.watch import ForwardWatch
from headact.store.layout import STATS

CAPTURES = ("auto", "input", "output")
_FUSED_QKV = ("c_attn", "qkv", "query_key_value", "Wqkv", "qkv_proj")


def find_module(model: nn.Module, path: str) -> tuple[str, nn.Module]:
    """The module at `path`, also when the path is written for the base model or a wrapper."""
    modules = dict(model.named_modules())
    _, prefix = base_model_of(model)
    candidates = [path, prefix + path]
    if prefix and path.startswith(prefix):
        candidates.append(path[len(prefix):])
    for name in candidates:
        if name in modules:
            return name, modules[name]
    tails = [name for name in modules if name.endswith("." + path)]
    if len(tails) == 1:
        return tails[0], modules[tails[0]]
    raise ModelError(
        f"the model has no module {path!r}; list its module paths with "
        "[name for name, _ in model.named_modules()] and pass one of them."
    )


def try_resolve(model: nn.Module, num_layers: int | None = None,
                num_heads: int | None = None) -> ResolvedProjections | None:
    """The model's attention output projections, or None when they cannot be found."""
    try:
        return resolve_output_projections(model, num_layers=num_layers, num_heads=num_heads)
    except ModelError:
        return None


class ActivationHook:
    """Capture head `head_idx`'s per-token output norms at one module.

    `register(model, module_path)` decides what to capture (`capture="auto"`):

    - on an attention output projection (the Linear/Conv1D that headact resolves for the
      model, e.g. GPT-2's `transformer.h.0.attn.c_proj`, Llama's `model.layers.0.self_attn
      .o_proj`), the head's slice of the projection's *input*: y_h, the same vector as
      `headact dump`'s site z;
    - on any other module, the head's slice of the module's *output*, when that output is
      num_heads × head_dim wide (e.g. a query projection gives the head's queries);
      otherwise it refuses. GPT-2's `transformer.h.0.attn.c_attn` (the original README's
      example) is the fused query/key/value projection, 3 × d_model wide: it is refused with
      a message naming `transformer.h.0.attn.c_proj`, whose input holds the heads' outputs.

    `capture="input"` or `"output"` forces one reading. Only tokens the attention mask of the
    model's call counts are used (all tokens when the call passes no mask). Per forward
    sample it keeps the sum, sum of squares, first, last and max of ‖y_{h,t}‖₂ over tokens,
    and with `keep_activations=True` the vectors themselves (`activations`, one
    [tokens, head_dim] CPU tensor per sample).
    """

    def __init__(self, layer_idx: int, head_idx: int, *, num_heads: int | None = None,
                 capture: str = "auto", keep_activations: bool = False) -> None:
        if capture not in CAPTURES:
            raise ValueError(f"`capture` must be one of {', '.join(CAPTURES)}, not {capture!r}.")
        self.layer_idx = int(layer_idx)
        self.head_idx = int(head_idx)
        self.num_heads = num_heads
        self.capture = capture
        self.keep_activations = keep_activations
        self.module_path: str | None = None
        self.mode: str | None = None  # "projection input" or "module output"
        self.head_dim: int | None = None
        self.activations: list[torch.Tensor] = []
        self._stats: list[np.ndarray] = []  # per batch [batch, stats]
        self._n_tokens: list[np.ndarray] = []
        self._stack: contextlib.ExitStack | None = None
        self._collector: HeadStatsCollector | None = None
        self._mask: torch.Tensor | None = None
        self._batch: torch.Tensor | None = None
        self._batch_vectors: torch.Tensor | None = None
        self._calls = 0

    # Registration ------------------------------------------------------------------------
    @property
    def registered(self) -> bool:
        return self._stack is not None

    def register(self, model: nn.Module, module_path: str) -> ActivationHook:
        """Hook the module at `module_path` of `model`; returns self."""
        if self._stack is not None:
            raise HeadactError(
                f"this hook is already registered on {self.module_path}; call remove() first."
            )
        path, module = find_module(model, module_path)
        resolved = try_resolve(model, num_heads=self.num_heads)
        num_heads = self.num_heads or (resolved.projections[0].num_heads if resolved else None)
        if num_heads is None:
            try:
                num_heads = model_shape(model)[1]
            except ModelError:
                raise ModelError(
                    f"cannot tell how many heads {type(model).__name__} has; pass "
                    "ActivationHook(layer_idx, head_idx, num_heads=N)."
                ) from None
        if not 0 <= self.head_idx < num_heads:
            raise ModelError(
                f"head_idx {self.head_idx} is out of range; the model has {num_heads} heads "
                f"(0-{num_heads - 1})."
            )
        projection = next((p for p in resolved.projections if p.module is module), None) \
            if resolved else None
        layer_projection = resolved.projections[self.layer_idx] if resolved and \
            0 <= self.layer_idx < len(resolved.projections) else None
        head_dim = (layer_projection or projection).head_dim if (layer_projection or projection) \
            else _config_head_dim(model, num_heads)
        mode = self.capture
        if mode == "auto":
            mode = "input" if projection is not None else "output"
        self.num_heads, self.head_dim, self.module_path = num_heads, head_dim, path
        with contextlib.ExitStack() as stack:
            if mode == "input":
                projection = projection or _as_projection(path, module, self.layer_idx,
                                                          num_heads)
                if projection.layer != self.layer_idx and self.capture == "auto":
                    warnings.warn(f"{path} is layer {projection.layer}'s output projection, but "
                                  f"this hook's layer_idx is {self.layer_idx}.", stacklevel=2)
                self.head_dim = projection.head_dim
                self._collector = HeadStatsCollector(
                    [projection], [self.head_idx], ("z",),
                    raw_sites=("z",) if self.keep_activations else (),
                    raw_layers=(projection.layer,) if self.keep_activations else (),
                    raw_dtype=torch.float32)
                stack.enter_context(self._collector)
                self.mode = "projection input"
            else:
                self._check_output_width(path, module, num_heads, head_dim, layer_projection)
                stack.callback(module.register_forward_hook(self._on_output).remove)
                self.mode = "module output"
            ForwardWatch(model, self._begin, self._end).attach(stack)
            self._stack = stack.pop_all()
        return self

    def _check_output_width(self, path: str, module: nn.Module, num_heads: int, head_dim: int,
                            layer_projection: Projection | None) -> None:
        right = f" The heads' outputs y_h are the input of {layer_projection.path}; register " \
                "on that module." if layer_projection is not None else ""
        shape = weight_layout(module)
        if shape is not None and shape[2] != num_heads * head_dim:
            fused = shape[2] == 3 * num_heads * head_dim or path.rsplit(".", 1)[-1] in _FUSED_QKV
            what = ("the fused query/key/value projection" if fused
                    else f"a {type(module).__name__}")
            raise ModelError(
                f"{path} is {what}: its output is {shape[2]} wide, not {num_heads} heads × "
                f"{head_dim}, so it does not split into heads.{right}"
            )
        if layer_projection is not None and layer_projection.path.startswith(path + "."):
            warnings.warn(
                f"{path} contains the attention output projection: its output comes after "
                f"{layer_projection.path}, which mixes the heads, so its slices are not y_h."
                f"{right}", stacklevel=3)

    def remove(self) -> None:
        """Detach every hook this object attached (safe to call twice)."""
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._collector = None
        self._mask = None

    def __enter__(self) -> ActivationHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # Per forward ------------------------------------------------------------------------
    def _begin(self, mask: torch.Tensor, ids: torch.Tensor | None) -> None:
        self._mask = mask
        self._calls = 0
        if self._collector is not None:
            self._collector.begin(mask)

    def _on_output(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._mask is None:
            return
        self._calls += 1
        y = output[0] if isinstance(output, (tuple, list)) else output
        mask = self._mask
        assert self.num_heads is not None and self.head_dim is not None
        width = self.num_heads * self.head_dim
        if not isinstance(y, torch.Tensor) or y.dim() != 3 or tuple(y.shape[:2]) != tuple(
                mask.shape) or y.shape[-1] != width:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ModelError(
                f"{self.module_path} returned {shape}, not [batch, tokens, {self.num_heads} "
                f"heads × {self.head_dim}]; hook the attention output projection instead."
            )
        keep = mask.to(y.device, dtype=torch.bool)
        batch, tokens, _ = y.shape
        z = y.detach().to(torch.float32).view(batch, tokens, self.num_heads, self.head_dim)
        z = z[:, :, self.head_idx: self.head_idx + 1]
        self._batch = masked_norm_stats(token_norms(z, None), keep)[:, :, 0]
        if self.keep_activations:
            self._batch_vectors = z[:, :, 0][keep]

    def _end(self) -> None:
        mask, self._mask = self._mask, None
        if mask is None:
            return
        if self._collector is not None:
            stats = self._collector.result()[:, 0, 0, :, 0]
            vectors = self._collector.raw_result().get("z")
            vectors = vectors[:, 0, 0] if vectors is not None else None
        else:
            if self._calls != 1:
                raise ModelError(
                    f"the hook on {self.module_path} fired {self._calls} times in one forward "
                    "pass instead of once; hook a module that runs once per layer."
                )
            stats, vectors = self._batch, self._batch_vectors
            self._batch = self._batch_vectors = None
        assert stats is not None
        counts = mask.sum(1).cpu().numpy().astype(np.int64)
        self._stats.append(stats.cpu().numpy())
        self._n_tokens.append(counts)
        if self.keep_activations and vectors is not None:
            self.activations.extend(torch.split(vectors.cpu(), counts.tolist()))

    # Results ----------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return int(sum(len(n) for n in self._n_tokens))

    @property
    def n_tokens(self) -> np.ndarray:
        """int64 [sample]: tokens counted per sample."""
        return np.concatenate(self._n_tokens) if self._n_tokens else np.zeros(0, np.int64)

    @property
    def statistics(self) -> dict[str, np.ndarray]:
        """float32 [sample] per statistic: sum, sumsq, first, last, max of ‖y_{h,t}‖₂."""
        data = np.concatenate(self._stats) if self._stats else np.zeros((0, len(STATS)),
                                                                         np.float32)
        return {stat: data[:, k] for k, stat in enumerate(STATS)}

    def values(self, reduction: str = "token-mean") -> np.ndarray:
        """float64 [sample]: each sample's value under analyze's `reduction`."""
        from headact.analyze.reductions import reduce_stats

        return reduce_stats(self.statistics, self.n_tokens, reduction)

    def compute_R_h(self, reduction: str = "token-mean") -> float:
        """R_h: the mean over samples of `values(reduction)` (NaN before any forward)."""
        x = self.values(reduction)
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else float("nan")

    def clear(self) -> None:
        """Forget what was captured (the hook stays registered)."""
        self._stats, self._n_tokens, self.activations = [], [], []


def _config_head_dim(model: nn.Module, num_heads: int) -> int:
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    head_dim = config_value(config, "head_dim")
    if head_dim:
        return head_dim
    hidden = config_value(config, "hidden_size", "n_embd", "d_model", "dim")
    if hidden is None or hidden % num_heads:
        raise ModelError(
            f"cannot tell the head dimension of {type(model).__name__}; hook its attention "
            "output projection, whose input width gives it."
        )
    return hidden // num_heads


def _as_projection(path: str, module: nn.Module, layer: int, num_heads: int) -> Projection:
    """A user-named module read as an output projection (Linear/Conv1D, input heads × d)."""
    shape = weight_layout(module)
    if shape is None:
        raise ModelError(
            f"{path} is a {type(module).__name__}, not a Linear or Conv1D projection whose "
            "input holds the heads; pass the attention output projection's path."
        )
    kind, fan_in, fan_out = shape
    if fan_in % num_heads:
        raise ModelError(
            f"{path} takes {fan_in} inputs, which do not split into {num_heads} heads; pass the "
            "attention output projection's path."
        )
    return Projection(layer, path, module, kind, fan_in, fan_out, num_heads)
