"""Bit-identical reruns on GPUs: XLA's deterministic-ops flag.

On CPU, brackit's programs give the same bits for the same seed and config. On NVIDIA GPUs, XLA may pick
cuDNN convolution-gradient algorithms and scatter implementations that accumulate with atomics, in a different
order on each run; ``--xla_gpu_deterministic_ops=true`` rules those out. The ``brackit`` CLI adds the flag
(unless ``XLA_FLAGS`` already names it, or ``BRACKIT_GPU_NONDETERMINISTIC=1``); library users who need
bit-identical GPU runs set it themselves before JAX starts its backend::

    import os
    from brackit.determinism import with_deterministic_gpu_ops
    os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(os.environ.get("XLA_FLAGS", ""))

The CPU backend accepts the flag and ignores it.
"""

from __future__ import annotations

import os

FLAG = "--xla_gpu_deterministic_ops"


def with_deterministic_gpu_ops(xla_flags: str) -> str:
    """``xla_flags`` with ``--xla_gpu_deterministic_ops=true`` appended, unless it already sets that flag."""
    if FLAG in xla_flags:
        return xla_flags.strip()
    return f"{xla_flags.strip()} {FLAG}=true".strip()


def request_deterministic_gpu_ops() -> None:
    """Adds the flag to ``XLA_FLAGS`` in this process (before JAX's backend starts; later it has no effect),
    unless ``BRACKIT_GPU_NONDETERMINISTIC=1``."""
    if os.environ.get("BRACKIT_GPU_NONDETERMINISTIC") != "1":
        os.environ["XLA_FLAGS"] = with_deterministic_gpu_ops(os.environ.get("XLA_FLAGS", ""))
