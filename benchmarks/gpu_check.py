"""On a CUDA machine: the dump's CUDA path (pinned copies, device reductions, raw capture, early
stop) gives the numbers the CPU path gives. Prints one line per check; exits 1 on a mismatch."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    import torch
    from tiny_models import build_model, write_texts
    from transformers import AutoModel, AutoTokenizer

    from headact.dump import DumpOptions, dump_model
    from headact.store import STATS, open_store
    from headact.store.validate import validate_store

    # HEADACT_GPU_CHECK_DEVICE=cpu runs the same checks without a GPU (a smoke test).
    target = os.environ.get("HEADACT_GPU_CHECK_DEVICE", "cuda")
    if target == "cuda" and not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    folder = Path(tempfile.mkdtemp())
    texts_path = write_texts(folder / "texts.json")
    import json

    texts = [r if isinstance(r, str) else next(iter(r.values()))
             for r in json.loads(texts_path.read_text())]
    failures = 0
    for family in ("gpt2", "llama", "qwen3", "bert", "gpt_neox"):
        model_dir = build_model(family, folder / family)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        stores = {}
        for device in dict.fromkeys(("cpu", target)):
            model = AutoModel.from_pretrained(model_dir).to(device).eval()
            options = DumpOptions(batch_size=3, block_size=8, raw_sites=("z",),
                                  layers=[0, 1], raw_dtype="float32")
            stores[device] = dump_model(model, tokenizer, texts,
                                        folder / f"{family}-{device}.zarr", options=options).path
        with open_store(stores["cpu"]) as cpu, open_store(stores[target]) as gpu:  # noqa: SIM117
            worst = 0.0
            for site in ("z", "out"):
                for stat in STATS:
                    a, b = cpu.read_norm(site, stat), gpu.read_norm(site, stat)
                    worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-6))))
            raw_a, raw_b = cpu.backend.read("raw/z"), gpu.backend.read("raw/z")
            raw_worst = float(np.max(np.abs(raw_a - raw_b)))
            ok = worst < 1e-4 and raw_worst < 1e-4 and validate_store(stores[target]) == []
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {family}: cuda vs cpu max relative difference "
                  f"{worst:.2e} (norms), {raw_worst:.2e} (raw z), run on "
                  f"{gpu.metadata['run']['device_name']}")
    # bfloat16 on the GPU: finite, positive, close to float32.
    model_dir = folder / "llama"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.bfloat16).to(target).eval()
    path = dump_model(model, tokenizer, texts, folder / "bf16.zarr",
                      options=DumpOptions(layers=[0, 1])).path
    with open_store(path) as bf, open_store(folder / "llama-cpu.zarr") as fp:
        a = bf.read_norm("z", "sum")[:, :2]
        b = fp.read_norm("z", "sum")
        rel = float(np.median(np.abs(a - b) / b))
        ok = bool(np.isfinite(a).all() and (a > 0).all() and rel < 0.05)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} llama bfloat16 on {target}: finite, median relative "
              f"difference to float32 {rel:.3f}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
