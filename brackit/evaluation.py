"""Policy evaluation on gymnasium tasks: every run's policy over its own episodes, one batched call per step.

R runs (seeds x sweep values) x E episodes are stepped together: the policy is evaluated once per time
step on obs [R, E, O] with a jitted, vmapped ``act``; finished episodes stop stepping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.nets import scale_action
from brackit.scores import normalized_score


@dataclasses.dataclass
class EvalReturns:
    env_id: str
    returns: np.ndarray
    """Undiscounted return of each episode: [R, E]."""
    lengths: np.ndarray
    """Episode lengths: [R, E]."""
    reference: tuple[float, float] | None = None
    """(random, expert) returns of the normalized score: the dataset's own (e.g. Minari's ref_min_score,
    ref_max_score) where it carries them; None: brackit.scores.REFERENCE_RETURNS by task."""

    def summary(self) -> dict[str, np.ndarray]:
        """Per-run mean and std of returns, and the normalized mean score where defined: [R] each."""
        out = {
            "eval/return_mean": self.returns.mean(axis=1),
            "eval/return_std": self.returns.std(axis=1),
            "eval/length_mean": self.lengths.mean(axis=1),
        }
        scores = [normalized_score(self.env_id, r, self.reference) for r in out["eval/return_mean"]]
        if scores and scores[0] is not None:
            out["eval/score_mean"] = np.asarray(scores)
        return out


def evaluate(
    act: Callable[[Any, jax.Array, jax.Array, str], jax.Array],
    states: Any,
    env_id: str,
    episodes: int,
    seed: int = 0,
    mode: str = "mode",
    max_steps: int | None = None,
    make_env: Callable[[], Any] | None = None,
    *,
    env_units: bool = False,
    reference: tuple[float, float] | None = None,
    first_reset_seed: int | None = None,
) -> EvalReturns:
    """Runs ``episodes`` episodes per run. ``act(states, obs [R, E, O], keys [R], mode)`` returns
    unit-box actions [R, E, A]; they are scaled to the env's action bounds here (``env_units``: ``act``
    returns actions in the env's units already, as an exported policy does). Env i of run r is reset
    with seed ``first_reset_seed + r * episodes + i`` (``first_reset_seed`` None: ``seed * 100_003``), so
    results are reproducible. ``reference``: the normalized score's (random, expert) returns
    (``EvalReturns.reference``)."""
    from brackit import envs as brackit_envs

    num_runs = int(jax.tree.leaves(states)[0].shape[0])
    make_env = make_env or (lambda: brackit_envs.make(env_id))
    envs = [make_env() for _ in range(num_runs * episodes)]
    try:
        low = np.asarray(envs[0].action_space.low, np.float32)
        high = np.asarray(envs[0].action_space.high, np.float32)
        horizon = max_steps or envs[0].spec.max_episode_steps or 1000
        first = seed * 100_003 if first_reset_seed is None else first_reset_seed
        obs = np.stack([env.reset(seed=first + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
        returns = np.zeros(len(envs))
        lengths = np.zeros(len(envs), np.int64)
        alive = np.ones(len(envs), bool)
        key = jax.random.key(seed)
        for _ in range(horizon):
            key, step_key = jax.random.split(key)
            unit = act(
                states,
                jnp.asarray(obs.reshape(num_runs, episodes, -1)),
                jax.random.split(step_key, num_runs),
                mode,
            )
            actions = np.asarray(unit if env_units else scale_action(unit, low, high)).reshape(len(envs), -1)
            for i in np.flatnonzero(alive):
                next_obs, reward, terminated, truncated, _ = envs[i].step(actions[i])
                obs[i] = next_obs
                returns[i] += float(reward)
                lengths[i] += 1
                if terminated or truncated:
                    alive[i] = False
            if not alive.any():
                break
    finally:
        for env in envs:
            env.close()
    return EvalReturns(
        env_id, returns.reshape(num_runs, episodes), lengths.reshape(num_runs, episodes), reference
    )


def exported_act(policy: Any) -> Callable[[Any, jax.Array, jax.Array, str], jax.Array]:
    """``evaluate``'s ``act`` for an exported policy (``brackit.policy.Policy``; one run, actions in env
    units: pass ``env_units=True`` and states with a leading axis of 1). A sampling policy gets the key
    data of the run's key, the key a checkpoint's run 0 gets, so both evaluate alike."""

    def act(states: Any, obs: jax.Array, keys: jax.Array, mode: str) -> jax.Array:
        key = np.asarray(jax.random.key_data(keys[0])) if policy.needs_key else None
        return jnp.asarray(policy(np.asarray(obs[0]), key))[None]

    return act
