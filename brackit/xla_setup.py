"""Process-level XLA setup: the ``brackit`` CLI's global side effects, and the compiler options of training.

XLA reads ``XLA_FLAGS`` once, when JAX starts a backend, so two choices are made for the whole process and
must come before the first JAX computation. The ``brackit`` CLI makes both first thing (``setup_process``);
library users who want them call the same functions at the top of their script. Nothing here runs at import.

**One XLA CPU device per core** (``request_host_devices``). On CPU, XLA runs one program's matmuls on a
shared thread pool but most of its elementwise fusions on one thread; at brackit's sizes (batch 256,
200-300 wide layers) a single program leaves part of a 2-core machine idle. Split the host into one device
per core and shard the run axis across them (``train(devices="auto")``, ``brackit train --devices auto``):
each device runs its share of the seeds as its own vmapped program, side by side.
``benchmarks/throughput.py`` and ``throughput_family.py`` measure the gain (rows with 2 devices on the
2-core machine in ``benchmarks/results``). Splitting changes nothing for a program placed on one device (it
runs on device 0 with the whole thread pool); it only makes more devices available.
``BRACKIT_HOST_DEVICES=N`` chooses the count (``1`` keeps one device); an ``XLA_FLAGS`` that already sets
the flag wins over both. GPUs and TPUs are not affected: the flag only concerns the CPU platform.

**Bit-identical reruns on GPUs** (``request_deterministic_gpu_ops``). On CPU, brackit's programs give the
same bits for the same seed and config. On NVIDIA GPUs, XLA may pick cuDNN convolution-gradient algorithms
and scatter implementations that accumulate with atomics, in a different order on each run;
``--xla_gpu_deterministic_ops=true`` rules those out. The CLI adds the flag (unless ``XLA_FLAGS`` already
names it, or ``BRACKIT_GPU_NONDETERMINISTIC=1``); library users who need bit-identical GPU runs set it
themselves before JAX starts its backend::

    import os
    from brackit.xla_setup import with_deterministic_gpu_ops
    os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(os.environ.get("XLA_FLAGS", ""))

The CPU backend accepts the flag and ignores it.

**Eigen dots for the training chunks on CPU** (``training_compiler_options``, ``training_jit``): per
program, not process-wide. On CPU, JAX 0.10 hands most dots (and some reductions) to YNNPACK fusions. At
brackit's sizes (batch 256, layers 200-300 wide, a few vmapped seeds) those run slower than XLA's own Eigen
dot kernels on the 2-core machine the project is measured on, in every preset of
``benchmarks/experiments/cpu_dots_ab.py`` (``benchmarks/results/experiments/cpu_dots_ab.md``). Large square
matmuls go the other way (the 2048^3 matmul is faster on YNNPACK there), so brackit passes
``xla_cpu_experimental_ynn_fusion_type=""`` (no YNNPACK fusion types) as a compiler option to the programs
it jits for training (``brackit.train.RunPlacement.jit``) and to nothing else. The matmul ceiling that
``brackit bench`` divides by is the faster of the two kernels (``brackit.bench.matmul_ceiling``).
``BRACKIT_CPU_DOTS`` chooses: ``eigen`` (the default) or ``xla`` (XLA's own choice, YNNPACK where it
applies). An ``XLA_FLAGS`` that already names the option wins over both (an explicit choice). Only CPU
compiles are touched; on GPU and TPU the options are None. The choice changes float rounding, not the math:
a run is bit-reproducible under one choice, and resumes under the same one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from brackit.errors import ConfigError

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
HOST_DEVICES_ENV = "BRACKIT_HOST_DEVICES"
DETERMINISTIC_OPS_FLAG = "--xla_gpu_deterministic_ops"
GPU_NONDETERMINISTIC_ENV = "BRACKIT_GPU_NONDETERMINISTIC"
CPU_DOTS_OPTION = "xla_cpu_experimental_ynn_fusion_type"
CPU_DOTS_ENV = "BRACKIT_CPU_DOTS"
CPU_DOTS_CHOICES = ("eigen", "xla")


def setup_process() -> None:
    """The ``brackit`` CLI's global side effects, made before JAX starts a backend: deterministic GPU ops
    (``request_deterministic_gpu_ops``) and one CPU device per core (``request_host_devices``)."""
    request_deterministic_gpu_ops()
    request_host_devices()


# ------------------------------------------------------------------------------------- host devices


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def with_host_devices(xla_flags: str, count: int) -> str:
    """``xla_flags`` with ``HOST_DEVICES_FLAG=count`` appended, unless it already sets the flag (an
    explicit choice)."""
    if count < 1:
        raise ConfigError(f"host device count must be >= 1, got {count}")
    if HOST_DEVICES_FLAG in xla_flags:
        return xla_flags.strip()
    return f"{xla_flags.strip()} {HOST_DEVICES_FLAG}={count}".strip()


def positive_int(text: str) -> int | None:
    """``text`` as a positive integer, or None if it is not one."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def requested_host_devices() -> int:
    """``BRACKIT_HOST_DEVICES`` if set (a positive integer), else the number of available cores."""
    value = os.environ.get(HOST_DEVICES_ENV)
    if value is None or value.strip() == "":
        return available_cores()
    count = positive_int(value)
    if count is None:
        raise ConfigError(f"environment variable {HOST_DEVICES_ENV}={value!r}: expected a positive integer")
    return count


def request_host_devices(count: int | None = None) -> int:
    """Asks XLA for ``count`` CPU devices (default: ``requested_host_devices()``) by adding the flag to
    ``XLA_FLAGS`` in this process; returns the count asked for. Takes effect only if JAX has not started
    its CPU backend yet; ``XLA_FLAGS`` that already set the flag are left as they are."""
    count = requested_host_devices() if count is None else count
    os.environ["XLA_FLAGS"] = with_host_devices(os.environ.get("XLA_FLAGS", ""), count)
    return count


# ---------------------------------------------------------------------------------- GPU determinism


def with_deterministic_gpu_ops(xla_flags: str) -> str:
    """``xla_flags`` with ``--xla_gpu_deterministic_ops=true`` appended, unless it already sets that flag."""
    if DETERMINISTIC_OPS_FLAG in xla_flags:
        return xla_flags.strip()
    return f"{xla_flags.strip()} {DETERMINISTIC_OPS_FLAG}=true".strip()


def request_deterministic_gpu_ops() -> None:
    """Adds the flag to ``XLA_FLAGS`` in this process (before JAX's backend starts; later it has no effect),
    unless ``BRACKIT_GPU_NONDETERMINISTIC=1``."""
    if os.environ.get(GPU_NONDETERMINISTIC_ENV) != "1":
        os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(os.environ.get("XLA_FLAGS", ""))


# ----------------------------------------------------------------------------------------- CPU dots


def cpu_dots_choice() -> str:
    """``BRACKIT_CPU_DOTS`` (``eigen`` when unset or empty); any other value is a ConfigError."""
    value = os.environ.get(CPU_DOTS_ENV, "").strip().lower() or "eigen"
    if value not in CPU_DOTS_CHOICES:
        raise ConfigError(
            f"{CPU_DOTS_ENV}={os.environ[CPU_DOTS_ENV]!r}: expected one of {', '.join(CPU_DOTS_CHOICES)}"
        )
    return value


def training_compiler_options(platform: str) -> dict[str, str] | None:
    """The XLA compiler options brackit adds to a training program compiled for ``platform``: Eigen dots
    on ``cpu`` (unless ``BRACKIT_CPU_DOTS=xla`` or ``XLA_FLAGS`` sets the option itself), else None."""
    if platform != "cpu" or CPU_DOTS_OPTION in os.environ.get("XLA_FLAGS", ""):
        return None
    return {CPU_DOTS_OPTION: ""} if cpu_dots_choice() == "eigen" else None


def training_jit(fn: Callable[..., Any], platform: str | None = None, **kwargs: Any) -> Callable[..., Any]:
    """``jax.jit(fn, **kwargs)`` with ``training_compiler_options(platform)`` (default: the default
    backend's)."""
    import jax  # here, not at the top: the CLI imports this module before anything may start JAX

    options = training_compiler_options(platform or jax.default_backend())
    if options is None:
        return jax.jit(fn, **kwargs)
    return jax.jit(fn, compiler_options=options, **kwargs)
