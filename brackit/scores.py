"""D4RL normalized scores: 100 * (R - R_random) / (R_expert - R_random).

Reference returns from D4RL (measured on the v2 environments; brackit's tasks are v5, so scores are
comparable in scale, not exactly). A dataset that carries its own reference returns (a Minari dataset's
``ref_min_score`` / ``ref_max_score``, kept in its card's extra) is scored against those instead.
"""

from __future__ import annotations

from typing import Any

REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


def task_name(env_id: str) -> str:
    """'Hopper-v5' -> 'hopper'."""
    return env_id.split("-")[0].lower()


def normalized_score(
    env_id: str | None, episode_return: float, reference: tuple[float, float] | None = None
) -> float | None:
    """Normalized score against ``reference`` (random, expert) returns, else D4RL's for the task; None
    for a task without reference returns."""
    if reference is None:
        if env_id is None or task_name(env_id) not in REFERENCE_RETURNS:
            return None
        reference = REFERENCE_RETURNS[task_name(env_id)]
    random, expert = reference
    return 100.0 * (episode_return - random) / (expert - random)


def dataset_reference(extra: dict[str, Any]) -> tuple[float, float] | None:
    """(random, expert) returns a dataset card's extra carries (``ref_min_score``, ``ref_max_score``, as
    Minari's metadata names them), or None."""
    low, high = extra.get("ref_min_score"), extra.get("ref_max_score")
    if not isinstance(low, int | float) or not isinstance(high, int | float) or high == low:
        return None
    return float(low), float(high)
