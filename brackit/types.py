"""Core data types and shape conventions.

Shapes: ``B`` batch, ``O`` observation dim, ``A`` action dim, ``E`` ensemble size, ``N`` samples per state.
``discount`` is the continuation mask (0 on a true termination, 1 otherwise, including time-limit
truncations); ``gamma`` is the discount factor. The two are never mixed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Transition:
    """One batch of transitions (or a whole dataset, with B = number of transitions).

    obs: [B, O]; action: [B, A]; reward: [B]; discount: [B] (continuation mask);
    next_obs: [B, O]; next_action: [B, A], the dataset's action at ``next_obs`` (the behavior
    policy's sample at s', used by the dual divergences and critic penalties);
    next_action_valid: [B] float, 1 where ``next_action`` is real and 0 where the dataset has no action at
    ``next_obs`` (an episode's last row: ``next_action`` is then a placeholder, which the losses that read it
    mask out). None (the default) means every row is valid.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    next_action: jax.Array
    next_action_valid: jax.Array | None = None

    def next_action_mask(self) -> jax.Array:
        """``next_action_valid`` as a float mask [B] (all ones when the batch carries none)."""
        if self.next_action_valid is None:
            return jnp.ones_like(self.reward)
        return self.next_action_valid.astype(self.reward.dtype)


@struct.dataclass
class ObsStats:
    """Observation statistics of a dataset: ``mean`` [O] and ``std`` [O] (the epsilon already added).

    Training on normalised observations (``normalize_obs`` in a config) feeds the networks
    ``(obs - mean) / std``; the statistics travel with the training states and the checkpoint so a policy
    acts on raw observations.
    """

    mean: jax.Array
    std: jax.Array

    def normalize(self, obs: jax.Array) -> jax.Array:
        return (obs - self.mean) / self.std
