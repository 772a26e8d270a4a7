"""Building offline datasets by the BRAC protocol (Wu et al. 2019, section 5): transitions collected in
segments from a SAC behavior policy (``brackit.behavior``) with a mix of noise.

Mixes (weights of the segments; sizes are exact, the last segment takes the rounding remainder):
- ``random``: 100% uniform-random actions;
- ``pure``: 100% draws of the stochastic behavior policy (not its mean);
- ``eps1`` / ``eps3``: 20% uniform, 40% policy, 40% epsilon-greedy policy (with probability 0.1 / 0.3 the
  whole action is replaced by a uniform-random one);
- ``gaussian1`` / ``gaussian3``: 20% uniform, 40% policy, 40% policy + N(0, 0.1 / 0.3) noise per action
  coordinate (in the environment's units), clipped to the action bounds.

Every segment starts from resets; an episode never straddles two segments: at a segment's end the
episodes in progress are cut (neither terminated nor truncated, ``next_action_valid`` False on their last
row). Terminations (discount 0) and time-limit truncations (discount 1, ``timeout``) are kept apart.

Determinism: the environments' reset seeds come from ``(seed, segment, env, episode)`` and the actions of
vector step t from ``fold_in(key(seed, segment), t)``, and the environments are stepped and recorded in a
fixed order, so the same (task, mix, size, seed, num_envs) gives the same sha256 on the same machine, with
or without worker processes.

Speed: one batched policy call per vector step over ``num_envs`` environments; with ``workers`` > 0 the
environments are split into ``workers + 1`` groups, one stepped by this process and the others by
subprocesses at the same time. On 2 idle cores, 64 environments with one worker build 1M Hopper transitions
in about 3.7 minutes against 5.9 with 16 environments and none (benchmarks/results/dataset_build.md); when
other jobs keep both cores busy, the pipes cost more than the second core gives back. With workers, call
``build`` from a script guarded by ``if __name__ == "__main__":`` (the subprocesses are spawned, never
forked); ``brackit data build`` starts ``default_workers(size)`` of them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import multiprocessing
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.data.dataset import Episode, OfflineDataset, arrays_from_episodes, make_dataset
from brackit.errors import ConfigError, DatasetError
from brackit.nets import scale_action

if TYPE_CHECKING:  # brackit.behavior imports the algorithms: loaded only when a build runs
    from brackit.behavior import BehaviorPolicy

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


MIXES: dict[str, tuple[Segment, ...]] = {
    "random": (Segment("random", "random", 1.0),),
    "pure": (Segment("policy", "policy", 1.0),),
    **{
        f"eps{digit}": (
            Segment("random", "random", 0.2),
            Segment("policy", "policy", 0.4),
            Segment(f"eps{noise:g}", "epsilon", 0.4, noise),
        )
        for digit, noise in (("1", 0.1), ("3", 0.3))
    },
    **{
        f"gaussian{digit}": (
            Segment("random", "random", 0.2),
            Segment("policy", "policy", 0.4),
            Segment(f"gaussian{noise:g}", "gaussian", 0.4, noise),
        )
        for digit, noise in (("1", 0.1), ("3", 0.3))
    },
}


def segment_sizes(size: int, segments: tuple[Segment, ...]) -> list[int]:
    """Exact sizes summing to ``size``: floor(weight * size) each, the last takes the remainder."""
    sizes = [int(np.floor(segment.weight * size)) for segment in segments[:-1]]
    return [*sizes, size - sum(sizes)]


def parse_name(name: str) -> tuple[str, str]:
    """'hopper-eps1' -> ('hopper', 'eps1'), validated."""
    from brackit.behavior import TASKS

    task, _, mix = name.partition("-")
    if task not in TASKS or mix not in MIXES:
        raise ConfigError(
            f"dataset name must be TASK-MIX with TASK in {sorted(TASKS)} and MIX in {list(MIXES)}"
        )
    return task, mix


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
    from brackit.algos import sac

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


def random_behavior_policy(
    env_id: str, seed: int = 0, hidden: tuple[int, ...] = (200, 200)
) -> BehaviorPolicy:
    """A randomly initialised actor of the behavior policy's size (benchmarks and tests, not a real one)."""
    from brackit.algos import sac
    from brackit.behavior import BehaviorPolicy
    from brackit.data.dataset import env_spaces

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


def _card_sha256(policy: BehaviorPolicy) -> str | None:
    card_file = policy.path.with_name(policy.path.name.removesuffix(".npz") + ".card.json")
    return hashlib.sha256(card_file.read_bytes()).hexdigest() if card_file.exists() else None


def build_command(name: str, size: int, seed: int, num_envs: int, *extra: str) -> str:
    """The ``brackit data build`` command line that makes this dataset (recorded in its card)."""
    args = ["brackit", "data", "build", name, "--size", str(size), "--seed", str(seed)]
    return shlex.join([*args, "--num-envs", str(num_envs), *extra])


def default_num_envs(size: int) -> int:
    """Environments stepped together by default: 16, growing to 64 from 240k transitions (more envs per
    policy call amortise its cost; small builds keep 16 so that episodes are rarely cut at segment ends)."""
    return int(min(64, max(16, size // 15_000)))


def default_workers(size: int) -> int:
    """Worker subprocesses by default: one from 240k transitions (it pays for its start-up), else none."""
    return 1 if size >= 240_000 else 0


def build(
    task: str,
    mix: str,
    size: int = 1_000_000,
    seed: int = 0,
    *,
    policy: BehaviorPolicy | None = None,
    behavior_dir: str | Path | None = None,
    env_id: str | None = None,
    num_envs: int | None = None,
    workers: int = 0,
    progress: bool = True,
    command: str | None = None,
) -> OfflineDataset:
    """Builds ``size`` transitions of ``task`` (ant, halfcheetah, hopper, walker2d) with ``mix`` (see
    ``MIXES``).

    ``policy`` defaults to the shipped behavior policy of ``task`` (package data:
    ``brackit/protocol_data/behavior/<task>.npz``; or ``behavior_dir``'s); a mix that needs it raises
    ``DatasetError`` naming the missing file and the command that trains it. ``env_id`` overrides the task's environment (tests). ``num_envs`` environments are
    stepped together (it changes the data: it is part of the recipe, recorded in the card); ``workers``
    subprocesses step them (it does not change the data). ``num_envs`` None: ``default_num_envs(size)``
    (16 up to 240k transitions, up to 64 beyond). ``brackit data build`` also starts
    ``default_workers(size)`` workers (one from 240k); from Python, pass ``workers`` yourself, from a
    script guarded by ``if __name__ == "__main__":``.
    """
    num_envs = default_num_envs(size) if num_envs is None else num_envs
    from brackit.behavior import TASKS, load_task_policy

    if mix not in MIXES:
        raise ConfigError(f"mix must be one of {list(MIXES)}, got {mix!r}")
    if env_id is None:
        if task not in TASKS:
            raise ConfigError(f"task must be one of {sorted(TASKS)}, got {task!r}")
        env_id = TASKS[task][0]
    if size < 1 or num_envs < 1 or workers < 0:
        raise ConfigError("size and num_envs must be >= 1 and workers >= 0")
    segments = MIXES[mix]
    needs_policy = any(segment.kind != "random" for segment in segments)
    if needs_policy and policy is None:
        policy = load_task_policy(task, behavior_dir)
    if policy is not None and policy.card.get("env_id") != env_id:
        raise DatasetError(policy.path, "env_id", repr(env_id), repr(policy.card.get("env_id")))
    sizes = segment_sizes(size, segments)
    name = f"{task}-{mix}"
    command = command or build_command(name, size, seed, num_envs)
    import gymnasium as gym
    import mujoco

    from brackit import envs as brackit_envs

    probe = brackit_envs.make(env_id)
    low = np.asarray(probe.action_space.low, np.float32)
    high = np.asarray(probe.action_space.high, np.float32)
    probe.close()
    pool = EnvPool(env_id, num_envs, workers)
    all_episodes: list[Episode] = []
    segment_cards = []
    start = time.perf_counter()
    try:
        with _progress_bar(progress, size, f"{task}-{mix}") as advance:
            for index, (segment, segment_size) in enumerate(zip(segments, sizes, strict=True)):
                episodes, cut = collect_segment(
                    pool,
                    policy if segment.kind != "random" else None,
                    segment,
                    segment_size,
                    seed,
                    index,
                    low,
                    high,
                    advance,
                )
                complete = [float(e.rewards.sum()) for e in episodes[: len(episodes) - cut]]
                segment_cards.append(
                    {
                        "name": segment.name,
                        "kind": segment.kind,
                        "noise": segment.noise,
                        "size": segment_size,
                        "episodes": len(episodes),
                        "complete_episodes": len(complete),
                        "mean_episode_return": float(np.mean(complete)) if complete else None,
                        "mean_cut_episode_return": (
                            float(np.mean([e.rewards.sum() for e in episodes[len(complete) :]]))
                            if cut
                            else None
                        ),
                    }
                )
                all_episodes.extend(episodes)
    finally:
        pool.close()
    seconds = time.perf_counter() - start
    behavior_card: dict[str, Any] | None = None
    if policy is not None:
        behavior_card = {
            "file": policy.path.name,
            "params_sha256": policy.card.get("params_sha256"),
            "card_sha256": _card_sha256(policy),
            "random_init": bool(policy.card.get("random_init", False)),
            "eval_return_mean": policy.card.get("eval_return_mean"),
            "reached_target": policy.card.get("reached_target"),
        }
    extra = {
        "builder": "brackit.data.build",
        "task": task,
        "mix": mix,
        "seed": seed,
        "num_envs": num_envs,
        "segments": segment_cards,
        "behavior_policy": behavior_card,
        "command": command,
        "build_seconds": round(seconds, 1),
        "gymnasium_version": gym.__version__,
        "mujoco_version": mujoco.__version__,
    }
    behavior = (
        None
        if policy is None
        else f"SAC {policy.card.get('task', env_id)} policy (params sha256 {str(policy.card.get('params_sha256'))[:12]})"
    )
    arrays = arrays_from_episodes(all_episodes, f"<build {task}-{mix}>")
    return make_dataset(
        arrays,
        path=f"<build {task}-{mix}>",
        source_format="brackit-build",
        env_id=env_id,
        behavior=behavior,
        extra=extra,
    )


class _progress_bar:
    """A rich progress bar with ETA and transitions/s; yields ``advance(n)`` (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} transitions/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.progress.__enter__()
        self.task = self.progress.add_task(self.label, total=self.total, rate="-")
        self.start = time.perf_counter()
        self.done = 0

        def advance(n: int) -> None:
            self.done += n
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            self.progress.update(self.task, advance=n, rate=f"{rate:,.0f}")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)
