"""Find each layer's attention output projection: known table, structural search, or template."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from headact.errors import ModelError

# Paths relative to the base model (what AutoModel loads; wrappers add a prefix).
KNOWN_PROJECTIONS: dict[str, str] = {
    "gpt2": "h.{layer}.attn.c_proj",
    "llama": "layers.{layer}.self_attn.o_proj",
    "mistral": "layers.{layer}.self_attn.o_proj",
    "qwen2": "layers.{layer}.self_attn.o_proj",
    "qwen3": "layers.{layer}.self_attn.o_proj",
    "gemma": "layers.{layer}.self_attn.o_proj",
    "gemma2": "layers.{layer}.self_attn.o_proj",
    "gemma3": "layers.{layer}.self_attn.o_proj",
    "gemma3_text": "layers.{layer}.self_attn.o_proj",
    "olmo2": "layers.{layer}.self_attn.o_proj",
    "phi3": "layers.{layer}.self_attn.o_proj",
    "gpt_neox": "layers.{layer}.attention.dense",
    "bert": "encoder.layer.{layer}.attention.output.dense",
    "roberta": "encoder.layer.{layer}.attention.output.dense",
    "xlm-roberta": "encoder.layer.{layer}.attention.output.dense",
    "distilbert": "transformer.layer.{layer}.attention.out_lin",
    "opt": "decoder.layers.{layer}.self_attn.out_proj",
    "falcon": "h.{layer}.self_attention.dense",
    "bloom": "h.{layer}.self_attention.dense",
    "phi": "layers.{layer}.self_attn.dense",
    "gptj": "h.{layer}.attn.out_proj",
    "gpt_neo": "h.{layer}.attn.attention.out_proj",
}

# Names that mark a module as not self-attention's output (MLP, cross-attention).
_EXCLUDED = re.compile(r"(mlp|ffn|feed_forward|intermediate|cross|encoder_attn|crossattention)")
_ATTENTION = re.compile(r"(attn|attention)")
_PREFERRED_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "out_lin", "wo", "proj")


@dataclass(frozen=True)
class Projection:
    """One layer's attention output projection and how its weight splits into heads."""

    layer: int
    path: str  # relative to the model passed in
    module: nn.Module
    layout: str  # "linear" ([out, in]) or "conv1d" ([in, out])
    in_features: int
    out_features: int
    num_heads: int

    @property
    def head_dim(self) -> int:
        return self.in_features // self.num_heads

    def effective_weight(self) -> torch.Tensor:
        """The weight as [in, out] (heads × head_dim rows), LoRA deltas folded in."""
        module = self.module
        base = getattr(module, "base_layer", module)
        weight = base.weight.detach()
        delta = _lora_delta(module)
        if delta is not None:
            weight = weight + delta.to(weight.dtype)
        return weight if self.layout == "conv1d" else weight.t()


@dataclass(frozen=True)
class ResolvedProjections:
    """Every layer's projection and which rule found them."""

    projections: list[Projection]
    resolved_by: str  # "table", "structural" or "template"
    template: str | None

    @property
    def layout(self) -> str:
        return self.projections[0].layout


def _lora_delta(module: nn.Module) -> torch.Tensor | None:
    if not (hasattr(module, "base_layer") and hasattr(module, "get_delta_weight")):
        return None
    adapters = getattr(module, "active_adapters", None) or []
    deltas = [module.get_delta_weight(name) for name in adapters
              if name in getattr(module, "lora_A", {})]
    return sum(deltas) if deltas else None


def weight_layout(module: nn.Module) -> tuple[str, int, int] | None:
    """("linear"|"conv1d", in_features, out_features) for a projection-like module, else None."""
    base = getattr(module, "base_layer", module)
    if isinstance(base, nn.Linear):
        return "linear", base.in_features, base.out_features
    if type(base).__name__ == "Conv1D" and hasattr(base, "nx") and hasattr(base, "nf"):
        return "conv1d", int(base.nx), int(base.nf)
    return None


def base_model_of(model: nn.Module) -> tuple[nn.Module, str]:
    """The base transformer inside a task wrapper, and its path prefix ('' when none)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and hasattr(model, prefix) and isinstance(getattr(model, prefix), nn.Module):
        return getattr(model, prefix), prefix + "."
    return model, ""


def config_value(config: object, *names: str) -> int | None:
    """The first attribute among `names` that the config has (configs name things differently)."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def model_shape(model: nn.Module) -> tuple[int, int]:
    """(layers, attention heads) from the model's config."""
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) if config is not None else None
    config = text_config or config
    layers = config_value(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    heads = config_value(config, "num_attention_heads", "n_head", "num_heads", "n_heads")
    if layers is None or heads is None:
        raise ModelError(
            f"{type(model).__name__}'s config gives no number of attention heads or layers — "
            "headact measures attention heads; for attention under other names, set them with "
            "set_model_structure(num_layers=, num_heads=) in Python."
        )
    return layers, heads


def _named(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


def resolve_output_projections(
    model: nn.Module,
    *,
    template: str | None = None,
    num_layers: int | None = None,
    num_heads: int | None = None,
) -> ResolvedProjections:
    """Each layer's attention output projection, by the table, a structural search or `template`."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        raise ModelError(
            f"{type(model).__name__} is an encoder-decoder model (self- and cross-attention); "
            "headact hooks decoder-only and encoder-only models; pass one of those."
        )
    if num_layers is None or num_heads is None:
        layers, heads = model_shape(model)
        num_layers, num_heads = num_layers or layers, num_heads or heads
    modules = _named(model)
    _, prefix = base_model_of(model)
    if template:
        return _from_template(modules, template, prefix, num_layers, num_heads, "template")
    model_type = str(getattr(config, "model_type", "") or "")
    known = KNOWN_PROJECTIONS.get(model_type)
    if known:
        found = _from_template(modules, known, prefix, num_layers, num_heads, "table",
                               strict=False)
        if found is not None:
            return found
    found = _structural_search(modules, config, num_layers, num_heads)
    if found is not None:
        return found
    raise ModelError(
        f"cannot find the attention output projections of {type(model).__name__} "
        f"(model_type {model_type or 'unknown'!r}); pass --hook-module with a path template such "
        "as 'model.layers.{layer}.self_attn.o_proj'."
    )


def _from_template(
    modules: dict[str, nn.Module],
    template: str,
    prefix: str,
    num_layers: int,
    num_heads: int,
    rule: str,
    strict: bool = True,
) -> ResolvedProjections | None:
    if "{layer}" not in template:
        raise ModelError(
            f"--hook-module {template!r} has no {{layer}} placeholder; write it like "
            "'model.layers.{layer}.self_attn.o_proj'."
        )
    projections = []
    for layer in range(num_layers):
        path = template.format(layer=layer)
        candidates = [path, prefix + path]
        if prefix and path.startswith(prefix):
            candidates.append(path[len(prefix):])
        # A template written for a wrapper (model.layers...) also resolves on the base model.
        candidates.append(path.split(".", 1)[1] if "." in path else path)
        found = next((c for c in candidates if c in modules), None)
        if found is None:
            # Any other wrapper prefix (e.g. `language_model.`), if it is unambiguous.
            tails = [name for name in modules if name.endswith("." + path)]
            found = tails[0] if len(tails) == 1 else None
        if found is None:
            if not strict:
                return None
            raise ModelError(
                f"--hook-module {template!r}: the model has no module {path!r}; list its "
                "modules with print(model) and pass the attention output projection's path."
            )
        module = modules[found]
        shape = weight_layout(module)
        if shape is None:
            if not strict:
                return None
            raise ModelError(
                f"{found} is a {type(module).__name__}, not a Linear or Conv1D projection; "
                "pass the attention output projection."
            )
        kind, fan_in, fan_out = shape
        if fan_in % num_heads:
            raise ModelError(
                f"{found} takes {fan_in} inputs, which do not split into {num_heads} heads; pass "
                "the attention output projection."
            )
        projections.append(Projection(layer, found, module, kind, fan_in, fan_out, num_heads))
    return ResolvedProjections(projections, rule, template)


def _structural_search(
    modules: dict[str, nn.Module], config: object, num_layers: int, num_heads: int
) -> ResolvedProjections | None:
    """The one Linear/Conv1D per layer inside attention with in = heads × d and out = hidden."""
    hidden = config_value(config, "hidden_size", "n_embd", "d_model", "dim")
    candidates: dict[int, list[tuple[str, nn.Module, tuple[str, int, int]]]] = {}
    layer_pattern = re.compile(r"\.(\d+)\.")
    for name, module in modules.items():
        shape = weight_layout(module)
        if shape is None or _EXCLUDED.search(name.lower()) or not _ATTENTION.search(name.lower()):
            continue
        if ".base_layer" in name or ".lora_" in name:
            continue
        _kind, fan_in, fan_out = shape
        if fan_in % num_heads or (hidden is not None and fan_out != hidden):
            continue
        match = layer_pattern.search("." + name + ".")
        if match is None:
            continue
        candidates.setdefault(int(match.group(1)), []).append((name, module, shape))
    if sorted(candidates) != list(range(num_layers)):
        return None
    projections = []
    for layer in range(num_layers):
        options = candidates[layer]
        if len(options) > 1:
            # Q/K/V projections go hidden -> heads × d; only the output one ends in hidden.
            by_name = [o for o in options if o[0].rsplit(".", 1)[-1] in _PREFERRED_NAMES]
            options = by_name if len(by_name) == 1 else options
        if len(options) != 1:
            return None
        name, module, (kind, fan_in, fan_out) = options[0]
        projections.append(Projection(layer, name, module, kind, fan_in, fan_out, num_heads))
    return ResolvedProjections(projections, "structural", None)
