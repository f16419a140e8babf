#!/usr/bin/env bash
# GPU benchmark of `headact dump`: a Llama-shaped ~1B random model in bfloat16 (16 layers,
# 32 heads, 2048 wide, intermediate 8192, vocabulary 32000), 2,000 texts of 10-300 tokens,
# batch 32: samples/s, tokens/s, the ratio to a bare forward over the same batches, and peak
# GPU memory. Self-contained and offline: the model and tokenizer are made on the spot.
#
#   bash benchmarks/gpu.sh                        # on a machine with a CUDA GPU (~1-2 min)
#   HEADACT_GPU_SMOKE=1 bash benchmarks/gpu.sh    # tiny model, CPU allowed: checks the script
#
# PYTHON picks the interpreter (default: python3); extra arguments go to gpu_bench.py
# (--n-texts, --batch-size, --repeats, --dtype, --json). With $OUT set, the results are
# also written to $OUT/gpu-bench.json.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}

echo "== environment"
"$PY" - <<'PYEOF'
import importlib, platform, sys
print(f"python {platform.python_version()} at {sys.executable}")
for name in ("torch", "transformers", "tokenizers", "numpy", "zarr", "h5py", "jsonschema",
             "click", "tqdm", "safetensors"):
    try:
        module = importlib.import_module(name)
        print(f"  {name:<13} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"  {name:<13} MISSING ({type(exc).__name__})")
try:
    import torch
    print(f"  cuda available: {torch.cuda.is_available()}, torch CUDA {torch.version.cuda}")
    for i in range(torch.cuda.device_count()):
        print(f"  cuda:{i} {torch.cuda.get_device_name(i)}")
except Exception:  # noqa: BLE001
    pass
PYEOF
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "torch is not installed for $PY; set PYTHON to an interpreter that has torch." >&2
    exit 2
fi
if [ "${HEADACT_GPU_SMOKE:-0}" != 1 ] && \
   [ "$("$PY" -c 'import torch; print(torch.cuda.is_available())')" != True ]; then
    echo "CUDA is not available to $PY; run on a GPU machine (or HEADACT_GPU_SMOKE=1 for" \
         "a tiny CPU check)." >&2
    exit 2
fi

# headact itself: installed, else installed from this checkout, else straight from src/.
if ! "$PY" -c "import headact.dump" 2>/dev/null; then
    echo "== headact is not installed; trying pip install -e . (offline: may fail)"
    "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null \
        || echo "   pip install failed; using src/ on PYTHONPATH"
    if ! "$PY" -c "import headact.dump" 2>/dev/null; then
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
if ! "$PY" -c "import headact.dump, zarr" 2>/dev/null; then
    echo "headact cannot be imported (a missing dependency above?):" >&2
    "$PY" -c "import headact.dump, zarr" >&2
    exit 2
fi

json_args=()
if [ -n "${OUT:-}" ]; then json_args=(--json "$OUT/gpu-bench.json"); fi
echo "== benchmark"
exec "$PY" benchmarks/gpu_bench.py ${json_args[@]+"${json_args[@]}"} "$@"
