"""One contender of a benchmark, run as its own process: `python contenders.py NAME [options]`.

Each contender reads the same texts, runs the model over all of them and prints one JSON
line (what it did) last. The benchmark scripts time these processes whole.

- `user-loop`: the loop a user would write: the model's usual class, batches in file order
  padded to their longest text, `model(**batch)` under inference_mode, nothing kept.
- `floor`: the base model fed exactly the batches `headact dump` forms (its own batching
  functions), no hooks, nothing kept.
- `headact-api`: `headact.dump.dump_model` in process, reporting where the time goes.
- `transformer-lens`, `nnsight`: the peers, as their documentation shows them used, keeping
  each head's z and computing the same five per-sample norm statistics from it.

Only the standard library is imported at module level: the peers run in another
environment, without headact.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=["user-loop", "floor", "headact-api",
                                              "transformer-lens", "nnsight"])
    parser.add_argument("--model", required=True, help="model directory (save_pretrained)")
    parser.add_argument("--texts", required=True, help="JSON array of texts")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--lm-head", action="store_true",
                        help="user-loop: load AutoModelForCausalLM instead of AutoModel")
    parser.add_argument("--out", default=None, help="headact-api: store path")
    parser.add_argument("--save-sums", default=None,
                        help="peers: write the per-sample sum of ‖z‖ [sample, layer, head] "
                        "(.npy) to check it against headact's store")
    return parser.parse_args(argv)


def _setup(args: argparse.Namespace):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts).read_text())
    return torch, texts


def _report(**fields) -> None:
    fields["process_s"] = round(time.perf_counter() - T0, 3)
    print(json.dumps(fields))


def user_loop(args: argparse.Namespace) -> None:
    torch, texts = _setup(args)
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cls = AutoModelForCausalLM if args.lm_head else AutoModel
    model = cls.from_pretrained(args.model).eval()
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(texts), args.batch_size):
            batch = tokenizer(texts[i : i + args.batch_size], padding=True, truncation=True,
                              max_length=args.max_length, return_tensors="pt")
            model(**batch)
            tokens += batch["input_ids"].numel()
    _report(contender="user-loop", model_class=type(model).__name__, padded_tokens=tokens)


def floor(args: argparse.Namespace) -> None:
    torch, texts = _setup(args)
    import numpy as np
    from transformers import AutoModel, AutoTokenizer

    from headact.dump.batching import bucket_batches, pad_id_of, pad_right, tokenize_texts
    from headact.store.writer import default_block_size

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model).eval()
    config = model.config
    n_layers, n_heads = config.num_hidden_layers, config.num_attention_heads
    extra = {"use_cache": False} if getattr(config, "use_cache", None) is not None else {}
    tokens = tokenize_texts(tokenizer, texts, args.max_length)
    lengths = tokens.lengths
    pad_id = pad_id_of(tokenizer)
    block = default_block_size(n_layers, n_heads)
    padded = 0
    with torch.inference_mode():
        for start in range(0, len(texts), block):
            rows = np.arange(start, min(start + block, len(texts)))
            for batch in bucket_batches(rows, lengths, args.batch_size):
                input_ids, mask = pad_right([tokens.ids[i] for i in batch], pad_id)
                model(input_ids=input_ids, attention_mask=mask, **extra)
                padded += input_ids.numel()
    _report(contender="floor", model_class=type(model).__name__, padded_tokens=padded,
            counted_tokens=int(lengths.sum()))


def headact_api(args: argparse.Namespace) -> None:
    """Where the time of a dump goes, phase by phase, in one process."""
    started = time.perf_counter()
    import torch

    from headact.dump import DumpOptions, dump_model
    from headact.dump.loading import ModelSpec, load_model

    imported = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts).read_text())
    model, tokenizer, _device = load_model(ModelSpec(args.model))
    loaded = time.perf_counter()
    result = dump_model(model, tokenizer, texts, args.out, options=DumpOptions(
        batch_size=args.batch_size, max_length=args.max_length, overwrite=True))
    dumped = time.perf_counter()
    _report(contender="headact-api", import_s=round(imported - started, 3),
            load_s=round(loaded - imported, 3), dump_model_s=round(dumped - loaded, 3),
            duration_s=round(result.duration_s, 3), writing_s=round(result.writing_s, 3),
            write_share=round(result.writing_s / result.duration_s, 4),
            n_tokens=result.n_tokens)


# ---------------------------------------------------------------------------------------------
# Peers


def _stats_of_z(torch, z, mask):
    """sum, sumsq, first, last, max over counted tokens of ‖z_{h,t}‖ -> [batch, 5, heads]."""
    norms = z.float().norm(dim=-1)  # [batch, pos, heads]
    keep = mask.bool().unsqueeze(-1)
    zero = torch.zeros((), dtype=norms.dtype)
    total = torch.where(keep, norms, zero).sum(1)
    total_sq = torch.where(keep, norms.square(), zero).sum(1)
    peak = torch.where(keep, norms, torch.tensor(float("-inf"))).amax(1)
    last_pos = mask.sum(1) - 1
    rows = torch.arange(z.shape[0])
    return torch.stack((total, total_sq, norms[:, 0], norms[rows, last_pos], peak), dim=1)


def _peer_batches(args, tokenizer, texts):
    """Batches in file order, padded on the right to their longest text, as a user would."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    for i in range(0, len(texts), args.batch_size):
        yield tokenizer(texts[i : i + args.batch_size], padding=True, truncation=True,
                        max_length=args.max_length, return_tensors="pt")


def _save_sums(args, torch, per_batch: list) -> None:
    if args.save_sums:
        import numpy as np

        stats = torch.cat(per_batch)  # [sample, layer, 5, heads]
        np.save(args.save_sums, stats[:, :, 0, :].numpy())


def transformer_lens(args: argparse.Namespace) -> None:
    torch, texts = _setup(args)
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    bridge = TransformerBridge.boot_transformers(args.model, device="cpu")
    # The model's own tokenizer: the bridge's prepends a BOS token, which would change the
    # token ids that every contender sees.
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    n_layers = bridge.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
    per_batch = []
    with torch.inference_mode():
        for batch in _peer_batches(args, tokenizer, texts):
            _logits, cache = bridge.run_with_cache(
                batch["input_ids"], attention_mask=batch["attention_mask"], names_filter=names)
            per_batch.append(torch.stack(
                [_stats_of_z(torch, cache[name], batch["attention_mask"]) for name in names],
                dim=1))
            del cache
    _save_sums(args, torch, per_batch)
    _report(contender="transformer-lens", model_class=type(bridge).__name__)


def nnsight(args: argparse.Namespace) -> None:
    torch, texts = _setup(args)
    import nnsight as nns
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(args.model)
    causal = config.model_type == "gpt2"
    model = nns.TransformersModel(args.model, task="text-generation" if causal
                                  else "feature-extraction", dispatch=True)
    n_layers, heads = config.num_hidden_layers, config.num_attention_heads
    # BERT's `attention.output` collides with nnsight's `.output`: find the envoys by path.
    suffix = "attn.c_proj" if causal else "attention.output.dense"
    envoys = {path: envoy for path, envoy in model.modules(names=True)
              if path.endswith(suffix)}
    projections = sorted(envoys.values(), key=lambda e: _layer_of(e.path))
    if len(projections) != n_layers:
        raise SystemExit(f"found {len(projections)} {suffix} modules, expected {n_layers}")

    per_batch = []
    with torch.inference_mode():
        for batch in _peer_batches(args, model.tokenizer, texts):
            with model.trace(dict(batch)):
                saved = nns.save([p.input for p in projections])
            b, t, width = saved[0].shape
            per_batch.append(torch.stack(
                [_stats_of_z(torch, z.view(b, t, heads, width // heads),
                             batch["attention_mask"]) for z in saved], dim=1))
    _save_sums(args, torch, per_batch)
    _report(contender="nnsight", version=nns.__version__)


def _layer_of(path: str) -> int:
    return next(int(part) for part in path.split(".") if part.isdigit())


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    run = {"user-loop": user_loop, "floor": floor, "headact-api": headact_api,
           "transformer-lens": transformer_lens, "nnsight": nnsight}[args.contender]
    run(args)


if __name__ == "__main__":
    sys.exit(main())
