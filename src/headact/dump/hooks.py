"""Forward pre-hooks on the output projections that reduce each batch to per-head statistics."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from headact.dump.head_stats import N_STATS, masked_norm_stats, norm_factors, token_norms
from headact.dump.projections import Projection
from headact.errors import ModelError


class StopForward(Exception):
    """Raised by the last hooked layer's hook: nothing after it is needed."""


class HeadStatsCollector(contextlib.AbstractContextManager):
    """Hooks every projection on enter, removes every hook on exit, even after an error.

    Per batch: `begin(mask)`, run the model, then `result()` is a device tensor
    [batch, sites, layers, stats, heads] in float32, and `raw_result()` holds, per raw site,
    the counted tokens' vectors [tokens, raw layers, heads, dim] (batch rows in order).
    """

    def __init__(
        self,
        projections: Sequence[Projection],
        heads: Sequence[int],
        sites: Sequence[str],
        *,
        stop_after_last: bool = False,
        raw_sites: Sequence[str] = (),
        raw_layers: Sequence[int] = (),
        raw_dtype: torch.dtype = torch.float16,
    ) -> None:
        self.projections = list(projections)
        self.sites = tuple(sites)
        self.stop_after_last = stop_after_last
        first = self.projections[0]
        self.num_heads = first.num_heads
        self.head_dim = first.head_dim
        self.device = first.module.weight.device if hasattr(first.module, "weight") else (
            next(first.module.parameters()).device)
        self.head_index = torch.as_tensor(list(heads), dtype=torch.long, device=self.device)
        self.all_heads = list(heads) == list(range(self.num_heads))
        # Per layer, the factor of W_O^h's Gram matrix for the out site (None for z).
        self.factors: list[list[torch.Tensor | None]] = []
        for p in self.projections:
            factor = None
            if "out" in self.sites:
                factor = norm_factors(p.effective_weight(), p.num_heads).to(self.device)
                if not self.all_heads:
                    factor = factor.index_select(0, self.head_index)
            self.factors.append([factor if site == "out" else None for site in self.sites])
        self.raw_sites = tuple(raw_sites)
        self.raw_dtype = raw_dtype
        # slot of each hooked projection -> its position among the raw layers
        self.raw_slot = {slot: k for k, layer in enumerate(raw_layers)
                         for slot, p in enumerate(self.projections) if p.layer == layer}
        self.raw_weights: dict[int, torch.Tensor] = {}
        if "out" in self.raw_sites:
            for slot in self.raw_slot:
                p = self.projections[slot]
                w = p.effective_weight().to(self.device, torch.float32)
                w = w.reshape(p.num_heads, p.head_dim, w.shape[1])
                self.raw_weights[slot] = w if self.all_heads else w.index_select(0,
                                                                                 self.head_index)
        self._raw: dict[str, torch.Tensor] = {}
        self._token_index: torch.Tensor | None = None
        self._stack = contextlib.ExitStack()
        self._mask: torch.Tensor | None = None
        self._out: torch.Tensor | None = None
        self.calls = [0] * len(self.projections)

    def __enter__(self) -> HeadStatsCollector:
        with contextlib.ExitStack() as stack:
            for slot, projection in enumerate(self.projections):
                handle = projection.module.register_forward_pre_hook(self._make_hook(slot))
                stack.callback(handle.remove)
            # Only once every hook is attached does this object own them.
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._mask = None
        self._out = None
        self._raw = {}

    def begin(self, mask: torch.Tensor) -> None:
        """Prepare for one forward pass over a batch with this attention mask."""
        self._mask = mask.to(self.device, dtype=torch.bool)
        batch = mask.shape[0]
        self._out = torch.full(
            (batch, len(self.sites), len(self.projections), N_STATS, len(self.head_index)),
            float("nan"), dtype=torch.float32, device=self.device,
        )
        self.calls = [0] * len(self.projections)
        if self.raw_sites:
            flat = self._mask.reshape(-1)
            self._token_index = flat.nonzero().squeeze(1)
            n_tok = int(self._token_index.numel())
            heads = len(self.head_index)
            out_dim = self.projections[0].out_features
            self._raw = {
                site: torch.empty((n_tok, len(set(self.raw_slot.values())), heads,
                                   self.head_dim if site == "z" else out_dim),
                                  dtype=self.raw_dtype, device=self.device)
                for site in self.raw_sites
            }

    def raw_result(self) -> dict[str, torch.Tensor]:
        """Per raw site, [counted tokens of the batch, raw layers, heads, dim]."""
        return self._raw

    def result(self) -> torch.Tensor:
        """The batch's statistics; every hook must have fired exactly once."""
        if self._out is None:
            raise RuntimeError("begin() was not called")
        wrong = [(p.path, n) for p, n in zip(self.projections, self.calls, strict=True) if n != 1]
        if wrong:
            path, count = wrong[0]
            raise ModelError(
                f"the hook on {path} fired {count} times in one forward pass instead of once; "
                "pass --hook-module with a module that runs once per layer."
            )
        return self._out

    def _make_hook(self, slot: int):
        last_slot = len(self.projections) - 1

        def hook(module: nn.Module, args: tuple) -> None:
            self.calls[slot] += 1
            if self._mask is None or self._out is None:
                return
            x = args[0]
            batch, tokens_, _width = x.shape
            z = x.detach().to(torch.float32).view(batch, tokens_, self.num_heads, self.head_dim)
            if not self.all_heads:
                z = z.index_select(2, self.head_index)
            # Every site's norms side by side, reduced over the tokens in one go.
            norms = torch.cat([token_norms(z, factor) for factor in self.factors[slot]], dim=-1)
            stats = masked_norm_stats(norms, self._mask)  # [batch, stats, sites × heads]
            self._out[:, :, slot] = stats.view(batch, N_STATS, len(self.sites), -1).transpose(1, 2)
            if slot in self.raw_slot:
                tokens = z.reshape(batch * tokens_, *z.shape[2:]).index_select(0,
                                                                               self._token_index)
                k = self.raw_slot[slot]
                for site in self.raw_sites:
                    vectors = tokens if site == "z" else torch.einsum(
                        "nhd,hde->nhe", tokens, self.raw_weights[slot])
                    self._raw[site][:, k] = vectors.to(self.raw_dtype)
            if self.stop_after_last and slot == last_slot:
                raise StopForward

        return hook


def verify_projections(
    model: nn.Module, projections: Sequence[Projection], inputs: dict[str, torch.Tensor]
) -> None:
    """Run one tiny batch: each hook fires once, sees [batch, tokens, heads × head_dim], and
    re-applying the projection to what it saw reproduces the module's output."""
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {
        i: [] for i in range(len(projections))
    }
    with contextlib.ExitStack() as stack:
        for slot, p in enumerate(projections):
            def hook(module, args, output, slot=slot):
                seen[slot].append((args[0].detach(), output.detach()))
            stack.callback(p.module.register_forward_hook(hook).remove)
        with torch.inference_mode():
            model(**inputs)
    batch, tokens = inputs["input_ids"].shape
    for slot, p in enumerate(projections):
        calls = seen[slot]
        if len(calls) != 1:
            raise ModelError(
                f"the hook on {p.path} fired {len(calls)} times in one forward pass instead of "
                "once (a fused or split kernel?); pass --hook-module with the module that "
                "receives every head's output once per layer."
            )
        x, y = calls[0]
        if tuple(x.shape) != (batch, tokens, p.in_features):
            raise ModelError(
                f"{p.path} received shape {tuple(x.shape)}, expected "
                f"[{batch}, {tokens}, {p.num_heads} heads × {p.head_dim}]; pass --hook-module "
                "with the attention output projection."
            )
        with torch.inference_mode():
            again = p.module(x)
        if not torch.allclose(again.float(), y.float(), rtol=1e-3, atol=1e-3, equal_nan=True):
            raise ModelError(
                f"re-applying {p.path} to its captured input does not reproduce its output; the "
                "hook point is not a plain projection — pass --hook-module."
            )
