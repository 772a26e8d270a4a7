"""The offline dataset: transitions on the device, a card that describes them, on-device sampling.

Every format reader (``brackit.data.formats``) produces the same host-side ``EpisodeArrays`` and goes
through ``make_dataset``, so validation, hashing and the card are computed in one place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from brackit.errors import DatasetError
from brackit.types import Transition

# The arrays of a dataset, in the order used for hashing and storage.
ARRAY_FIELDS: tuple[str, ...] = (
    "obs",
    "action",
    "reward",
    "discount",
    "next_obs",
    "next_action",
    "next_action_valid",
    "episode_id",
    "timeout",
)
_DTYPES: dict[str, Any] = {
    "obs": np.float32,
    "action": np.float32,
    "reward": np.float32,
    "discount": np.float32,
    "next_obs": np.float32,
    "next_action": np.float32,
    "next_action_valid": np.bool_,
    "episode_id": np.int32,
    "timeout": np.bool_,
}
_RANKS: dict[str, int] = {
    "obs": 2,
    "action": 2,
    "next_obs": 2,
    "next_action": 2,
}
# Actions may sit on the bounds up to float32 rounding.
_BOUND_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True)
class DatasetCard:
    """What a dataset is. Hashable (tuples only), so it can be a static field under ``jax.jit``.

    ``extra_json`` holds free-form provenance as a JSON object string (behavior-policy returns, mix,
    build command, ...); ``behavior`` is a one-line description of the behavior policy when known.
    """

    env_id: str | None
    obs_dim: int
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    num_transitions: int
    num_episodes: int
    source_format: str
    sha256: str
    behavior: str | None = None
    extra_json: str = "{}"

    @property
    def extra(self) -> dict[str, Any]:
        return json.loads(self.extra_json)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["action_low"] = list(self.action_low)
        out["action_high"] = list(self.action_high)
        out["extra"] = self.extra
        del out["extra_json"]
        return out

    @classmethod
    def from_dict(cls, data: Any, path: object = "<card>") -> DatasetCard:
        """The card of a JSON object; any missing or mistyped entry is a ``DatasetError`` naming it."""
        if not isinstance(data, dict):
            raise DatasetError(path, "card", "a JSON object", f"a {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for name, kinds in _CARD_TYPES.items():
            if name not in data:
                if type(None) in kinds:
                    continue
                raise DatasetError(path, f"card.{name}", "present in the dataset card")
            value = data[name]
            if not isinstance(value, kinds) or isinstance(value, bool):
                wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise DatasetError(path, f"card.{name}", wanted, f"{value!r}"[:80])
            kwargs[name] = value
        for name in ("action_low", "action_high"):
            value = data.get(name)
            if not isinstance(value, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                raise DatasetError(path, f"card.{name}", "a list of numbers", f"{value!r}"[:80])
            kwargs[name] = tuple(float(v) for v in value)
        extra = data.get("extra", {})
        if not isinstance(extra, dict):
            raise DatasetError(path, "card.extra", "a JSON object", f"{extra!r}"[:80])
        kwargs["extra_json"] = json.dumps(extra, sort_keys=True)
        return cls(**kwargs)


# The scalar entries of a card's JSON and their types (NoneType: may be null or absent).
_CARD_TYPES: dict[str, tuple[type, ...]] = {
    "env_id": (str, type(None)),
    "obs_dim": (int,),
    "action_dim": (int,),
    "num_transitions": (int,),
    "num_episodes": (int,),
    "source_format": (str,),
    "sha256": (str,),
    "behavior": (str, type(None)),
}


@struct.dataclass
class OfflineDataset:
    """A whole offline dataset as device arrays (a pytree: pass it into ``jit`` and ``lax.scan``).

    transitions: every field [N, ...]. episode_id: [N] int32, consecutive from 0, rows grouped by
    episode in time order. timeout: [N] bool, the episode was cut by a time limit after this row.
    next_action_valid: [N] bool, False where the dataset has no action at ``next_obs`` (the last row
    of an episode); there ``next_action`` repeats ``action``, the nearest behavior sample.
    """

    transitions: Transition
    episode_id: jax.Array
    timeout: jax.Array
    next_action_valid: jax.Array
    card: DatasetCard = struct.field(pytree_node=False)

    @property
    def size(self) -> int:
        return self.card.num_transitions

    def sample(self, key: jax.Array, batch_size: int) -> Transition:
        """Draws ``batch_size`` transitions uniformly with replacement; works under jit and scan."""
        index = jax.random.randint(key, (batch_size,), 0, self.transitions.reward.shape[0])
        return jax.tree.map(lambda x: jnp.take(x, index, axis=0), self.transitions)

    def host_arrays(self) -> dict[str, np.ndarray]:
        """The arrays as numpy, keyed as in ``ARRAY_FIELDS``: the dataset's own (``next_action_valid``,
        ``episode_id``, ``timeout``), and its transitions' fields of the other names."""
        own = ("next_action_valid", "episode_id", "timeout")
        return {
            name: np.asarray(getattr(self if name in own else self.transitions, name))
            for name in ARRAY_FIELDS
        }

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode: [num_episodes] float64."""
        reward = np.asarray(self.transitions.reward, dtype=np.float64)
        episode_id = np.asarray(self.episode_id)
        return np.bincount(episode_id, weights=reward, minlength=self.card.num_episodes)

    def stats(self) -> dict[str, Any]:
        """Summary statistics (plain Python numbers, JSON-serialisable)."""
        returns = self.episode_returns()
        discount = np.asarray(self.transitions.discount)
        action = np.asarray(self.transitions.action)
        return {
            "num_transitions": self.card.num_transitions,
            "num_episodes": self.card.num_episodes,
            "obs_dim": self.card.obs_dim,
            "action_dim": self.card.action_dim,
            "num_terminals": int(np.sum(discount == 0.0)),
            "num_timeouts": int(np.sum(np.asarray(self.timeout))),
            "episode_return_mean": float(returns.mean()) if returns.size else float("nan"),
            "episode_return_std": float(returns.std()) if returns.size else float("nan"),
            "episode_return_min": float(returns.min()) if returns.size else float("nan"),
            "episode_return_max": float(returns.max()) if returns.size else float("nan"),
            "reward_mean": float(np.mean(np.asarray(self.transitions.reward))),
            "action_abs_max": float(np.max(np.abs(action))) if action.size else 0.0,
        }


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays in ``ARRAY_FIELDS`` order (name, dtype, shape and bytes of each)."""
    digest = hashlib.sha256()
    for name in ARRAY_FIELDS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def env_spaces(env_id: str, path: object = "<dataset>") -> tuple[int, int, np.ndarray, np.ndarray]:
    """(obs_dim, action_dim, action_low, action_high) of a gymnasium environment id."""
    from brackit import envs as brackit_envs

    try:
        env = brackit_envs.make(env_id)
    except Exception as error:  # gymnasium raises several error types for unknown ids
        raise DatasetError(path, "env_id", "a registered gymnasium environment id", repr(env_id)) from error
    try:
        obs_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    if len(obs_space.shape or ()) != 1 or len(action_space.shape or ()) != 1:
        raise DatasetError(path, "env_id", "an environment with flat Box observation and action spaces")
    return (
        int(obs_space.shape[0]),
        int(action_space.shape[0]),
        np.asarray(action_space.low, dtype=np.float32),
        np.asarray(action_space.high, dtype=np.float32),
    )


def coerce_field(value: Any, dtype: Any, rank: int, path: object, name: str) -> np.ndarray:
    """One field as it will be used: a numeric array of ``rank`` with non-zero widths, cast to ``dtype``.

    The checks run on the cast result, so a float64 value beyond float32's range (inf once stored) is
    refused like a NaN; a boolean field takes only 0 and 1 (a NaN would cast to True); an integer field
    only whole numbers within its range. Any failure is a ``DatasetError`` naming ``path`` and ``name``.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise DatasetError(path, name, "a numeric array", str(error)) from error
    if array.dtype.kind not in "biuf":
        raise DatasetError(path, name, "a numeric array", f"dtype {array.dtype}")
    if array.ndim != rank:
        raise DatasetError(path, name, f"rank {rank}", f"rank {array.ndim} with shape {array.shape}")
    if 0 in array.shape[1:]:
        raise DatasetError(path, name, "non-zero widths", f"shape {array.shape}")
    target = np.dtype(dtype)

    def refuse(bad: np.ndarray, expected: str) -> DatasetError:
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        return DatasetError(path, name, expected, f"{array[index].item()!r} at row {index[0]}")

    if target.kind == "b":
        if array.dtype.kind != "b":
            bad = (array != 0) & (array != 1)  # NaN included
            if bad.any():
                raise refuse(bad, "booleans (0 or 1)")
        return array.astype(target, copy=False)
    if target.kind in "iu":
        info = np.iinfo(target)
        with np.errstate(all="ignore"):  # NaN compares False; a narrow float can't hold info.max
            bad = (array < info.min) | (array > info.max)
            if array.dtype.kind == "f":
                bad |= ~np.isfinite(array) | (np.floor(array) != array)
        if bad.any():
            raise refuse(bad, f"whole numbers within {target}'s range")
        return array.astype(target, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(target, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        raise refuse(bad, f"finite {target} values (NaN, inf and values beyond {target}'s range refused)")
    return out


def validate_arrays(arrays: dict[str, np.ndarray], path: object) -> dict[str, np.ndarray]:
    """Checks every field as it will be used (``coerce_field``: dtype, rank, non-zero widths, finiteness
    after the cast to the canonical dtype), then lengths, widths and the values' meaning; returns the
    cast arrays."""
    out = {}
    for name in ARRAY_FIELDS:
        if name not in arrays:
            raise DatasetError(path, name, "present")
        out[name] = coerce_field(arrays[name], _DTYPES[name], _RANKS.get(name, 1), path, name)
    n = out["reward"].shape[0]
    for name, array in out.items():
        if array.shape[0] != n:
            raise DatasetError(path, name, f"{n} rows (as many as 'reward')", f"{array.shape[0]} rows")
    if n == 0:
        raise DatasetError(path, "reward", "at least one transition", "0 rows")
    for a, b in (("obs", "next_obs"), ("action", "next_action")):
        if out[a].shape[1] != out[b].shape[1]:
            raise DatasetError(path, b, f"width {out[a].shape[1]} (as '{a}')", f"width {out[b].shape[1]}")
    if not np.all((out["discount"] == 0.0) | (out["discount"] == 1.0)):
        raise DatasetError(path, "discount", "values in {0, 1} (continuation mask)")
    episode_id = out["episode_id"]
    steps = np.diff(episode_id)
    if episode_id[0] != 0 or np.any((steps != 0) & (steps != 1)):
        raise DatasetError(path, "episode_id", "consecutive ids from 0, rows grouped by episode")
    return out


def _action_bounds(
    low: Any, high: Any, action_dim: int, path: object, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """``low`` and ``high`` (from ``source``) as finite float32 [action_dim] vectors with low <= high."""
    low = coerce_field(low, np.float32, 1, path, "action_low")
    high = coerce_field(high, np.float32, 1, path, "action_high")
    for name, bound in (("action_low", low), ("action_high", high)):
        if bound.shape != (action_dim,):
            raise DatasetError(path, name, f"shape ({action_dim},) (from {source})", f"shape {bound.shape}")
    if np.any(low > high):
        raise DatasetError(path, "action_low", f"low <= high (from {source})", f"{low} > {high}")
    return low, high


def make_dataset(
    arrays: dict[str, np.ndarray],
    *,
    path: object,
    source_format: str,
    env_id: str | None = None,
    action_low: np.ndarray | None = None,
    action_high: np.ndarray | None = None,
    behavior: str | None = None,
    extra: dict[str, Any] | None = None,
    expected_sha256: str | None = None,
) -> OfflineDataset:
    """Validates host arrays, checks them against ``env_id``'s spaces, and builds the dataset.

    Action bounds come from ``env_id`` when given, else from ``action_low/high``, else [-1, 1] when the
    actions lie within it (the MuJoCo convention), else the data's own range (recorded in the card).
    """
    arrays = validate_arrays(arrays, path)
    obs_dim, action_dim = arrays["obs"].shape[1], arrays["action"].shape[1]
    extra = dict(extra or {})
    if env_id is not None:
        env_obs_dim, env_action_dim, low, high = env_spaces(env_id, path)
        if obs_dim != env_obs_dim:
            raise DatasetError(path, "obs", f"width {env_obs_dim} for {env_id}", f"width {obs_dim}")
        if action_dim != env_action_dim:
            raise DatasetError(path, "action", f"width {env_action_dim} for {env_id}", f"width {action_dim}")
        low, high = _action_bounds(low, high, action_dim, path, f"{env_id}'s action space")
        extra.setdefault("action_bounds_source", "env")
    elif action_low is not None and action_high is not None:
        low, high = _action_bounds(action_low, action_high, action_dim, path, "file")
        extra.setdefault("action_bounds_source", "file")
    elif np.all(np.abs(arrays["action"]) <= 1.0 + _BOUND_TOLERANCE):
        low, high = -np.ones(action_dim, np.float32), np.ones(action_dim, np.float32)
        extra.setdefault("action_bounds_source", "assumed [-1, 1]")
    else:
        low, high = arrays["action"].min(axis=0), arrays["action"].max(axis=0)
        extra.setdefault("action_bounds_source", "data range")
    slack = _BOUND_TOLERANCE * np.maximum(1.0, np.abs(high - low))
    for name in ("action", "next_action"):
        outside = (arrays[name] < low - slack) | (arrays[name] > high + slack)
        if np.any(outside):
            row = int(np.argmax(outside.any(axis=1)))
            raise DatasetError(
                path,
                name,
                f"values within the action bounds [{low.min():g}, {high.max():g}]",
                f"{arrays[name][row].tolist()} at row {row}",
            )
    sha = content_sha256(arrays)
    if expected_sha256 is not None and expected_sha256 != sha:
        raise DatasetError(path, "sha256", f"content hash {expected_sha256} (from the card)", sha)
    card = DatasetCard(
        env_id=env_id,
        obs_dim=int(obs_dim),
        action_dim=int(action_dim),
        action_low=tuple(float(v) for v in low),
        action_high=tuple(float(v) for v in high),
        num_transitions=int(arrays["reward"].shape[0]),
        num_episodes=int(arrays["episode_id"][-1]) + 1,
        source_format=source_format,
        sha256=sha,
        behavior=behavior,
        extra_json=json.dumps(extra, sort_keys=True),
    )
    transitions = Transition(
        obs=jnp.asarray(arrays["obs"]),
        action=jnp.asarray(arrays["action"]),
        reward=jnp.asarray(arrays["reward"]),
        discount=jnp.asarray(arrays["discount"]),
        next_obs=jnp.asarray(arrays["next_obs"]),
        next_action=jnp.asarray(arrays["next_action"]),
        next_action_valid=jnp.asarray(arrays["next_action_valid"], jnp.float32),
    )
    return OfflineDataset(
        transitions=transitions,
        episode_id=jnp.asarray(arrays["episode_id"]),
        timeout=jnp.asarray(arrays["timeout"]),
        next_action_valid=jnp.asarray(arrays["next_action_valid"]),
        card=card,
    )


@dataclasses.dataclass
class Episode:
    """One episode as recorded by an environment loop (Minari's layout).

    observations: [T + 1, O]; actions: [T, A]; rewards: [T]; terminations, truncations: [T] bool.
    An episode whose last row is neither terminated nor truncated was cut off by the end of the data.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


def arrays_from_episodes(episodes: list[Episode], path: object = "<episodes>") -> dict[str, np.ndarray]:
    """Flattens episodes into dataset arrays (``next_action`` never crosses an episode boundary)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAY_FIELDS}
    for index, episode in enumerate(episodes):
        steps = int(np.asarray(episode.actions).shape[0])
        if steps == 0:
            continue
        observations = np.asarray(episode.observations)
        if observations.shape[0] != steps + 1:
            raise DatasetError(
                path,
                f"episode_{index}/observations",
                f"{steps + 1} rows (actions + 1)",
                f"{observations.shape[0]}",
            )
        for name in ("rewards", "terminations", "truncations"):
            rows = np.asarray(getattr(episode, name)).shape[0]
            if rows != steps:
                raise DatasetError(path, f"episode_{index}/{name}", f"{steps} rows (as actions)", f"{rows}")
        actions = np.asarray(episode.actions, np.float32)
        if parts["action"]:  # every episode as wide as the first
            for name, array, first in (
                ("observations", observations, parts["obs"][0]),
                ("actions", actions, parts["action"][0]),
            ):
                if array.shape[1:] != first.shape[1:]:
                    raise DatasetError(
                        path,
                        f"episode_{index}/{name}",
                        f"trailing shape {first.shape[1:]} (as the first episode)",
                        f"shape {array.shape}",
                    )
        terminations = np.asarray(episode.terminations, bool)
        parts["obs"].append(observations[:-1])
        parts["next_obs"].append(observations[1:])
        parts["action"].append(actions)
        parts["next_action"].append(np.concatenate([actions[1:], actions[-1:]]))
        valid = np.ones(steps, bool)
        valid[-1] = False
        parts["next_action_valid"].append(valid)
        parts["reward"].append(np.asarray(episode.rewards, np.float32))
        parts["discount"].append(1.0 - terminations.astype(np.float32))
        parts["timeout"].append(np.asarray(episode.truncations, bool) & ~terminations)
        parts["episode_id"].append(np.full(steps, len(parts["episode_id"]), np.int32))
    if not parts["reward"]:
        raise DatasetError(path, "episodes", "at least one episode with one step or more")
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def episodes_from_arrays(arrays: dict[str, np.ndarray], path: object = "<dataset>") -> list[Episode]:
    """Inverse of ``arrays_from_episodes``; needs ``next_obs[t] == obs[t + 1]`` inside each episode."""
    episode_id = arrays["episode_id"]
    bounds = np.flatnonzero(np.diff(episode_id)) + 1
    episodes = []
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, episode_id.shape[0]], strict=True):
        obs, next_obs = arrays["obs"][start:stop], arrays["next_obs"][start:stop]
        if not np.array_equal(obs[1:], next_obs[:-1]):
            raise DatasetError(
                path,
                "next_obs",
                f"next_obs[t] == obs[t + 1] inside episode {int(episode_id[start])} to write episodes",
            )
        terminal = arrays["discount"][start:stop] == 0.0
        episodes.append(
            Episode(
                observations=np.concatenate([obs, next_obs[-1:]]),
                actions=arrays["action"][start:stop],
                rewards=arrays["reward"][start:stop],
                terminations=terminal,
                truncations=arrays["timeout"][start:stop] & ~terminal,
            )
        )
    return episodes
