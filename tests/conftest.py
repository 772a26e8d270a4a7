"""Test-wide settings.

XLA's CPU backend spends most of a small test's time compiling; optimisation level 0 halves compile time
for the tiny networks used here (runtime speed is measured by benchmarks/, never by tests). Set before
JAX initialises its backend.
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
