"""Core data types and shape conventions.

Shapes: ``B`` batch, ``O`` observation dim, ``A`` action dim, ``E`` ensemble size, ``N`` samples per state.
``discount`` is the continuation mask (0 on a true termination, 1 otherwise, including time-limit
truncations); ``gamma`` is the discount factor. The two are never mixed.
"""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class Transition:
    """One batch of transitions (or a whole dataset, with B = number of transitions).

    obs: [B, O]; action: [B, A]; reward: [B]; discount: [B] (continuation mask);
    next_obs: [B, O]; next_action: [B, A], the dataset's action at ``next_obs`` (the behavior
    policy's sample at s', used by the dual divergences and critic penalties).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    next_action: jax.Array
