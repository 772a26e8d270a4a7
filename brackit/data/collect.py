"""Collecting episodes from a gymnasium environment with a given policy (the raw material of datasets)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from brackit.data.dataset import Episode


def collect_episodes(
    env_id: str,
    policy: Callable[[np.ndarray, np.random.Generator], np.ndarray],
    num_transitions: int,
    seed: int = 0,
) -> list[Episode]:
    """Runs ``policy(obs, rng) -> action`` (env units) until ``num_transitions`` steps are recorded.

    Each episode starts from a reset (seeded ``seed``, ``seed + 1``, ...); the last one is cut off when the
    budget runs out (neither terminated nor truncated). Terminations and time-limit truncations are kept
    apart, as gymnasium reports them.
    """
    from brackit import envs as brackit_envs

    rng = np.random.default_rng(seed)
    env = brackit_envs.make(env_id)
    env.action_space.seed(seed)
    episodes: list[Episode] = []
    left = num_transitions
    try:
        while left > 0:
            obs, _ = env.reset(seed=seed + len(episodes))
            observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
            while left > 0:
                action = np.asarray(policy(obs, rng), np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(reward)
                terminations.append(terminated)
                truncations.append(truncated and not terminated)
                left -= 1
                if terminated or truncated:
                    break
            episodes.append(
                Episode(
                    observations=np.asarray(observations, np.float32),
                    actions=np.asarray(actions, np.float32),
                    rewards=np.asarray(rewards, np.float32),
                    terminations=np.asarray(terminations, bool),
                    truncations=np.asarray(truncations, bool),
                )
            )
    finally:
        env.close()
    return episodes


def uniform_policy(
    low: np.ndarray, high: np.ndarray
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """Uniform random actions in [low, high]."""
    return lambda obs, rng: rng.uniform(low, high).astype(np.float32)
