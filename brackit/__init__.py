"""brackit: offline reinforcement learning in JAX (BRAC, BEAR, BCQ and baselines)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_policy"]


def __getattr__(name: str) -> Any:
    # Lazy: ``import brackit`` stays light; ``brackit.load_policy`` imports brackit.policy (jax and numpy).
    if name == "load_policy":
        from brackit.policy import load_policy

        return load_policy
    raise AttributeError(f"module 'brackit' has no attribute {name!r}")
