"""Test-wide settings.

XLA's CPU backend spends most of a small test's time compiling; optimisation level 0 halves compile time
for the tiny networks used here (runtime speed is measured by benchmarks/, never by tests). On a GPU, the
bit-identity tests need XLA's deterministic ops (cuDNN convolution gradients may otherwise accumulate in a
different order each run), as the ``brackit`` CLI sets them. One CPU device, as before the CLI split
the host into one device per core (``brackit.hostdevices``); tests that need several append the flag
again (the last one wins). Set before JAX initialises its backend.
"""

import os

from brackit.determinism import with_deterministic_gpu_ops

os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(
    os.environ.get("XLA_FLAGS", "")
    + " --xla_backend_optimization_level=0 --xla_force_host_platform_device_count=1"
)
