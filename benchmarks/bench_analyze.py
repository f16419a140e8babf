"""Benchmark `headact analyze` against one scipy.stats.bootstrap call on the same values.

Writes two stores of 10,000 samples x 32 layers x 32 heads, runs the full paired analyze
(2,000 resamples, plots included) in a fresh process, then, in another fresh process,
scipy.stats.bootstrap computing only R_pre's percentile intervals for every head
(vectorized over heads, axis=0). Reports each one's wall time and peak RSS, and the ratio.

    .venv/bin/python benchmarks/bench_analyze.py            # the full size
    .venv/bin/python benchmarks/bench_analyze.py --samples 2000 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCIPY_BATCH = 16  # resamples per scipy batch: ~1.3 GB of resampled data at the full size


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _metadata(name: str, n_layers: int, n_heads: int) -> dict:
    from headact.store import STATS

    return {
        "model": {"name": name, "architecture": "BenchModel", "model_type": "bench",
                  "num_layers": n_layers, "num_heads": n_heads, "num_key_value_heads": n_heads,
                  "head_dim": 128, "hidden_size": 128 * n_heads, "dtype": "bfloat16",
                  "num_parameters": 7_000_000_000, "fingerprint": f"sha256:{name}"},
        "tokenizer": {"name": "bench", "class": "BenchTokenizer", "vocab_size": 32000,
                      "padding_side": "right", "max_length": 512},
        "data": {"path": "bench.json", "sha256": "0" * 64, "n_records": None, "field": "text",
                 "sample_num": None, "seed": 0, "selection": "synthetic"},
        "hook": {"modules": [f"layers.{i}.self_attn.o_proj" for i in range(n_layers)],
                 "weight_layout": "linear", "resolved_by": "table", "sites": ["z"],
                 "stats": list(STATS)},
        "run": {"headact_version": "bench", "torch_version": None, "transformers_version": None,
                "python_version": sys.version.split()[0], "device": "cpu", "batch_size": 1,
                "compute_dtype": "bfloat16", "attn_implementation": "sdpa"},
    }


def write_stores(folder: Path, n: int, n_layers: int, n_heads: int, seed: int = 0
                 ) -> tuple[Path, Path]:
    """Two stores with planted per-head strengths and changes (fine = pre x head factor)."""
    from headact.store import STATS, SampleTable, StorePlan, StoreWriter, default_block_size

    rng = np.random.default_rng(seed)
    strength = np.exp(rng.normal(0, 0.5, (n_layers, n_heads))) * 10
    change = np.exp(rng.normal(0, 0.05, (n_layers, n_heads)))
    n_tokens = rng.integers(16, 512, size=n)
    block = default_block_size(n_layers, n_heads)
    plan = StorePlan(n, tuple(range(n_layers)), tuple(range(n_heads)), ("z",), block)
    texts = [f"benchmark text {i}" for i in range(n)]
    samples = SampleTable.build(range(n), texts, [range(int(t)) for t in n_tokens], [0] * n)
    paths = []
    for name, factor in (("bench-pre", 1.0), ("bench-fine", change)):
        path = folder / f"{name}.zarr"
        writer = StoreWriter.create(path, plan, samples, _metadata(name, n_layers, n_heads),
                                    overwrite=True)
        block_rng = np.random.default_rng(seed + 1)  # same texts, same noise for both
        for b in range(plan.n_blocks):
            rows = plan.block_rows(b)
            m = rows.stop - rows.start
            text = block_rng.lognormal(0, 0.3, (m, 1, 1))
            x = strength * text * block_rng.lognormal(0, 0.2, (m, n_layers, n_heads))
            x = x * factor * block_rng.lognormal(0, 0.05, (m, n_layers, n_heads)) ** (
                0 if np.isscalar(factor) else 1)
            t = n_tokens[rows][:, None, None].astype(np.float64)
            stats = {"sum": x * t, "sumsq": 1.2 * x * x * t, "first": 2 * x, "last": x,
                     "max": 3 * x}
            writer.write_block(b, {("z", s): stats[s].astype(np.float32) for s in STATS})
        writer.finalize()
        writer.close()
        paths.append(path)
    return paths[0], paths[1]


def child_analyze(pre: str, fine: str, out: str, n_boot: int) -> dict:
    start = time.perf_counter()
    from headact.analyze import analyze_stores

    imported = time.perf_counter()
    result = analyze_stores(pre, fine, out, n_boot=n_boot)
    done = time.perf_counter()
    counts = result.comparison.counts() if result.comparison is not None else {}
    return {"wall_s": done - imported, "with_imports_s": done - start,
            "peak_rss_mb": _peak_rss_mb(), "counts": counts,
            "outputs": sorted(p.name for p in result.outputs.values())}


def child_scipy(pre: str, n_boot: int) -> dict:
    from scipy import stats

    from headact.analyze.reductions import reduce_stats
    from headact.store import open_store

    with open_store(pre) as store:
        x = reduce_stats({"sum": store.read_norm("z", "sum")}, store.samples().n_tokens,
                         "token-mean")
    x = x.reshape(x.shape[0], -1)
    start = time.perf_counter()
    res = stats.bootstrap((x,), np.mean, n_resamples=n_boot, method="percentile", axis=0,
                          vectorized=True, batch=SCIPY_BATCH, rng=np.random.default_rng(0))
    wall = time.perf_counter() - start
    width = float(np.median(res.confidence_interval.high - res.confidence_interval.low))
    return {"wall_s": wall, "peak_rss_mb": _peak_rss_mb(), "median_ci_width": width}


def _run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the stores here.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        out = (child_analyze(rest[0], rest[1], rest[2], args.n_boot) if kind == "analyze"
               else child_scipy(rest[0], args.n_boot))
        print(json.dumps(out))
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="headact-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        pre, fine = folder / "bench-pre.zarr", folder / "bench-fine.zarr"
        if not (pre.exists() and fine.exists()):
            t = time.perf_counter()
            pre, fine = write_stores(folder, args.samples, args.layers, args.heads)
            print(f"wrote two stores in {time.perf_counter() - t:.1f} s")
        size = f"{args.samples} samples x {args.layers} layers x {args.heads} heads"
        print(f"{size}, {args.n_boot} resamples")
        ours = _run_child(["--n-boot", str(args.n_boot), "--child", "analyze", str(pre),
                           str(fine), str(folder / "analysis")])
        print(f"headact analyze (paired, plots): {ours['wall_s']:.2f} s "
              f"({ours['with_imports_s']:.2f} s with imports), peak RSS "
              f"{ours['peak_rss_mb']:.0f} MB; heads {ours['counts']}")
        theirs = _run_child(["--n-boot", str(args.n_boot), "--child", "scipy", str(pre)])
        print(f"scipy.stats.bootstrap (R_pre percentile CIs only, batch {SCIPY_BATCH}): "
              f"{theirs['wall_s']:.2f} s, peak RSS {theirs['peak_rss_mb']:.0f} MB")
        ratio = theirs["wall_s"] / ours["wall_s"]
        print(f"ratio scipy / analyze: {ratio:.1f}x (target >= 10x); analyze peak RSS "
              f"{ours['peak_rss_mb']:.0f} MB (target < 2048 MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
