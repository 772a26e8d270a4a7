#!/usr/bin/env bash
# GPU check, in about ten minutes: the training-throughput benchmarks on the GPU (BEAR/BCQ/TD3+BC/ReBRAC and
# BC/BRAC at 1 and many vmapped seeds, optionally against d3rlpy on the same GPU), then the test suite run on
# the GPU backend. Needs the package's dependencies and a CUDA build of JAX (pip install "jax[cuda13]").
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (OUT_DIR defaults to benchmarks/results/gpu)
#
# Environment: PYTHON (default python), PEER_PYTHON (a Python with torch and d3rlpy: adds the "vs d3rlpy here"
# column, d3rlpy on cuda:0), SEEDS (default "1 64"), TEST_WORKERS (default 8), BUDGET_S (default 560: the
# whole script's time; each phase gets a share and the tests what is left), TESTS (default: the whole suite); GPU_CHECK_ALLOW_CPU=1 runs it on the CPU (to try the script).
# A phase that fails or runs out of time is reported and the next one still runs; the exit status is that of
# the first failure.
set -uo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-benchmarks/results/gpu}")"
mkdir -p "$out"
python=${PYTHON:-python}
seeds=${SEEDS:-1 64}
budget=${BUDGET_S:-560}
deadline=$(( $(date +%s) + budget ))
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
status=0
phase() {  # phase NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log, remember a failure
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "== $name (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $(( $(date +%s) - start )) s"
    [ "$rc" -ne 0 ] && [ "$status" -eq 0 ] && status=$rc
    return 0
}

"$python" - <<'PY' | tee "$out/gpu_env.txt"
import os

import jax
print("jax", jax.__version__, "backend", jax.default_backend(), "devices:", jax.devices())
assert jax.default_backend() == "gpu" or os.environ.get("GPU_CHECK_ALLOW_CPU"), "no GPU backend: install a CUDA build of JAX"
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$out/gpu_env.txt" 2>&1

peer=()
[ -n "${PEER_PYTHON:-}" ] && peer=(--peer-python "$PEER_PYTHON" --peer-device cuda:0)
# shellcheck disable=SC2086
phase family $(( budget * 45 / 100 )) "$python" benchmarks/throughput_family.py --seeds $seeds \
    --chunk-steps 500 --repeats 3 "${peer[@]}" --out "$out"
# shellcheck disable=SC2086
phase brac $(( budget * 25 / 100 )) "$python" benchmarks/throughput.py --steps 1000 --seeds $seeds \
    --out "$out/throughput.md"
grep -hE "^\||ceiling|machine" "$out/throughput_family.md" "$out/throughput.md" 2>/dev/null

left=$(( deadline - $(date +%s) ))
[ "$left" -lt 30 ] && left=30
# shellcheck disable=SC2086
phase tests "$left" "$python" -m pytest -v -p no:cacheprovider -n "${TEST_WORKERS:-8}" -rfE --durations=10 \
    ${TESTS:-tests}
tail -n 25 "$out/tests.log"
exit "$status"
