#!/usr/bin/env bash
# gpu_bench.py on a CUDA machine whose image has torch but another transformers: the wheels in
# .whl/ (transformers 4.57.6, tokenizers, huggingface_hub, peft, accelerate, safetensors; see
# benchmarks/README.md) go to /tmp/site, ahead of the image's packages. Results go to $OUT
# (or benchmarks/results). Extra arguments pass to gpu_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out="${OUT:-benchmarks/results}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.used --format=csv || true
python3 benchmarks/gpu_bench.py --out "$out" "$@" 2>&1 | tee "$out/gpu_bench.log"
