"""brackit: offline reinforcement learning in JAX (BRAC, BEAR, BCQ and baselines)."""

__version__ = "0.1.0"
