#!/usr/bin/env bash
# d3rlpy's side of the learning benchmark (BC, TD3+BC, BCQ, BEAR, ReBRAC), in the order the CPU budget asks
# for (HalfCheetah and Hopper first), each (algorithm, dataset, seed) a run directory under OUT; finished runs are skipped and a killed
# one resumes from its last evaluation. Usage: benchmarks/learning_peer_all.sh PEER_PYTHON [OUT]
# Datasets: the cached BRAC-protocol builds (brackit data build / resolve_data, $BRACKIT_DATA_DIR).
# PEER_THREADS (default 1) sets torch's threads: the learning runs share the machine with brackit's, and
# two processes each taking every core slowed d3rlpy to a few updates/s here.
set -euo pipefail
peer=${1:?usage: learning_peer_all.sh PEER_PYTHON [OUT]}
out=${2:-benchmarks/results/learning/runs}
data=${BRACKIT_DATA_DIR:-$HOME/.cache/brackit/datasets}
here=$(dirname "$0")
run() {  # algo task steps seed
  "$peer" "$here/learning_peer.py" --data "$data/$2-eps1-1000000-s0.npz" --algo "$1" --steps "$3" \
    --seed "$4" --threads "${PEER_THREADS:-1}" --eval-every 10000 --eval-episodes 10 --out "$out/$2-eps1/d3rlpy-$1-s$4"
}
for task in halfcheetah hopper; do
  for seed in 0 1; do run td3bc $task 100000 $seed; run bc $task 100000 $seed; done
done
for task in halfcheetah hopper; do
  for seed in 0 1; do run bcq $task 50000 $seed; run bear $task 50000 $seed; done
done
for task in halfcheetah hopper; do  # d3rlpy's default BC (deterministic), beside the Gaussian one above
  for seed in 0 1; do run bc-det $task 100000 $seed; done
done
for task in halfcheetah hopper; do  # ReBRAC (d3rlpy has it since 2.5), at the learning study's betas per dataset
  for seed in 0 1; do run rebrac $task 50000 $seed; done
done
for task in walker2d ant; do
  for seed in 0 1; do run td3bc $task 100000 $seed; run bc $task 100000 $seed; done
done
