#!/usr/bin/env bash
# One command for a lent GPU machine (no internet, CUDA torch present, no TensorRT, 64 MiB carry):
# CUDA-torch fp32/fp16 latency (p50/p99, warm) of every shipped and imported model at 352x1216 and 384x1248,
# plus parity against the CPU; writes gpu_check.json + gpu_check.md into OUT_DIR (default: $OUT when set, as on
# the device machine, else ./gpu_check_out). Bounded to 5 minutes (a 240 s row budget inside, a hard timeout
# here). Without CUDA it runs a reduced CPU mode (64x192, fp32) -- that is what test/test_runtime_gpu_check.py
# runs on every CI machine. Extra arguments go to `python3 -m depth_nodes.runtime.gpu_check` (--model DIR, ...).
# Usage: bash scripts/gpu_check.sh [OUT_DIR] [args...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu_check_out}}
shift || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not
PY=${PYTHON:-python3}
"$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 290 "$PY" -m depth_nodes.runtime.gpu_check --out "$out" "$@"
echo "--- $out/gpu_check.md"
cat "$out/gpu_check.md"
