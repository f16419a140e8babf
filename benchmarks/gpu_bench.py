"""GPU benchmark: dump a Llama-shaped ~1B random model in bfloat16 and compare with a bare forward.

Run through `benchmarks/gpu.sh` (which checks the environment first). Self-contained: the
model (random weights, built from its config) and a byte-level BPE tokenizer are made here
and saved to a temp dir; no network. Reports samples/s, tokens/s, the ratio to a bare
forward over the same batches (bf16, no hooks) and peak GPU memory.

HEADACT_GPU_SMOKE=1 makes everything tiny and allows the CPU, to check that the script runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SMOKE = os.environ.get("HEADACT_GPU_SMOKE") == "1"

LLAMA_1B = dict(num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=32,
                hidden_size=2048, intermediate_size=8192, vocab_size=32000,
                max_position_embeddings=2048)
LLAMA_TINY = dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  hidden_size=64, intermediate_size=128, vocab_size=32000,
                  max_position_embeddings=2048)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=64 if SMOKE else 2000)
    parser.add_argument("--batch-size", type=int, default=8 if SMOKE else 32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16",
                                                                  "float32"])
    parser.add_argument("--workdir", default=None, help="default: a new dir under the temp dir")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not SMOKE:
        print("CUDA is not available: this benchmark needs a GPU (HEADACT_GPU_SMOKE=1 runs a "
              "tiny version on the CPU).")
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    dtype = getattr(torch, args.dtype)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="headact-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, device, dtype, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, device, dtype, work: Path) -> int:
    import torch
    import transformers

    started = time.perf_counter()
    texts = common.make_texts(common.TextSpec(n=args.n_texts))
    model_dir = build_model(work / "llama-random", texts, dtype, device)
    built_s = time.perf_counter() - started
    print(f"built and saved the model in {built_s:.1f} s: {model_dir}")

    from headact.dump import DumpOptions, dump_model
    from headact.dump.loading import ModelSpec, load_model

    model, tokenizer, _ = load_model(ModelSpec(str(model_dir), dtype=args.dtype,
                                               device=str(device)))
    n_params = sum(p.numel() for p in model.parameters())
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    batches, n_tokens = headact_batches(tokenizer, texts, args.max_length, args.batch_size,
                                        model)
    print(f"{type(model).__name__}: {n_params / 1e9:.2f} B parameters ({weights_mb:,.0f} MiB), "
          f"{args.dtype} on {device_name(device)}; {len(texts)} texts, {n_tokens:,} tokens, "
          f"batch {args.batch_size}")

    bare(model, batches[:2], device)  # warm-up: kernels, allocator, cuBLAS handles
    floor_runs, dump_runs = [], []
    for rep in range(args.repeats):
        reset_peak(device)
        seconds = bare(model, batches, device)
        floor_runs.append({"seconds": seconds, "peak_mib": peak_mib(device)})
        reset_peak(device)
        t0 = time.perf_counter()
        result = dump_model(model, tokenizer, texts, work / "dump.zarr", options=DumpOptions(
            batch_size=args.batch_size, max_length=args.max_length, overwrite=True))
        sync(device)
        call_s = time.perf_counter() - t0
        dump_runs.append({"seconds": result.duration_s, "call_s": call_s,
                          "writing_s": result.writing_s, "peak_mib": peak_mib(device),
                          "samples_per_s": result.samples_per_s,
                          "tokens_per_s": result.tokens_per_s})
        print(f"  [{rep + 1}/{args.repeats}] bare forward {seconds:7.2f} s   dump batches "
              f"{result.duration_s:7.2f} s (whole dump_model call {call_s:.2f} s)")
    del model
    release(device)

    cli = run_cli(model_dir, work, args, device)
    best_floor = min(r["seconds"] for r in floor_runs)
    best = min(dump_runs, key=lambda r: r["seconds"])
    report = {
        "device": device_name(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "dtype": args.dtype,
        "model": {k: v for k, v in (LLAMA_TINY if SMOKE else LLAMA_1B).items()},
        "parameters": n_params,
        "texts": len(texts),
        "tokens": n_tokens,
        "batch_size": args.batch_size,
        "samples_per_s": best["samples_per_s"],
        "tokens_per_s": best["tokens_per_s"],
        "bare_forward_s": round(best_floor, 3),
        "bare_tokens_per_s": round(n_tokens / best_floor, 1),
        "dump_batches_s": round(best["seconds"], 3),
        "ratio_to_bare_forward": round(best["seconds"] / best_floor, 4),
        "ratio_whole_call": round(min(r["call_s"] for r in dump_runs) / best_floor, 4),
        "writing_share": round(best["writing_s"] / best["seconds"], 4),
        "peak_mib_dump": round(max(r["peak_mib"] for r in dump_runs), 1),
        "peak_mib_bare": round(max(r["peak_mib"] for r in floor_runs), 1),
        "weights_mib": round(weights_mb, 1),
        "cli": cli,
        "runs": {"bare": floor_runs, "dump": dump_runs},
        "smoke": SMOKE,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"results written to {args.json}")
    return 0


def build_model(folder: Path, texts: list[str], dtype, device) -> Path:
    """A Llama-shaped model with random weights, made on the device, saved to `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    common.build_tokenizer(folder, texts, pad_token=True, model_max_length=2048)
    shape = LLAMA_TINY if SMOKE else LLAMA_1B
    config = LlamaConfig(**shape, bos_token_id=0, eos_token_id=0, pad_token_id=1,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval().save_pretrained(folder)
    del model
    release(device)
    return folder


def headact_batches(tokenizer, texts, max_length: int, batch_size: int, model):
    """Exactly the batches `headact dump` forms: its tokenization and per-block bucketing."""
    import numpy as np

    from headact.dump.batching import bucket_batches, pad_id_of, pad_right, tokenize_texts
    from headact.store.writer import default_block_size

    tokens = tokenize_texts(tokenizer, texts, max_length)
    lengths = tokens.lengths
    config = model.config
    block = default_block_size(config.num_hidden_layers, config.num_attention_heads)
    pad_id = pad_id_of(tokenizer)
    batches = []
    for start in range(0, len(texts), block):
        rows = np.arange(start, min(start + block, len(texts)))
        for batch in bucket_batches(rows, lengths, batch_size):
            batches.append(pad_right([tokens.ids[i] for i in batch], pad_id))
    return batches, int(lengths.sum())


def bare(model, batches, device) -> float:
    """The base model over the batches: no hooks, nothing kept; synchronized wall time."""
    import torch

    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for input_ids, mask in batches:
            model(input_ids=input_ids.to(device, non_blocking=True),
                  attention_mask=mask.to(device, non_blocking=True), use_cache=False)
    sync(device)
    return time.perf_counter() - start


def run_cli(model_dir: Path, work: Path, args, device) -> dict:
    """`headact dump` once as its own process: the end-to-end wall time, loading included."""
    import subprocess

    data = work / "texts.json"
    data.write_text(json.dumps(common.make_texts(common.TextSpec(n=args.n_texts))))
    command = [sys.executable, "-c", "from headact.cli import main; main()", "dump",
               "--model", str(model_dir),
               "--data", str(data), "--out", str(work / "cli.zarr"), "--dtype", args.dtype,
               "--device", str(device), "--batch-size", str(args.batch_size),
               "--max-length", str(args.max_length), "--overwrite", "-q"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr[-2000:], "seconds": round(seconds, 2)}
    return {"seconds": round(seconds, 2), "output": done.stdout.strip()}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return float("nan")


def release(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"


def print_report(r: dict) -> None:
    print("\n== result" + (" (SMOKE: tiny model, numbers mean nothing)" if r["smoke"] else ""))
    print(f"  device                  {r['device']} (torch {r['torch']}, CUDA {r['cuda']}, "
          f"transformers {r['transformers']})")
    print(f"  model                   Llama-shaped, {r['parameters'] / 1e9:.2f} B parameters, "
          f"{r['dtype']}")
    print(f"  data                    {r['texts']} texts, {r['tokens']:,} tokens, batch "
          f"{r['batch_size']}")
    print(f"  dump                    {r['samples_per_s']:,.1f} samples/s, "
          f"{r['tokens_per_s']:,.0f} tokens/s ({r['dump_batches_s']:.2f} s)")
    print(f"  bare forward            {r['bare_tokens_per_s']:,.0f} tokens/s "
          f"({r['bare_forward_s']:.2f} s, same batches, no hooks)")
    print(f"  ratio dump / bare       {r['ratio_to_bare_forward']:.3f}x (batches); "
          f"{r['ratio_whole_call']:.3f}x (whole dump_model call: tokenize, fingerprint, "
          "verify, store)")
    print(f"  writing share           {r['writing_share']:.2%} of the dump's batch time")
    print(f"  peak GPU memory         dump {r['peak_mib_dump']:,.0f} MiB, bare "
          f"{r['peak_mib_bare']:,.0f} MiB (weights {r['weights_mib']:,.0f} MiB)")
    cli = r["cli"]
    if "error" in cli:
        print(f"  headact dump (CLI)      FAILED after {cli['seconds']} s:\n{cli['error']}")
    else:
        print(f"  headact dump (CLI)      {cli['seconds']:.1f} s end to end: {cli['output']}")
    print(f"  total                   {r['total_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
