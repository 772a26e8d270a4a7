"""Helpers shared by the algorithm tests: random batches, tiny datasets, pytree comparisons, and the
vmap-over-seeds check every algorithm must pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from helpers import random_episode_arrays

from brackit.algos import bc, get_algorithm
from brackit.data import make_dataset
from brackit.train import make_train
from brackit.types import Transition

OBS, ACT, B = 3, 2, 16
BRAC_SMALL = {
    "critic_hidden": (16, 16),
    "actor_hidden": (16, 16),
    "dual_hidden": (16, 16),
    "behavior": bc.BCConfig(hidden=(16, 16)),
    "batch_size": B,
    "warm_start_steps": 0,
}
"""Small BRAC networks for the tests (``BRACConfig(**BRAC_SMALL)``)."""


def batch(seed: int = 0, obs_dim: int = OBS, action_dim: int = ACT, size: int = B) -> Transition:
    rng = np.random.default_rng(seed)
    f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    u = lambda *shape: jnp.asarray(rng.uniform(-0.9, 0.9, size=shape), jnp.float32)  # noqa: E731
    return Transition(
        f(size, obs_dim),
        u(size, action_dim),
        f(size),
        jnp.asarray(rng.integers(0, 2, size), jnp.float32),
        f(size, obs_dim),
        u(size, action_dim),
    )


def host(leaf) -> np.ndarray:
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def leaves_equal(a, b) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(host(x), host(y)) for x, y in pairs)


def max_change(a, b) -> float:
    return max(
        float(np.max(np.abs(host(x) - host(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def tiny_dataset(seed: int = 0, episodes: int = 4, steps: int = 20):
    arrays = random_episode_arrays(seed, episodes, steps, OBS, ACT, ends="terminated")
    return make_dataset(arrays, path="<tiny>", source_format="test")


def assert_vmap_equals_single_runs(name: str, config) -> None:
    """Shared by the family's tests: jitted chunks vmapped over 3 seeds equal the single runs."""
    fns = make_train(get_algorithm(name), config, OBS, ACT, chunk_steps=3)
    dataset = tiny_dataset()
    seeds = [0, 1, 2]
    chunk = jax.jit(fns.chunk)  # init runs eagerly: two compilations in all
    states = jax.vmap(fns.init)(jnp.stack([jax.random.key(s) for s in seeds]))
    states, metrics = jax.jit(jax.vmap(fns.chunk, in_axes=(0, None)))(states, dataset)
    assert metrics["critic/loss"].shape == (3,)
    for index, seed in enumerate(seeds):
        single, _ = chunk(fns.init(jax.random.key(seed)), dataset)
        batched = jax.tree.map(lambda x, i=index: x[i], states)
        for x, y in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(host(x), host(y), rtol=2e-5, atol=2e-6)
    kernels = jax.tree.leaves(states.actor_params)
    assert not np.allclose(kernels[-1][0], kernels[-1][1])  # different seeds, different parameters
