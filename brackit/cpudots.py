"""Which kernels XLA:CPU runs brackit's training dots on: Eigen, not JAX's default YNNPACK fusions.

On CPU, JAX 0.10 hands most dots (and some reductions) to YNNPACK fusions. At brackit's sizes (batch 256,
layers 200-300 wide, a few vmapped seeds) those run slower than XLA's own Eigen dot kernels on the 2-core
machine the project is measured on, in every preset of ``benchmarks/experiments/cpu_dots_ab.py``
(``benchmarks/results/experiments/cpu_dots_ab.md``). Large square matmuls go the other way (the 2048^3
matmul is faster on YNNPACK there), so this is not a process-wide flag: brackit
passes ``xla_cpu_experimental_ynn_fusion_type=""`` (no YNNPACK fusion types) as a compiler option to the
programs it jits for training (``brackit.train.RunPlacement.jit``) and to nothing else. The matmul ceiling
that ``brackit bench`` divides by is the faster of the two kernels (``brackit.bench.matmul_ceiling``).

``BRACKIT_CPU_DOTS`` chooses: ``eigen`` (the default) or ``xla`` (XLA's own choice, YNNPACK where it
applies). An ``XLA_FLAGS`` that already names the option wins over both (an explicit choice). Only CPU
compiles are touched; on GPU and TPU ``compiler_options`` is None. The choice changes float rounding, not
the math: a run is bit-reproducible under one choice, and resumes under the same one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax

from brackit.errors import ConfigError

OPTION = "xla_cpu_experimental_ynn_fusion_type"
ENV = "BRACKIT_CPU_DOTS"
CHOICES = ("eigen", "xla")


def choice() -> str:
    """``BRACKIT_CPU_DOTS`` (``eigen`` when unset or empty); any other value is a ConfigError."""
    value = os.environ.get(ENV, "").strip().lower() or "eigen"
    if value not in CHOICES:
        raise ConfigError(f"{ENV}={os.environ[ENV]!r}: expected one of {', '.join(CHOICES)}")
    return value


def compiler_options(platform: str) -> dict[str, str] | None:
    """The XLA compiler options brackit adds to a training program compiled for ``platform``: Eigen dots
    on ``cpu`` (unless ``BRACKIT_CPU_DOTS=xla`` or ``XLA_FLAGS`` sets the option itself), else None."""
    if platform != "cpu" or OPTION in os.environ.get("XLA_FLAGS", ""):
        return None
    return {OPTION: ""} if choice() == "eigen" else None


def jit(fn: Callable[..., Any], platform: str | None = None, **kwargs: Any) -> Callable[..., Any]:
    """``jax.jit(fn, **kwargs)`` with ``compiler_options(platform)`` (default: the default backend's)."""
    options = compiler_options(platform or jax.default_backend())
    if options is None:
        return jax.jit(fn, **kwargs)
    return jax.jit(fn, compiler_options=options, **kwargs)
