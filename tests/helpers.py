"""Shared test data: random-episode offline datasets, and the benchmark scripts loaded as modules (imported as
``helpers``; tests/ is on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from brackit.data import Episode, arrays_from_episodes

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module named ``name`` (registered in ``sys.modules``, as its dataclasses
    need), for testing the parts of a script that run without its command line."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def random_episode_arrays(
    seed: int = 0,
    episodes: int = 3,
    steps: int = 20,
    obs_dim: int = 3,
    action_dim: int = 2,
    action_bound: float = 0.9,
    reward_scale: float = 1.0,
    ends: str = "truncated",
) -> dict[str, Any]:
    """Dataset arrays of ``episodes`` episodes of ``steps`` steps: Gaussian observations and rewards,
    uniform actions in [-action_bound, action_bound]; each episode ends in a time-limit truncation
    (``ends="truncated"``) or a true termination (``ends="terminated"``)."""
    if ends not in ("truncated", "terminated"):
        raise ValueError(f"ends must be 'truncated' or 'terminated', got {ends!r}")
    rng = np.random.default_rng(seed)
    last = np.r_[np.zeros(steps - 1, bool), True]
    none = np.zeros(steps, bool)
    result = []
    for _ in range(episodes):
        obs = rng.normal(size=(steps + 1, obs_dim)).astype(np.float32)
        action = rng.uniform(-action_bound, action_bound, size=(steps, action_dim)).astype(np.float32)
        reward = (reward_scale * rng.normal(size=steps)).astype(np.float32)
        terminated, truncated = (last, none) if ends == "terminated" else (none, last)
        result.append(Episode(obs, action, reward, terminated, truncated))
    return arrays_from_episodes(result)
