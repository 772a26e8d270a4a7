"""Behavior policies of the BRAC dataset protocol (Wu et al. 2019, section 5 and appendix): SAC trained online
until its evaluation return reaches a per-task target on two consecutive evaluations.

Stored without pickle as ``<dir>/<task>.npz`` (the actor's parameters, flattened with '/'-joined path keys,
float32) and ``<dir>/<task>.card.json`` (provenance: env id, library versions, steps, seed, evaluation return
over 20 episodes, the sha256 of the parameters, the exact training command and the device).

    python -m brackit.protocol.behavior train --task hopper [--seed 0] [--out brackit/protocol_data/behavior]
        [--max-steps N] [--num-envs K] [--time-limit SECONDS]

The shipped policies live inside the package, in ``brackit/protocol_data/behavior/`` (package data, found
with ``importlib.resources``, so an installed wheel has them too); ``--out``'s default is that folder of
the checkout when run from its root.

``--time-limit`` stops training in time to evaluate and save the best policy seen so far, marked
``"reached_target": false`` in the card. Exit status: 0 when the target was reached, 3 when it was not.

The shipped policies were trained all four at once, one process each, on one H200 with 16 CPU cores
(each reached its target; the slowest, Ant, after 220k steps and 418 s; their cards record this command
with the module's earlier name, ``brackit.behavior``):

    for t in ant halfcheetah hopper walker2d; do
      python -m brackit.protocol.behavior train --task $t --seed 0 --num-envs 8 --time-limit 470 \\
        --eval-every 10000 > behavior-$t.log 2>&1 &
    done; wait
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.resources
import json
import os
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from brackit.data.dataset import env_spaces
from brackit.errors import ConfigError, DatasetError
from brackit.files import atomic_path, atomic_write_text
from brackit.nets import TanhGaussian
from brackit.protocol import sac
from brackit.provenance import command_line, device_description, package_versions

TASKS: dict[str, tuple[str, float]] = {
    "ant": ("Ant-v5", 1000.0),
    "halfcheetah": ("HalfCheetah-v5", 4000.0),
    "hopper": ("Hopper-v5", 1000.0),
    "walker2d": ("Walker2d-v5", 1000.0),
}
"""task -> (gymnasium id, target evaluation return). HalfCheetah's 4000 is the official BRAC script's; the
others' 1000 follows the paper's description."""
CARD_VERSION = 1
FINAL_EVAL_EPISODES = 20
FINAL_EVAL_SEED = 1_000_000
REQUIRED_CARD_FIELDS = (
    "card_version",
    "task",
    "env_id",
    "obs_dim",
    "action_dim",
    "actor_hidden",
    "log_std_min",
    "log_std_max",
    "params_sha256",
    "reached_target",
    "target_return",
    "eval_return_mean",
    "eval_return_std",
    "eval_episodes",
    "training_steps",
    "seed",
    "command",
    "device",
    "gymnasium_version",
    "mujoco_version",
)


SHIPPED = "protocol_data/behavior"
"""The shipped policies' folder inside the ``brackit`` package."""


def default_dir() -> Path:
    """The shipped policies' folder (``brackit/protocol_data/behavior``, package data) as a path."""
    return Path(str(importlib.resources.files("brackit").joinpath(SHIPPED)))


def task_env(task: str) -> tuple[str, float]:
    if task not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def policy_paths(directory: str | os.PathLike, task: str) -> tuple[Path, Path]:
    """(params npz, card json) of ``task`` under ``directory``."""
    directory = Path(directory)
    return directory / f"{task}.npz", directory / f"{task}.card.json"


def train_command(task: str) -> str:
    return f"python -m brackit.protocol.behavior train --task {task}"


# ----------------------------------------------------------------------------------------- parameters


def flatten_params(params: dict) -> dict[str, np.ndarray]:
    """Nested parameter dict -> {'params/MLP_0/Dense_0/kernel': float32 array, ...}."""
    flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
    return {key: np.asarray(value, np.float32) for key, value in sorted(flat.items())}


def params_sha256(flat: dict[str, np.ndarray]) -> str:
    """sha256 over the flattened parameters in sorted key order (key, dtype, shape and bytes of each), so
    it does not depend on the zip container's timestamps."""
    digest = hashlib.sha256()
    for key in sorted(flat):
        array = np.ascontiguousarray(flat[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class BehaviorPolicy:
    """A loaded behavior policy: the actor's parameters and its card."""

    params: dict
    card: dict[str, Any]
    path: Path

    @property
    def env_id(self) -> str:
        return self.card["env_id"]

    @property
    def config(self) -> sac.SACConfig:
        """The network shape (a ``SACConfig`` whose actor matches the stored parameters)."""
        return sac.SACConfig(
            actor_hidden=tuple(self.card["actor_hidden"]),
            log_std_min=float(self.card["log_std_min"]),
            log_std_max=float(self.card["log_std_max"]),
        )

    @property
    def action_dim(self) -> int:
        return int(self.card["action_dim"])

    @property
    def obs_dim(self) -> int:
        return int(self.card["obs_dim"])

    def distribution(self, obs: jax.Array) -> TanhGaussian:
        """The policy at obs [B, O] (unit-box actions)."""
        return sac.policy(self.config, self.params, obs, self.action_dim)


def save_policy(npz_path: str | os.PathLike, params: dict, card: dict[str, Any]) -> tuple[Path, Path]:
    """Writes the parameters (npz, no pickle) and ``card`` (with ``params_sha256`` filled in) atomically;
    the npz goes first, so a card on disk always describes a complete parameter file."""
    npz_path = Path(npz_path)
    flat = flatten_params(params)
    card = {**card, "params_sha256": params_sha256(flat), "params_file": npz_path.name}
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **flat)
    card_file = npz_path.with_name(npz_path.name.removesuffix(".npz") + ".card.json")
    atomic_write_text(card_file, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return npz_path, card_file


def load_policy(npz_path: str | os.PathLike, card_path: str | os.PathLike | None = None) -> BehaviorPolicy:
    """Loads and validates a behavior policy; raises ``DatasetError`` naming the file and the field."""
    npz_path = Path(npz_path)
    card_path = (
        Path(card_path)
        if card_path is not None
        else npz_path.with_name(npz_path.name.removesuffix(".npz") + ".card.json")
    )
    if not card_path.exists():
        raise DatasetError(card_path, "file", "an existing behavior-policy card (.card.json)")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(card_path, "file", "a readable JSON object", str(error)) from error
    if not isinstance(card, dict):
        raise DatasetError(card_path, "file", "a JSON object", type(card).__name__)
    for field in REQUIRED_CARD_FIELDS:
        if field not in card:
            raise DatasetError(card_path, field, "present")
    if card["card_version"] != CARD_VERSION:
        raise DatasetError(card_path, "card_version", str(CARD_VERSION), repr(card["card_version"]))
    for field in ("obs_dim", "action_dim"):
        if not isinstance(card[field], int) or card[field] < 1:
            raise DatasetError(card_path, field, "a positive integer", repr(card[field]))
    if not npz_path.exists():
        raise DatasetError(npz_path, "file", "an existing parameter file (.npz)")
    flat: dict[str, np.ndarray] = {}
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    flat[key] = npz[key]
                except ValueError as error:  # object arrays need pickle, which is refused
                    raise DatasetError(npz_path, key, "a plain float32 array (pickle is refused)") from error
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError) as error:
        raise DatasetError(npz_path, "file", "a complete, uncorrupted npz archive", repr(error)) from error
    config = sac.SACConfig(
        actor_hidden=tuple(int(w) for w in card["actor_hidden"]),
        log_std_min=float(card["log_std_min"]),
        log_std_max=float(card["log_std_max"]),
    )
    template = jax.eval_shape(
        lambda: sac.actor_net(config, card["action_dim"]).init(
            jax.random.key(0), jnp.zeros((1, card["obs_dim"]))
        )
    )
    expected = traverse_util.flatten_dict(template, sep="/")
    for key, spec in sorted(expected.items()):
        if key not in flat:
            raise DatasetError(
                npz_path, key, f"present (an actor {config.actor_hidden} for {card['env_id']})"
            )
        array = flat[key]
        if array.shape != spec.shape:
            raise DatasetError(npz_path, key, f"shape {spec.shape}", f"shape {array.shape}")
        if array.dtype != np.float32:
            raise DatasetError(npz_path, key, "dtype float32", f"dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise DatasetError(npz_path, key, "finite values", "NaN or inf")
    extra_keys = sorted(set(flat) - set(expected))
    if extra_keys:
        raise DatasetError(npz_path, extra_keys[0], "absent (not a parameter of the actor network)")
    sha = params_sha256(flat)
    if sha != card["params_sha256"]:
        raise DatasetError(npz_path, "params_sha256", f"{card['params_sha256']} (from {card_path.name})", sha)
    params = traverse_util.unflatten_dict({key: jnp.asarray(flat[key]) for key in expected}, sep="/")
    return BehaviorPolicy(params=params, card=card, path=npz_path)


def load_task_policy(task: str, directory: str | os.PathLike | None = None) -> BehaviorPolicy:
    """The shipped policy of ``task`` (or the one in ``directory``); a missing file raises
    ``DatasetError`` with the command to train it."""
    task_env(task)
    npz_path, card_path = policy_paths(directory or default_dir(), task)
    for path in (npz_path, card_path):
        if not path.exists():
            raise DatasetError(
                path,
                "file",
                f"the trained behavior policy of '{task}'; train it with: {train_command(task)}"
                + (f" --out {Path(directory)}" if directory is not None else ""),
                "no such file",
            )
    return load_policy(npz_path, card_path)


def random_behavior_policy(
    env_id: str, seed: int = 0, hidden: tuple[int, ...] = (200, 200)
) -> BehaviorPolicy:
    """A randomly initialised actor of the behavior policy's size (benchmarks and tests, not a real one)."""
    obs_dim, action_dim, _, _ = env_spaces(env_id)
    config = sac.SACConfig(actor_hidden=hidden)
    params = sac.actor_net(config, action_dim).init(jax.random.key(seed), jnp.zeros((1, obs_dim)))
    card = {
        "env_id": env_id,
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "actor_hidden": list(hidden),
        "log_std_min": config.log_std_min,
        "log_std_max": config.log_std_max,
        "params_sha256": None,
        "random_init": True,
        "seed": seed,
    }
    return BehaviorPolicy(params=params, card=card, path=Path("<random init>"))


# ----------------------------------------------------------------------------------------- training


def make_card(
    task: str, result: sac.BehaviorResult, returns: np.ndarray, seed: int, target: float, command: str
) -> dict[str, Any]:
    env_id, _ = task_env(task)
    config = result.config
    return {
        "card_version": CARD_VERSION,
        "task": task,
        "env_id": env_id,
        "obs_dim": result.obs_dim,
        "action_dim": result.action_dim,
        "actor_hidden": list(config.actor_hidden),
        "log_std_min": config.log_std_min,
        "log_std_max": config.log_std_max,
        "reached_target": result.reached_target,
        "target_return": target,
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_episodes": len(returns),
        "eval_seed": FINAL_EVAL_SEED,
        "eval_mode": "mode (tanh of the Gaussian mean)",
        "training_return_at_stop": result.best_return,
        "training_steps": result.steps,
        "training_updates": result.updates,
        "training_seconds": round(result.seconds, 1),
        "training_evaluations": [
            {"step": int(row["step"]), "return_mean": round(row["return_mean"], 2)} for row in result.history
        ],
        "seed": seed,
        "sac_config": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()
        },
        "command": command,
        "device": device_description(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **package_versions(("gymnasium", "mujoco", "jax"), suffix="_version"),
    }


def train_and_save(
    task: str,
    out: str | os.PathLike,
    seed: int = 0,
    max_steps: int = 500_000,
    config: sac.SACConfig | None = None,
    time_limit: float | None = None,
    eval_every: int = 5_000,
    eval_episodes: int = 10,
    command: str | None = None,
) -> tuple[dict[str, Any], tuple[Path, Path]]:
    """Trains the behavior policy of ``task``, evaluates it over 20 episodes and saves it under ``out``."""
    env_id, target = task_env(task)
    start = time.perf_counter()
    # keep time for the final evaluation and the save inside the limit
    reserve = None if time_limit is None else min(60.0, max(10.0, 0.1 * time_limit))

    def log(line: str) -> None:
        print(f"[{task}] {line}", flush=True)

    result = sac.train_behavior(
        env_id,
        target,
        max_steps=max_steps,
        seed=seed,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        config=config,
        time_limit=None if time_limit is None else time_limit - reserve,
        log=log,
    )
    log(
        f"{'reached' if result.reached_target else 'did NOT reach'} {target:g} after {result.steps} steps "
        f"({result.seconds:.0f}s); final evaluation over {FINAL_EVAL_EPISODES} episodes"
    )
    returns = sac.evaluate_policy(
        result.config, result.actor_params, env_id, FINAL_EVAL_EPISODES, FINAL_EVAL_SEED
    )
    card = make_card(task, result, returns, seed, target, command or f"{train_command(task)} --seed {seed}")
    npz_path, _ = policy_paths(out, task)
    paths = save_policy(npz_path, result.actor_params, card)
    log(
        f"saved {paths[0]} and {paths[1].name}: return {returns.mean():.1f} ± {returns.std():.1f} over "
        f"{FINAL_EVAL_EPISODES} episodes, reached_target={result.reached_target}, "
        f"{time.perf_counter() - start:.0f}s in all"
    )
    return card, paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m brackit.protocol.behavior", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="Train a task's behavior policy with SAC and save it.")
    train.add_argument("--task", required=True, choices=sorted(TASKS))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, default=Path("brackit") / SHIPPED)
    train.add_argument("--max-steps", type=int, default=500_000, help="environment steps at most")
    train.add_argument("--num-envs", type=int, default=4, help="environments stepped together")
    train.add_argument(
        "--updates-per-step", type=int, default=None, help="updates per vector step (default: --num-envs)"
    )
    train.add_argument("--vector", choices=sac.VECTOR_MODES, default="sync", help="gymnasium vector env mode")
    train.add_argument("--time-limit", type=float, default=None, help="seconds; then save the best so far")
    train.add_argument("--eval-every", type=int, default=5_000, help="environment steps between evaluations")
    train.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args(argv)
    # several training processes may share one GPU: take memory as needed instead of 75% up front
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    config = sac.SACConfig(
        num_envs=args.num_envs, updates_per_step=args.updates_per_step, vector_mode=args.vector
    )
    print(f"[{args.task}] training on {device_description()}", flush=True)
    card, _ = train_and_save(
        args.task,
        args.out,
        seed=args.seed,
        max_steps=args.max_steps,
        config=config,
        time_limit=args.time_limit,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        command=command_line("python -m brackit.protocol.behavior", argv),
    )
    return 0 if card["reached_target"] else 3


if __name__ == "__main__":
    raise SystemExit(main())
