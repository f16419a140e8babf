"""An independent computation of the stored statistics: one sample at a time, no padding,
float64 numpy, the `out` site formed explicitly as z_h W_O^h (no Gram matrix)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def reference_stats(model_dir: Path, texts: list[str], projection: str, layers: list[int],
                    heads: list[int], max_length: int | None = None) -> dict[tuple[str, str],
                                                                             np.ndarray]:
    """{(site, stat): [sample, layer, head]} computed the slow, obvious way."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # The class that saved the checkpoint, with its head: a different path from headact's.
    saving_class = getattr(transformers, AutoConfig.from_pretrained(model_dir).architectures[0])
    model = saving_class.from_pretrained(model_dir).eval()
    n_heads = model.config.num_attention_heads
    modules = {}
    for name, module in model.named_modules():
        modules[name] = module
        modules.setdefault(name.split(".", 1)[-1], module)  # without the wrapper's prefix
    out = {(site, stat): np.full((len(texts), len(layers), len(heads)), np.nan)
           for site in ("z", "out") for stat in ("sum", "sumsq", "first", "last", "max")}
    for i, text in enumerate(texts):
        enc = tokenizer(text, return_tensors="pt", truncation=max_length is not None,
                        max_length=max_length)
        captured: dict[int, np.ndarray] = {}
        handles = []
        for j, layer in enumerate(layers):
            module = modules[projection.format(layer=layer)]

            def grab(mod, args, j=j, captured=captured):
                captured[j] = args[0][0].detach().double().numpy()

            handles.append(module.register_forward_pre_hook(grab))
        with torch.no_grad():
            model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        for h in handles:
            h.remove()
        for j, layer in enumerate(layers):
            module = modules[projection.format(layer=layer)]
            x = captured[j]  # [tokens, heads*dim]
            d = x.shape[1] // n_heads
            weight = module.weight.detach().double().numpy()
            w_in_out = weight if type(module).__name__ == "Conv1D" else weight.T
            for k, h in enumerate(heads):
                z = x[:, h * d:(h + 1) * d]
                y = z @ w_in_out[h * d:(h + 1) * d, :]
                for site, vec in (("z", z), ("out", y)):
                    norms = np.linalg.norm(vec, axis=1)
                    out[(site, "sum")][i, j, k] = norms.sum()
                    out[(site, "sumsq")][i, j, k] = (norms ** 2).sum()
                    out[(site, "first")][i, j, k] = norms[0]
                    out[(site, "last")][i, j, k] = norms[-1]
                    out[(site, "max")][i, j, k] = norms.max()
    return out


def texts_of(path: Path) -> list[str]:
    """The texts of a JSON array in the original data format."""
    records = json.loads(path.read_text(encoding="utf-8"))
    return [r if isinstance(r, str) else next(r[k] for k in ("input", "text", "question")
                                              if k in r) for r in records]


def reference_vectors(model_dir: Path, texts: list[str], projection: str,
                      layers: list[int]) -> list[dict[int, np.ndarray]]:
    """Per sample, per layer: the projection's input [tokens, heads*dim] in float64, each sample
    run alone, and the projection weight as [in, out]."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    saving_class = getattr(transformers, AutoConfig.from_pretrained(model_dir).architectures[0])
    model = saving_class.from_pretrained(model_dir).eval()
    modules = {}
    for name, module in model.named_modules():
        modules[name] = module
        modules.setdefault(name.split(".", 1)[-1], module)
    result = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt")
        captured: dict[int, np.ndarray] = {}
        handles = [modules[projection.format(layer=layer)].register_forward_pre_hook(
            lambda mod, args, layer=layer, captured=captured: captured.__setitem__(
                layer, args[0][0].detach().double().numpy()))
            for layer in layers]
        with torch.no_grad():
            model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        for h in handles:
            h.remove()
        captured["ids"] = enc["input_ids"][0].numpy()
        result.append(captured)
    return result


def projection_weight(model_dir: Path, projection: str, layer: int) -> np.ndarray:
    """The projection weight of one layer as [in, out], float64."""
    import transformers
    from transformers import AutoConfig

    saving_class = getattr(transformers, AutoConfig.from_pretrained(model_dir).architectures[0])
    model = saving_class.from_pretrained(model_dir)
    modules = {}
    for name, module in model.named_modules():
        modules[name] = module
        modules.setdefault(name.split(".", 1)[-1], module)
    module = modules[projection.format(layer=layer)]
    weight = module.weight.detach().double().numpy()
    return weight if type(module).__name__ == "Conv1D" else weight.T
