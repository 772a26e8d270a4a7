"""D4RL normalized scores: 100 * (R - R_random) / (R_expert - R_random).

Reference returns from D4RL (measured on the v2 environments; brackit's tasks are v5, so scores are
comparable in scale, not exactly).
"""

from __future__ import annotations

REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


def task_name(env_id: str) -> str:
    """'Hopper-v5' -> 'hopper'."""
    return env_id.split("-")[0].lower()


def normalized_score(env_id: str | None, episode_return: float) -> float | None:
    """D4RL-normalized score, or None for a task without reference returns."""
    if env_id is None or task_name(env_id) not in REFERENCE_RETURNS:
        return None
    random, expert = REFERENCE_RETURNS[task_name(env_id)]
    return 100.0 * (episode_return - random) / (expert - random)
