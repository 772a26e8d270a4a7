"""Building offline datasets by the BRAC protocol (Wu et al. 2019, section 5): transitions collected in
segments (``brackit.protocol.collect``) from a SAC behavior policy (``brackit.protocol.behavior``) with a
mix of noise.

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

Determinism: the same (task, mix, size, seed, num_envs) gives the same sha256 on the same machine, with
or without worker processes (``brackit.protocol.collect``). With workers, call ``build`` from a script
guarded by ``if __name__ == "__main__":`` (the subprocesses are spawned, never forked);
``brackit data build`` starts ``default_workers(size)`` of them.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brackit.config_checks import COMMON_RANGES, check_option
from brackit.data.dataset import Episode, OfflineDataset, arrays_from_episodes, make_dataset
from brackit.errors import ConfigError, DatasetError
from brackit.protocol.behavior import TASKS, BehaviorPolicy, load_task_policy
from brackit.protocol.collect import EnvPool, Segment, collect_segment
from brackit.provenance import package_versions

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
    task, _, mix = name.partition("-")
    if task not in TASKS or mix not in MIXES:
        raise ConfigError(
            f"dataset name must be TASK-MIX with TASK in {sorted(TASKS)} and MIX in {list(MIXES)}"
        )
    return task, mix


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
    if mix not in MIXES:
        raise ConfigError(f"mix must be one of {list(MIXES)}, got {mix!r}")
    if env_id is None:
        if task not in TASKS:
            raise ConfigError(f"task must be one of {sorted(TASKS)}, got {task!r}")
        env_id = TASKS[task][0]
    check_option("size", size, ">= 1")
    check_option("seed", seed, COMMON_RANGES["seed"])
    check_option("num_envs", num_envs, ">= 1")
    check_option("workers", workers, ">= 0")
    segments = MIXES[mix]
    needs_policy = any(segment.kind != "random" for segment in segments)
    if needs_policy and policy is None:
        policy = load_task_policy(task, behavior_dir)
    if policy is not None and policy.card.get("env_id") != env_id:
        raise DatasetError(policy.path, "env_id", repr(env_id), repr(policy.card.get("env_id")))
    sizes = segment_sizes(size, segments)
    name = f"{task}-{mix}"
    command = command or build_command(name, size, seed, num_envs)
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
        "builder": "brackit.protocol.build",
        "task": task,
        "mix": mix,
        "seed": seed,
        "num_envs": num_envs,
        "segments": segment_cards,
        "behavior_policy": behavior_card,
        "command": command,
        "build_seconds": round(seconds, 1),
        **package_versions(("gymnasium", "mujoco"), suffix="_version"),
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
