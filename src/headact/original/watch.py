"""Hooks on the model itself that see every forward call's token ids and attention mask.

Per-head statistics count only the tokens the attention mask counts, and a hook on a
projection deep inside the model never sees the mask. `ForwardWatch` reads it from the
model's own call (keyword or positional, or all tokens when there is none), calls `begin`
before the forward pass and `end` after it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable

import torch
from torch import nn

from headact.errors import ModelError


class ForwardWatch:
    """Calls begin(mask, input_ids) before and end() after each forward of `model`."""

    def __init__(
        self,
        model: nn.Module,
        begin: Callable[[torch.Tensor, torch.Tensor | None], None],
        end: Callable[[], None],
    ) -> None:
        self.model = model
        self.begin = begin
        self.end = end
        self.paused = False
        self.pending = False
        try:
            self._names = list(inspect.signature(model.forward).parameters)
        except (TypeError, ValueError):
            self._names = []

    def attach(self, stack: contextlib.ExitStack) -> None:
        """Register both hooks; `stack` removes them."""
        stack.callback(self.model.register_forward_pre_hook(self._before,
                                                            with_kwargs=True).remove)
        stack.callback(self.model.register_forward_hook(self._after).remove)

    def _argument(self, name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
        value = kwargs.get(name)
        if value is None and name in self._names:
            position = self._names.index(name)
            if position < len(args):
                value = args[position]
        return value if isinstance(value, torch.Tensor) else None

    def _before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.paused:
            return
        ids = self._argument("input_ids", args, kwargs)
        mask = self._argument("attention_mask", args, kwargs)
        if mask is None:
            shape_of = ids if ids is not None else self._argument("inputs_embeds", args, kwargs)
            if shape_of is None:
                raise ModelError(
                    f"{type(module).__name__} was called without input_ids, inputs_embeds or "
                    "attention_mask, so the hooked heads cannot tell which tokens count; pass "
                    "them by name."
                )
            mask = torch.ones(shape_of.shape[:2], dtype=torch.long, device=shape_of.device)
        if mask.dim() != 2:
            raise ModelError(
                f"{type(module).__name__} was called with a {mask.dim()}-D attention mask; the "
                "hooked heads need the [batch, tokens] mask of which tokens count."
            )
        self.pending = True
        self.begin(mask, ids)

    def _after(self, module: nn.Module, args: tuple, output: object) -> None:
        self.finish()

    def finish(self) -> None:
        """End the pending forward (also after a forward stopped early on purpose)."""
        if self.pending and not self.paused:
            self.pending = False
            self.end()

    def abandon(self) -> None:
        """Forget a forward that failed."""
        self.pending = False
