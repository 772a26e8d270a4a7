"""Test-wide settings.

XLA's CPU backend spends most of a small test's time compiling; optimisation level 0 halves compile time
for the tiny networks used here (runtime speed is measured by benchmarks/, never by tests). On a GPU, the
bit-identity tests need XLA's deterministic ops (cuDNN convolution gradients may otherwise accumulate in a
different order each run), as the ``brackit`` CLI sets them. Set before JAX initialises its backend.
"""

import os

from brackit.determinism import with_deterministic_gpu_ops

os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(
    os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
)
