#!/usr/bin/env bash
# The peer's own virtual environment for benchmarks/learning_peer.py (d3rlpy never shares brackit's).
# torch 2.13.0 is the CPU build on PyPI for Linux x86_64. d3rlpy 2.8.1 pins gymnasium 1.0.0; the peer
# evaluates on brackit's gymnasium 1.4.0 / mujoco 4.0.0 (the same v5 tasks), installed over it (pip
# prints the pin conflict; d3rlpy's algorithms do not use gymnasium).
set -euo pipefail
venv=${1:-.peer}
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet torch==2.13.0 d3rlpy==2.8.1
"$venv/bin/pip" install --quiet "gymnasium[mujoco]==1.4.0" mujoco==4.0.0 numpy==2.4.6 2>&1 | grep -v "dependency conflicts\|requires gymnasium\|dependency resolver" || true
"$venv/bin/python" -c "import d3rlpy, torch, gymnasium; print('peer:', d3rlpy.__version__, torch.__version__, gymnasium.__version__)"
