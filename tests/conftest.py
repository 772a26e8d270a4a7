"""Test-wide settings.

XLA's CPU backend spends most of a small test's time compiling; optimisation level 0 halves compile time
for the tiny networks used here (runtime speed is measured by benchmarks/, never by tests). On a GPU, the
bit-identity tests need XLA's deterministic ops (cuDNN convolution gradients may otherwise accumulate in a
different order each run), as the ``brackit`` CLI sets them. One CPU device, as before the CLI split
the host into one device per core (``brackit.xla_setup``); tests that need several append the flag
again (the last one wins). Set before JAX initialises its backend.

Matmuls and convolutions run in full float32 in every test (on NVIDIA GPUs JAX's default is TF32, about 1e-3
relative error), so that tests comparing two computations of the same function (vmap against single runs,
slice convolutions against ``nn.Conv``, padded against unpadded batches) hold on a GPU at the tolerances that
float32 gives. Tests that check a precision the library itself asks for (the DCT, the NT-Xent similarity) are
marked ``library_precision`` and run under JAX's default, as a user's program would.
"""

import os

import jax
import pytest

from brackit.xla_setup import with_deterministic_gpu_ops

os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(
    os.environ.get("XLA_FLAGS", "")
    + " --xla_backend_optimization_level=0 --xla_force_host_platform_device_count=1"
)


@pytest.fixture(autouse=True)
def _float32_matmuls(request: pytest.FixtureRequest):
    if request.node.get_closest_marker("library_precision"):
        yield
        return
    with jax.default_matmul_precision("float32"):
        yield
