"""`headact dump` against TransformerLens and nnsight on the same texts: wall time, peak memory.

    python3 -m venv benchmarks/.venv-peers
    benchmarks/.venv-peers/bin/pip install torch==2.13.0        # the CPU build, first
    benchmarks/.venv-peers/bin/pip install -r benchmarks/requirements-peers.txt
    python benchmarks/bench_peers.py

The peers live in their own environment (they are benchmark-only, never headact's
dependencies); headact runs from the environment running this script. Each contender is a
fresh process, run round-robin `--repeats` times; peak memory is the process's own peak RSS.

- headact: `headact dump` end to end, both sites (z and out) written to zarr.
- transformer-lens: `TransformerBridge.boot_transformers`, `run_with_cache` with a `hook_z`
  names filter per batch, the five per-sample norm statistics computed from the cache.
- nnsight: a `TransformersModel` trace per batch saving every output projection's input,
  the same statistics computed from what was saved.

The peers get batches in file order, padded on the right to their longest text, as their
documentation's examples do; they compute the z site only. Their per-sample sums of ‖z‖ are
checked against headact's store, so every contender is known to compute the same thing.
Targets: headact at least 2x faster than each peer (judged on each contender's fastest run,
the least disturbed on a shared machine), at most 0.6x its peak memory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from bench_dump import header, load_average  # noqa: E402

DEFAULT_VENV = common.HERE / ".venv-peers"
PEERS = ("transformer-lens", "nnsight")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_shared_arguments(parser, repeats=2)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--peers-venv", default=str(DEFAULT_VENV),
                        help="virtual environment with transformer-lens and nnsight")
    return parser.parse_args(argv)


def peers_python(venv: str) -> Path:
    python = common.python_of(Path(venv))
    if not python.exists():
        raise SystemExit(
            f"no peers environment at {venv}: the peers are benchmark-only dependencies, "
            "installed apart from headact. Create it with\n"
            f"  python3 -m venv {venv}\n"
            f"  {venv}/bin/pip install torch==2.13.0   # the CPU build first\n"
            f"  {venv}/bin/pip install -r benchmarks/requirements-peers.txt\n"
            "or pass --peers-venv DIR."
        )
    return python


def peer_versions(python: Path) -> str:
    run = common.run_process([str(python), "-c", (
        "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
        "('transformer-lens', 'nnsight', 'torch', 'transformers')}))")], dict(os.environ))
    return ", ".join(f"{k} {v}" for k, v in run.report.items())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = peers_python(args.peers_venv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    print(header(args))
    print(f"peers: {peer_versions(python)}")
    work = common.workdir(args.workdir)
    env = common.bench_env(args.threads)
    try:
        results = [bench_model(name, peers, python, args, work, env) for name in models]
    finally:
        common.cleanup(work, args.workdir)
    print("\n== summary")
    for line in results:
        print(line)
    print(f"\nload average after: {load_average()}")
    return 0


def bench_model(name: str, peers: list[str], python: Path, args: argparse.Namespace,
                work: Path, env: dict) -> str:
    import numpy as np
    import zarr

    n = args.n_texts or common.DEFAULT_TEXTS[name]
    texts_path = common.write_texts(common.TextSpec(n=n, seed=args.seed),
                                    work / f"texts-{n}.json")
    model = common.prepare_model(name, work, common.make_texts(common.TextSpec(n=1000)),
                                 tiny=args.tiny)
    print(f"\n== {name}: {model}, {n} texts, batch {args.batch_size}, "
          f"{args.threads} threads")
    store = work / f"peers-{name}.zarr"
    headact = common.Contender("headact", [
        *common.headact_command(), "dump", "--model", str(model), "--data", str(texts_path),
        "--out", str(store), "--batch-size", str(args.batch_size), "--max-length",
        str(args.max_length), "--overwrite", "-q"])
    contenders = [headact]
    for peer in peers:
        contenders.append(common.Contender(peer, [
            str(python), str(common.CONTENDERS), peer, "--model", str(model), "--texts",
            str(texts_path), "--batch-size", str(args.batch_size), "--max-length",
            str(args.max_length), "--threads", str(args.threads), "--save-sums",
            str(work / f"{peer}-{name}.npy")]))
    common.time_contenders(contenders, args.repeats, env)
    print(common.table(contenders))

    reference = zarr.open_group(str(store), mode="r")["norms/z/sum"][:]
    lines = [f"{name} ({n} texts, {args.repeats} repeats):"]
    for peer in contenders[1:]:
        sums = np.load(work / f"{peer.name}-{name}.npy")
        error = float(np.abs(sums - reference).max() / np.abs(reference).max())
        speedup = peer.best / headact.best
        memory = headact.peak_rss_mb / peer.peak_rss_mb
        lines += [
            f"  {peer.name}: same sums of ‖z‖ as headact's store to {error:.1e} (max rel.)",
            f"    {'speed-up (their time / headact)':<34} {peer.best / headact.best:6.2f}x (min)"
            f"  {speedup:6.2f}x (median)   target >= 2  {'met' if speedup >= 2 else 'NOT met'}",
            f"    {'peak memory (headact / theirs)':<34} {memory:6.2f}x "
            f"({headact.peak_rss_mb:.0f} / {peer.peak_rss_mb:.0f} MB)       target <= 0.6  "
            f"{'met' if memory <= 0.6 else 'NOT met'}",
        ]
    print("\n".join(lines))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
