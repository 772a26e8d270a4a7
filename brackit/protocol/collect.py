"""Collecting the transitions of one segment of a BRAC-protocol dataset (``brackit.protocol.build``):
``num_envs`` environments stepped together from fresh resets, with one batched call of the behavior policy
(``brackit.protocol.behavior``) per vector step, its actions used as they are, mixed with uniform-random
ones (epsilon) or with Gaussian noise, or replaced by uniform-random ones.

Determinism: the environments' reset seeds come from ``(seed, segment, env, episode)`` and the actions of
vector step t from ``fold_in(key(seed, segment), t)``, and the environments are stepped and recorded in a
fixed order, so a segment does not depend on how the environments are split between processes.

Speed: with ``workers`` > 0 the environments are split into ``workers + 1`` groups, one stepped by this
process and the others by subprocesses at the same time. On 2 idle cores, 64 environments with one worker
build 1M Hopper transitions in about 3.7 minutes against 5.9 with 16 environments and none
(benchmarks/results/dataset_build.md); when other jobs keep both cores busy, the pipes cost more than the
second core gives back. With workers, run from a script guarded by ``if __name__ == "__main__":`` (the
subprocesses are spawned, never forked).
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.data.dataset import Episode
from brackit.nets import scale_action
from brackit.protocol import sac
from brackit.protocol.behavior import BehaviorPolicy

KINDS = ("random", "policy", "epsilon", "gaussian")


@dataclasses.dataclass(frozen=True)
class Segment:
    name: str
    """Label in the card: 'random', 'policy', 'eps0.1', 'gaussian0.3', ..."""
    kind: str
    """One of ``KINDS``."""
    weight: float
    """Fraction of the dataset."""
    noise: float = 0.0
    """Epsilon (epsilon) or the Gaussian standard deviation (gaussian)."""


# ----------------------------------------------------------------------------------------- actions


@functools.partial(jax.jit, static_argnames=("hidden", "log_std", "kind"))
def behavior_actions(
    hidden: tuple[int, ...],
    log_std: tuple[float, float],
    kind: str,
    params: dict,
    obs: jax.Array,
    key: jax.Array,
    step: jax.Array,
    noise: jax.Array,
    low: jax.Array,
    high: jax.Array,
) -> jax.Array:
    """Environment actions [K, A] at obs [K, O] for vector step ``step`` of a segment of ``kind``."""
    count, action_dim = obs.shape[0], low.shape[0]
    policy_key, mask_key, uniform_key, noise_key = jax.random.split(jax.random.fold_in(key, step), 4)
    uniform = jax.random.uniform(uniform_key, (count, action_dim), minval=low, maxval=high)
    if kind == "random":
        return uniform
    config = sac.SACConfig(actor_hidden=hidden, log_std_min=log_std[0], log_std_max=log_std[1])
    pi = sac.policy(config, params, obs, action_dim)
    action = scale_action(jnp.tanh(pi.sample_raw(policy_key)), low, high)
    if kind == "policy":
        return action
    if kind == "epsilon":
        return jnp.where(jax.random.uniform(mask_key, (count, 1)) < noise, uniform, action)
    return jnp.clip(action + noise * jax.random.normal(noise_key, action.shape), low, high)


# ----------------------------------------------------------------------------------------- environments


def reset_seed(seed: int, segment: int, env_index: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of environment ``env_index`` in segment ``segment``."""
    return int(np.random.SeedSequence([seed, segment, env_index, episode]).generate_state(1)[0])


def _step_group(
    envs: list[Any], actions: np.ndarray, mask: np.ndarray, next_seeds: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Steps env i where ``mask[i]``; an env whose episode ends is reset with ``next_seeds[i]``.

    Returns next_obs [k, O] (the true next observation), reward [k], terminated [k], truncated [k] and
    reset_obs [k, O] (the first observation of the next episode where one ended, else next_obs).
    """
    count = len(envs)
    obs_dim = envs[0].observation_space.shape[0]
    next_obs = np.zeros((count, obs_dim), np.float32)
    reset_obs = np.zeros((count, obs_dim), np.float32)
    reward = np.zeros(count, np.float64)
    terminated = np.zeros(count, bool)
    truncated = np.zeros(count, bool)
    for i in np.flatnonzero(mask):
        obs, reward[i], terminated[i], truncated[i], _ = envs[i].step(actions[i])
        next_obs[i] = obs
        reset_obs[i] = envs[i].reset(seed=int(next_seeds[i]))[0] if terminated[i] or truncated[i] else obs
    return next_obs, reward, terminated, truncated, reset_obs


def _worker(connection: Any, env_id: str, count: int) -> None:
    """Subprocess loop: ('reset', seeds) -> obs; ('step', actions, mask, next_seeds) -> _step_group(...)."""
    from brackit import envs as brackit_envs

    envs = [brackit_envs.make(env_id) for _ in range(count)]
    try:
        while True:
            message = connection.recv()
            if message[0] == "reset":
                connection.send(
                    np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, message[1], strict=True)])
                )
            elif message[0] == "step":
                connection.send(_step_group(envs, *message[1:]))
            else:
                break
    finally:
        for env in envs:
            env.close()
        connection.close()


class EnvPool:
    """``num_envs`` environments split into ``workers + 1`` groups: the first is stepped in this process,
    each other one by a subprocess, all at the same time (the main process steps its share while the
    workers step theirs). ``workers`` 0: everything in this process."""

    def __init__(self, env_id: str, num_envs: int, workers: int):
        from brackit import envs as brackit_envs

        self.num_envs = num_envs
        workers = min(workers, num_envs - 1)
        self.bounds = np.linspace(0, num_envs, workers + 2).astype(int)
        self.local = [brackit_envs.make(env_id) for _ in range(self.bounds[1])]
        self.connections: list[Any] = []
        self.processes: list[Any] = []
        context = multiprocessing.get_context("spawn")  # never fork a process that runs JAX
        for start, stop in zip(self.bounds[1:-1], self.bounds[2:], strict=True):
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, env_id, int(stop - start)), daemon=True)
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)

    def _remote(self) -> list[tuple[Any, int, int]]:
        return list(zip(self.connections, self.bounds[1:-1], self.bounds[2:], strict=True))

    def reset(self, seeds: np.ndarray) -> np.ndarray:
        for connection, start, stop in self._remote():
            connection.send(("reset", seeds[start:stop]))
        local = [env.reset(seed=int(s))[0] for env, s in zip(self.local, seeds, strict=False)]
        return np.concatenate([np.stack(local), *(connection.recv() for connection in self.connections)])

    def step(self, actions: np.ndarray, mask: np.ndarray, next_seeds: np.ndarray) -> tuple[np.ndarray, ...]:
        for connection, start, stop in self._remote():
            connection.send(("step", actions[start:stop], mask[start:stop], next_seeds[start:stop]))
        stop = self.bounds[1]
        parts = [_step_group(self.local, actions[:stop], mask[:stop], next_seeds[:stop])]
        parts += [connection.recv() for connection in self.connections]
        return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))

    def close(self) -> None:
        for env in self.local:
            env.close()
        for connection in self.connections:
            try:
                connection.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()


# ----------------------------------------------------------------------------------------- collection


@dataclasses.dataclass
class _Recorder:
    """The episode in progress of one environment."""

    observations: list[np.ndarray]
    actions: list[np.ndarray] = dataclasses.field(default_factory=list)
    rewards: list[float] = dataclasses.field(default_factory=list)
    terminations: list[bool] = dataclasses.field(default_factory=list)
    truncations: list[bool] = dataclasses.field(default_factory=list)

    def episode(self) -> Episode:
        return Episode(
            observations=np.asarray(self.observations, np.float32),
            actions=np.asarray(self.actions, np.float32),
            rewards=np.asarray(self.rewards, np.float32),
            terminations=np.asarray(self.terminations, bool),
            truncations=np.asarray(self.truncations, bool),
        )


def collect_segment(
    pool: EnvPool,
    policy: BehaviorPolicy | None,
    segment: Segment,
    size: int,
    seed: int,
    segment_index: int,
    low: np.ndarray,
    high: np.ndarray,
    advance: Callable[[int], None] = lambda n: None,
) -> tuple[list[Episode], int]:
    """Exactly ``size`` transitions from fresh resets; returns (episodes, number of cut episodes).

    At every vector step the environments are stepped and recorded in index order; when fewer than
    ``num_envs`` transitions are left, only the first ones still needed are stepped.
    """
    count = pool.num_envs
    episode_index = np.zeros(count, np.int64)
    seeds = np.array([reset_seed(seed, segment_index, i, 0) for i in range(count)], np.int64)
    obs = pool.reset(seeds).astype(np.float32)
    next_seeds = np.array([reset_seed(seed, segment_index, i, 1) for i in range(count)], np.int64)
    recorders = [_Recorder([obs[i]]) for i in range(count)]
    key = jax.random.fold_in(jax.random.key(seed), segment_index)
    if policy is not None:
        hidden = tuple(int(w) for w in policy.card["actor_hidden"])
        log_std = (float(policy.card["log_std_min"]), float(policy.card["log_std_max"]))
        params = policy.params
    else:
        hidden, log_std, params = (1,), (-5.0, 0.0), {}
    low_j, high_j = jnp.asarray(low), jnp.asarray(high)
    noise = jnp.float32(segment.noise)
    episodes: list[Episode] = []
    left, step = size, 0
    while left > 0:
        actions = np.asarray(
            behavior_actions(
                hidden,
                log_std,
                segment.kind,
                params,
                obs,
                key,
                np.int32(step),
                noise,
                low_j,
                high_j,
            )
        )
        mask = np.zeros(count, bool)
        mask[: min(left, count)] = True
        next_obs, reward, terminated, truncated, reset_obs = pool.step(actions, mask, next_seeds)
        for i in np.flatnonzero(mask):
            recorder = recorders[i]
            recorder.observations.append(next_obs[i])
            recorder.actions.append(actions[i])
            recorder.rewards.append(float(reward[i]))
            recorder.terminations.append(bool(terminated[i]))
            recorder.truncations.append(bool(truncated[i] and not terminated[i]))
            if terminated[i] or truncated[i]:
                episodes.append(recorder.episode())
                episode_index[i] += 1
                next_seeds[i] = reset_seed(seed, segment_index, i, int(episode_index[i]) + 1)
                recorders[i] = _Recorder([reset_obs[i]])
        obs = np.where(mask[:, None], reset_obs, obs).astype(np.float32)
        stepped = int(mask.sum())
        left -= stepped
        step += 1
        advance(stepped)
    cut = [recorder.episode() for recorder in recorders if recorder.actions]
    return episodes + cut, len(cut)
