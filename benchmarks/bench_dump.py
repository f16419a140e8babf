"""`headact dump` against a bare forward pass, timed as whole processes on the same texts.

    python benchmarks/bench_dump.py                     # default: a few minutes on 2 cores
    python benchmarks/bench_dump.py --n-texts 1000      # the full comparison (GPT-2: long)

Contenders, each a fresh process, run round-robin `--repeats` times:

- headact: `headact dump` end to end (load, fingerprint, tokenize, hook, both sites written
  to zarr).
- user-loop: the loop a user would write: the model's usual class (AutoModelForCausalLM for
  GPT-2, AutoModel for MiniLM), batches in file order padded to their longest text,
  `model(**batch)` under inference_mode, nothing kept. Target: headact <= 0.5x.
- floor: the base model fed exactly the batches headact forms (its own length bucketing),
  no hooks, nothing kept. Target: headact <= 1.05x.

Then one in-process `dump_model` run per model reports where a dump's time goes and the
share spent writing the store (target < 5 %).

Targets are judged on the fastest run of each contender: on a shared machine other work
only ever adds time, so the minimum is the least disturbed measurement; medians are shown
beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_shared_arguments(parser, repeats=3)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    work = common.workdir(args.workdir)
    env = common.bench_env(args.threads)
    print(header(args))
    try:
        results = [bench_model(name, args, work, env) for name in models]
    finally:
        common.cleanup(work, args.workdir)
    print("\n== summary (headact's wall time over the contender's; lower is better)")
    for line in results:
        print(line)
    print(f"\nload average after: {load_average()}")
    return 0


def bench_model(name: str, args: argparse.Namespace, work: Path, env: dict) -> str:
    n = args.n_texts or common.DEFAULT_TEXTS[name]
    spec = common.TextSpec(n=n, seed=args.seed)
    texts_path = common.write_texts(spec, work / f"texts-{n}.json")
    texts = json.loads(texts_path.read_text())
    model = common.prepare_model(name, work, common.make_texts(common.TextSpec(n=1000)),
                                 tiny=args.tiny)
    counted, padded = token_counts(model, texts, args.batch_size, args.max_length)
    print(f"\n== {name}: {model}, {n} texts, {counted:,} tokens "
          f"({padded:,} with file-order padding), batch {args.batch_size}, "
          f"max length {args.max_length}, {args.threads} threads")
    py = sys.executable
    common_args = ["--model", str(model), "--texts", str(texts_path), "--batch-size",
                   str(args.batch_size), "--max-length", str(args.max_length), "--threads",
                   str(args.threads)]
    store = work / f"dump-{name}.zarr"
    headact = common.Contender("headact", [
        *common.headact_command(), "dump", "--model", str(model), "--data", str(texts_path),
        "--out", str(store), "--batch-size", str(args.batch_size), "--max-length",
        str(args.max_length), "--overwrite", "-q"])
    user = common.Contender("user-loop", [
        py, str(common.CONTENDERS), "user-loop", *common_args,
        *(["--lm-head"] if name == "gpt2" else [])])
    floor = common.Contender("floor", [py, str(common.CONTENDERS), "floor", *common_args])
    contenders = [headact, user, floor]
    common.time_contenders(contenders, args.repeats, env)
    check_store(store, n)
    print(common.table(contenders))

    phases = common.run_process(
        [py, str(common.CONTENDERS), "headact-api", *common_args, "--out",
         str(work / f"api-{name}.zarr")], env).report
    print(f"  one dump_model run: import {phases['import_s']:.2f} s, load {phases['load_s']:.2f} s,"
          f" before the first batch {phases['dump_model_s'] - phases['duration_s']:.2f} s, "
          f"batches + writing {phases['duration_s']:.2f} s, of which writing the store "
          f"{phases['writing_s']:.3f} s (in a background thread)")
    share = phases["writing_s"] / phases["duration_s"]
    lines = [
        f"{name} ({n} texts, {args.repeats} repeats):",
        common.ratio_line("headact / user-loop", headact, user, "<= 0.5",
                          headact.best / user.best <= 0.5),
        common.ratio_line("headact / floor", headact, floor, "<= 1.05",
                          headact.best / floor.best <= 1.05),
        f"  {'writing share of dump time':<34} {share:6.2%}"
        f"{'':29}target < 5 %  {'met' if share < 0.05 else 'NOT met'}",
    ]
    print("\n".join(lines))
    return "\n".join(lines)


def token_counts(model: Path, texts: list[str], batch_size: int, max_length: int):
    """Counted tokens, and tokens including the pads of file-order batches."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(x) for x in ids]
    padded = sum(max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size])
                 for i in range(0, len(lengths), batch_size))
    return sum(lengths), padded


def check_store(path: Path, n: int) -> None:
    """The timed dump wrote what it should: both sites, every sample done."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    done = group["samples/done"][:]
    sites = sorted(group["norms"].group_keys())
    if sites != ["out", "z"] or done.shape != (n,) or not done.all():
        raise SystemExit(f"{path}: expected both sites and {n} done samples; got {sites}, "
                         f"{int(done.sum())} done")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def header(args: argparse.Namespace) -> str:
    import torch
    import transformers

    import headact

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"headact {headact.__version__}, torch {torch.__version__}, transformers "
            f"{transformers.__version__}, Python {platform.python_version()}\n"
            f"{cpu}, {os.cpu_count()} CPUs, torch threads {args.threads}; "
            f"load average before: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
