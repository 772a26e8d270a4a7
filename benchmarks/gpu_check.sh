#!/usr/bin/env bash
# GPU check: the GPU-relevant tests and the training-throughput benchmark, in a few minutes.
# Needs only the package's dependencies and a CUDA build of JAX (pip install "jax[cuda12]" or cuda13).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]     (OUT_DIR defaults to benchmarks/results)
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-benchmarks/results}")"
mkdir -p "$out"
python=${PYTHON:-python}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
"$python" - <<'PY'
import jax
print("jax", jax.__version__, "devices:", jax.devices())
assert jax.default_backend() == "gpu", "no GPU backend: install a CUDA build of JAX"
PY
start=$(date +%s)
"$python" -m pytest -q -p no:cacheprovider tests/test_divergences.py tests/test_nets_ops.py tests/algos/test_brac.py \
  2>&1 | tail -n 5
echo "tests: $(( $(date +%s) - start )) s"
(cd benchmarks && "$python" throughput.py --steps 2000 --out "$out/throughput_gpu.md") | grep -E "^\||ceiling"
