"""Threefry on XLA:CPU without a loop: the same random bits, fewer tiny kernels per update.

JAX lowers its default PRNG hash, Threefry-2x32 (20 rounds), as a rolled ``fori_loop`` of 5 iterations on CPU
(to keep compile times short) and unrolled on GPUs. Inside brackit's training chunks every random draw
(batch indices, policy samples, target noise) then runs its own small ``while`` loop of about 16 tiny kernels
per iteration, inside the ``lax.scan`` over updates: a fixed per-draw cost that is large next to the
updates' small matmuls at the reference sizes. ``unroll_threefry_on_cpu`` registers the straight-line lowering
for the CPU platform instead. It computes the identical hash (Random123's Threefry-2x32: the same rotations and
key schedule as ``jax._src.random.threefry2x32``), so every key, sample and result stays bit-for-bit the same
(``tests/test_rng.py``); only the program's structure changes.

``brackit.train`` calls it on import; ``BRACKIT_ROLLED_THREEFRY=1`` keeps JAX's default. The registration is
process-wide: it also applies to other JAX code lowered for the CPU afterwards, with the same bits.
How much it buys is measured by ``benchmarks/threefry_ab.py``.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jnp.ndarray, distance: int) -> jnp.ndarray:
    return (x << np.uint32(distance)) | (x >> np.uint32(32 - distance))


def threefry2x32_unrolled(key1, key2, x1, x2) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Threefry-2x32 with 20 rounds on uint32 arrays (broadcast together), as straight-line code."""
    keys = (key1, key2, key1 ^ key2 ^ _PARITY)
    a, b = x1 + keys[0], x2 + keys[1]
    for block in range(5):  # 4 rounds, then a key injection
        for distance in _ROTATIONS[block % 2]:
            a = a + b
            b = _rotate_left(b, distance)
            b = a ^ b
        a = a + keys[(block + 1) % 3]
        b = b + keys[(block + 2) % 3] + np.uint32(block + 1)
    return a, b


_LOWERING = mlir.lower_fun(threefry2x32_unrolled, multiple_results=True)
_registered = False


def unroll_threefry_on_cpu() -> bool:
    """Registers the unrolled Threefry lowering for the CPU platform (once); returns whether it is active.
    Does nothing when ``BRACKIT_ROLLED_THREEFRY=1``. Programs already compiled keep their lowering."""
    global _registered
    if os.environ.get("BRACKIT_ROLLED_THREEFRY") == "1":
        return False
    if not _registered:
        mlir.register_lowering(threefry2x32_p, _LOWERING, platform="cpu")
        _registered = True
    return True
