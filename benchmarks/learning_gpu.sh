#!/usr/bin/env bash
# The learning benchmark on one GPU, in about ten minutes of device time: `brackit study learning --budget gpu`
# (5 seeds, 100k updates) on HalfCheetah and Hopper, then its report beside the CPU one. The datasets must
# be built first (on the CPU machine: `brackit data build halfcheetah-eps1` and `hopper-eps1`, 1M
# transitions, copied into $BRACKIT_DATA_DIR), since building is CPU-bound. Needs a CUDA build of JAX
# (pip install "jax[cuda13]"). Resumable: a rerun skips finished groups, so a cut run can be continued.
#
#   BRACKIT_DATA_DIR=... bash benchmarks/learning_gpu.sh [OUT] [BUDGET_S]   (OUT: benchmarks/results/learning_gpu)
#
# Not yet run: no GPU session has had it (benchmarks/results/learning/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/learning_gpu}
budget=${2:-540}
python=${PYTHON:-.venv/bin/python}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
"$python" -c "import jax; assert jax.default_backend() == 'gpu', 'no GPU backend'; print(jax.devices())" || exit 1
timeout --kill-after=10 "$budget" "$python" -m brackit.cli study learning --budget gpu --tasks halfcheetah,hopper \
  --out "$out/runs"
status=$?
"$python" benchmarks/learning_report.py --runs "$out/runs" --out "$out"
exit $status
