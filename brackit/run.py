"""Training runs in a log directory: config on disk, metrics as JSONL, checkpoints, resume after a kill.

    logdir/run.json          what the run is (algorithm, full config, dataset sha256, seeds, steps ...)
    logdir/metrics.jsonl     one line per chunk (rewritten atomically from the checkpointed history)
    logdir/checkpoint.npz    the latest checkpoint (every ``checkpoint_every`` steps and at the end)
    logdir/tensorboard/      event files per run (rewritten from the checkpointed history on every start)
    logdir/csv/, wandb/      the other outputs ``--log`` may choose (``brackit.loggers``)
    logdir/.lock             flock'ed while a process runs there (``brackit.files.DirectoryLock``)

A logdir that holds a different run is refused unless ``overwrite=True`` replaces it; so is one in use by
another process, and one holding a checkpoint but no run.json. ``resume=True`` continues from the
checkpoint; because every bit of randomness lives in the checkpointed state, the result is bit-identical to
an uninterrupted run. A checkpoint records the hash of its run's spec (``RunSpec.identity_sha256``), and a
resume refuses one of another run (copied in). Every argument is checked before the first write, so a
refused command leaves nothing behind (but the empty lock file in an existing logdir). Starting in a logdir
removes the temporaries of atomic writes that a kill interrupted (``brackit.files.AtomicDebris``). run.json
also records ``provenance`` (library versions, git commit), which the resume comparison ignores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from brackit import config as config_lib
from brackit.algos import get_algorithm
from brackit.checkpoint import (
    load_obs_stats,
    load_states,
    read_record,
    save_checkpoint,
)
from brackit.config_checks import check_option
from brackit.data import OfflineDataset, load_dataset
from brackit.errors import BrackitError, ConfigError
from brackit.files import AtomicDebris, DirectoryLock, atomic_write_text
from brackit.loggers import RunLoggers, choose_loggers
from brackit.provenance import run_provenance
from brackit.scores import dataset_reference
from brackit.train import Progress, RunPlacement, TrainResult, initial_states, make_train, run_grid, train


class RunError(BrackitError):
    """A log directory that cannot be used for this run."""


# ----------------------------------------------------------------------------------------- --set parsing


def parse_overrides(algorithm: str, assignments: Sequence[str]) -> dict[str, Any]:
    """``["alpha=0.5", "critic_hidden=64,64", "behavior.hidden=32,32"]`` -> typed config overrides of the
    algorithm's config (``brackit.config.overrides_from_text``)."""
    return config_lib.overrides_from_text(get_algorithm(algorithm).config_cls, assignments, algorithm)


# ----------------------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run; stored as logdir/run.json and compared on resume."""

    algorithm: str
    config: dict[str, Any]
    data: str
    dataset_sha256: str
    env_id: str | None
    seeds: tuple[int, ...]
    sweep: dict[str, list[float]]
    steps: int
    chunk_steps: int
    eval_every: int
    eval_episodes: int
    eval_mode: str
    label: str = ""
    """A free name for the run group (``study`` sets it; ``report`` groups and titles by it)."""
    provenance: dict[str, Any] | None = dataclasses.field(default=None, compare=False)
    """Library versions and git commit of the process that wrote run.json (``brackit.provenance.run_provenance``); not part of
    what the run is, so resuming under other versions is the same run. None in older run.json files."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def identity_sha256(self) -> str:
        """sha256 of what the run is: every field but ``NOT_IDENTITY`` (the fields a resume ignores). A
        checkpoint stores it (``run_sha256``), binding it to its run."""
        identity = {k: v for k, v in json.loads(self.to_json()).items() if k not in NOT_IDENTITY}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["seeds"] = tuple(data["seeds"])
        data.setdefault("label", "")
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> RunSpec:
        """``path`` (a run.json); an unreadable or malformed file is a one-line ``RunError`` naming it."""
        try:
            return cls.from_json(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise RunError(
                f"{path}: not a readable run.json ({type(error).__name__}: {error}); repair or delete it, "
                "pass --overwrite to start this run afresh there, or choose another --logdir"
            ) from error


NOT_IDENTITY = ("data", "provenance")
"""RunSpec fields that are not part of what the run is: the same content at another path, or under other
library versions, is the same run (``_differences``, ``RunSpec.identity_sha256``)."""
RUN_FILES = ("run.json", "metrics.jsonl", "checkpoint.npz", "tensorboard", "csv", "wandb")
"""What a run writes in its logdir (``overwrite=True`` removes exactly these)."""
MAX_CHUNK_STEPS = 1000
"""Cap of the default chunk length: a chunk's metrics for every update stay on the device until it ends."""


def default_logdir(algorithm: str, data: str | Path, now: datetime.datetime | None = None) -> Path:
    """``runs/<algorithm>-<dataset name>-<UTC YYYYmmdd-HHMMSS>``: the dataset name is a TASK-MIX name or
    the file's (directory's) stem."""
    now = now or datetime.datetime.now(datetime.UTC)
    name = Path(str(data).rstrip("/")).stem or "data"
    return Path("runs") / f"{algorithm}-{name}-{now.strftime('%Y%m%d-%H%M%S')}"


def default_chunk_steps(
    steps: int, eval_every: int = 0, checkpoint_every: int = 0, cap: int = MAX_CHUNK_STEPS
) -> int:
    """The largest chunk length <= ``cap`` that divides ``steps`` and the nonzero intervals."""
    common = math.gcd(steps, eval_every, checkpoint_every)
    return max(d for d in range(1, min(common, cap) + 1) if common % d == 0)


def check_run_arguments(
    *,
    steps: int,
    seeds: Sequence[int],
    chunk_steps: int | None,
    eval_every: int,
    eval_episodes: int,
    checkpoint_every: int,
) -> int:
    """Checks the schedule of a run (names as the ``brackit train`` options); returns the chunk length:
    ``chunk_steps`` (at most ``steps``) or, for None, ``default_chunk_steps``."""
    check_option("--steps", steps, ">= 1")
    for name, value in (
        ("--eval-every", eval_every),
        ("--eval-episodes", eval_episodes),
        ("--checkpoint-every", checkpoint_every),
    ):
        check_option(name, value, ">= 0")
    for name, value in (("--eval-every", eval_every), ("--checkpoint-every", checkpoint_every)):
        if value > steps:
            raise ConfigError(
                f"{name} {value} is more than --steps {steps}: it would act only at the end; pass at most "
                f"{steps}, or 0 (the end only)"
            )
    if len(seeds) == 0:
        raise ConfigError("--seeds must be at least 1")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {list(seeds)}")
    fitting = default_chunk_steps(steps, eval_every, checkpoint_every)
    if chunk_steps is None:
        return fitting
    if chunk_steps < 1:
        raise ConfigError(f"--chunk-steps must be a positive integer, got {chunk_steps}")
    chunk = min(chunk_steps, steps)
    intervals = (("--steps", steps), ("--eval-every", eval_every), ("--checkpoint-every", checkpoint_every))
    bad = [f"{name} {value}" for name, value in intervals if value % chunk]
    if bad:
        raise ConfigError(
            f"--chunk-steps {chunk_steps} must divide {' and '.join(bad)}; --chunk-steps {fitting} would "
            "work (leave the option out to get it)"
        )
    return chunk


def _differences(old: RunSpec, new: RunSpec) -> list[str]:
    a, b = json.loads(old.to_json()), json.loads(new.to_json())
    out = []
    for key in sorted(set(a) | set(b)):
        if key in NOT_IDENTITY:
            continue  # the same content at another path (or under other library versions) is the same run
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                out += [
                    f"{key}.{k}: {a[key].get(k)!r} != {b[key].get(k)!r}"
                    for k in sorted(set(a[key]) | set(b[key]))
                    if a[key].get(k) != b[key].get(k)
                ]
            else:
                out.append(f"{key}: {a.get(key)!r} != {b.get(key)!r}")
    return out


def run_training(
    algorithm: str,
    data: str | Path | OfflineDataset,
    *,
    logdir: str | Path,
    steps: int,
    seeds: Sequence[int] = (0,),
    overrides: dict[str, Any] | None = None,
    sweep: dict[str, Sequence[float]] | None = None,
    chunk_steps: int | None = None,
    eval_every: int = 0,
    eval_episodes: int = 10,
    eval_mode: str | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    env_id: str | None = None,
    logger: Callable[[dict[str, Any]], None] | None = None,
    label: str = "",
    devices: int | str | Sequence[Any] | None = None,
    tensorboard: bool | None = None,
    loggers: Sequence[str] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Runs (or resumes) a training run in ``logdir``; see the module docstring.

    ``chunk_steps`` None: the largest length up to ``MAX_CHUNK_STEPS`` that divides ``steps``,
    ``eval_every`` and ``checkpoint_every``. ``eval_episodes`` 0 turns evaluation off. ``overwrite``
    replaces the run files (``RUN_FILES``) of a different run, or of this run instead of resuming it.
    ``devices`` shards the runs across devices (``brackit.train.train``). ``tensorboard`` writes event
    files under ``logdir/tensorboard/<run>/`` (None: when tensorboardX is installed; True requires it);
    ``loggers`` instead names the outputs written beside metrics.jsonl (``brackit.loggers.LOGGERS``).
    ``progress`` shows a progress bar (``brackit.train.train``; None: when standard error is a terminal).
    Every argument is checked before anything is written."""
    logdir = Path(logdir)
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the logdir and --overwrite replaces it: pass one")
    chunk_steps = check_run_arguments(
        steps=steps,
        seeds=tuple(int(s) for s in seeds),
        chunk_steps=chunk_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        checkpoint_every=checkpoint_every,
    )
    eval_every = eval_every if eval_episodes > 0 else 0
    algo = get_algorithm(algorithm)
    eval_mode = eval_mode or algo.eval_mode  # run.json records the rule used
    config = algo.config_cls(**(overrides or {}))
    check_sweep(config, sweep)
    dataset = data if isinstance(data, OfflineDataset) else load_dataset(data, env_id=env_id)
    outputs = choose_loggers(loggers, tensorboard)
    spec = RunSpec(
        algorithm=algorithm,
        config=config_lib.to_dict(config),
        data=str(data) if not isinstance(data, OfflineDataset) else "<in memory>",
        dataset_sha256=dataset.card.sha256,
        env_id=env_id or dataset.card.env_id,
        seeds=tuple(int(s) for s in seeds),
        sweep={k: [float(v) for v in values] for k, values in (sweep or {}).items()},
        steps=steps,
        chunk_steps=chunk_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        eval_mode=eval_mode,
        label=label,
        provenance=run_provenance(),
    )
    RunPlacement.create(
        devices, len(run_grid(spec.seeds, spec.sweep))
    )  # a bad request fails before any write
    writer = jax.process_index() == 0  # across processes (jax.distributed) only process 0 writes files
    with contextlib.ExitStack() as stack:
        if writer:  # one process at a time writes a logdir; held until the run stops
            stack.enter_context(DirectoryLock(logdir))
        return _run_in_logdir(
            spec,
            config,
            dataset,
            logdir=logdir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            overwrite=overwrite,
            writer=writer,
            outputs=outputs,
            train_kwargs={
                "steps": steps,
                "seeds": seeds,
                "sweep": sweep,
                "chunk_steps": chunk_steps,
                "eval_every": eval_every,
                "eval_episodes": eval_episodes,
                "eval_mode": eval_mode,
                "env_id": env_id,
                "logger": logger,
                "devices": devices,
                "progress": progress,
            },
        )


def _run_in_logdir(
    spec: RunSpec,
    config: Any,
    dataset: OfflineDataset,
    *,
    logdir: Path,
    checkpoint_every: int,
    resume: bool,
    overwrite: bool,
    writer: bool,
    outputs: tuple[str, ...],
    train_kwargs: dict[str, Any],
) -> TrainResult:
    """``run_training`` once the logdir is locked: checks what the logdir holds, then trains."""
    spec_path, checkpoint_path = logdir / "run.json", logdir / "checkpoint.npz"
    restored = None
    replace = False
    if spec_path.exists():
        old = None if overwrite else RunSpec.read(spec_path)
        differences = [] if old is None else _differences(old, spec)
        if differences:
            raise RunError(
                f"{logdir} holds a different run ({'; '.join(differences[:3])}); choose another --logdir, "
                "or pass --overwrite to replace it"
            )
        replace = overwrite
        if checkpoint_path.exists() and not overwrite:
            if not resume:
                raise RunError(
                    f"{logdir} already holds this run; pass --resume to continue it (or --overwrite to "
                    "start it again)"
                )
            restored = restore_progress(checkpoint_path, config, dataset, spec)
        if old is not None and old.provenance and old.provenance != spec.provenance:
            first = {k: v for k, v in old.provenance.items() if k != "resumed_with"}
            if first != spec.provenance:  # keep what started the run; note what continued it
                spec = dataclasses.replace(spec, provenance={**first, "resumed_with": spec.provenance})
    elif checkpoint_path.exists():
        if not overwrite:
            raise RunError(
                f"{logdir} holds {checkpoint_path.name} but no run.json, so whose run it is cannot be "
                "checked; move the checkpoint away, choose another --logdir, or pass --overwrite to replace it"
            )
        replace = True
    steps = train_kwargs["steps"]
    if writer:
        AtomicDebris.sweep(logdir, RUN_FILES)  # temporaries of writes a kill interrupted
        if replace:
            for name in RUN_FILES:
                path = logdir / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
        logdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(spec_path, spec.to_json() + "\n")
    runs = run_grid(spec.seeds, spec.sweep)
    history = restored.history if restored is not None else []
    logs = RunLoggers(
        outputs if writer else (),
        logdir,
        [run_name(run) for run in runs],
        history,
        config=json.loads(spec.to_json()),
        group=spec.label,
    )

    def on_chunk(progress: Progress) -> None:
        finished = progress.phase == "train" and progress.step == steps
        due = checkpoint_every and progress.step % checkpoint_every == 0
        # Gathering the states is a collective across processes: every process takes part, one writes.
        states = progress.host_states() if finished or due else None
        if not writer:
            return
        atomic_write_text(logdir / "metrics.jsonl", "".join(_jsonl(entry) for entry in progress.history))
        logs.write(progress.history[-1])
        if states is not None:
            save_checkpoint(
                checkpoint_path,
                states,
                phase=progress.phase,
                step=progress.step,
                history=progress.history,
                metadata={
                    "run": json.loads(spec.to_json()),
                    "dims": [dataset.card.obs_dim, dataset.card.action_dim],
                    "score_reference": dataset_reference(dataset.card.extra),  # for `brackit eval`
                },
                obs_stats=progress.obs_stats,
                run_sha256=spec.identity_sha256(),
            )

    with logs:
        return train(spec.algorithm, dataset, config, on_chunk=on_chunk, resume=restored, **train_kwargs)


def run_name(run: dict[str, Any]) -> str:
    """``{"seed": 0, "alpha": 0.1}`` -> ``alpha0.1-seed0`` (sweep values first, then the seed)."""
    parts = [
        f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in sorted(run.items()) if k != "seed"
    ]
    return "-".join([*parts, f"seed{run['seed']}"])


def check_sweep(config: Any, sweep: dict[str, Sequence[float]] | None) -> None:
    """Every sweep value must be a valid value of its config field (its declared range, ``check_ranges``):
    the config is rebuilt with each value in turn."""
    fields = config_lib.fields(type(config))
    for name, values in (sweep or {}).items():
        if name in fields:
            for value in values:
                dataclasses.replace(config, **{name: value})


def _jsonl(entry: dict[str, Any]) -> str:
    return json.dumps({k: np.asarray(v).tolist() for k, v in entry.items()}) + "\n"


def template_states(spec: RunSpec, config: Any, obs_dim: int, action_dim: int) -> Any:
    """Fresh states with the run's structure (the skeleton a checkpoint is loaded into)."""
    fns = make_train(get_algorithm(spec.algorithm), config, obs_dim, action_dim, 1)
    return initial_states(fns, run_grid(spec.seeds, spec.sweep))


def restore_progress(path: Path, config: Any, dataset: OfflineDataset, spec: RunSpec) -> Progress:
    """The progress saved in checkpoint ``path`` of the run ``spec`` (that of ``path``'s run.json); a
    checkpoint bound to another run (``run_sha256``) is a RunError. Older checkpoints carry no binding."""
    record = read_record(path)
    bound, expected = record.get("run_sha256"), spec.identity_sha256()
    if bound is not None and bound != expected:
        raise RunError(
            f"{path} belongs to another run than {path.parent / 'run.json'} (run hash {bound[:12]}, expected "
            f"{expected[:12]}); was it copied in from another logdir? Move it away, or pass --overwrite to "
            "start this run afresh"
        )
    states = load_states(path, template_states(spec, config, dataset.card.obs_dim, dataset.card.action_dim))
    history = [{k: np.asarray(v) for k, v in entry.items()} for entry in record["history"]]
    for entry in history:
        entry["phase"], entry["step"] = str(entry["phase"]), int(entry["step"])
    return Progress(record["phase"], record["step"], states, history, obs_stats=load_obs_stats(path))


def load_run(checkpoint: str | Path) -> tuple[RunSpec, Any, Any]:
    """(spec, config, states) of a saved run, for evaluation."""
    checkpoint = Path(checkpoint)
    record = read_record(checkpoint)
    spec = RunSpec.from_json(json.dumps(record["metadata"]["run"]))
    config = config_lib.from_dict(get_algorithm(spec.algorithm).config_cls, spec.config)
    return spec, config, load_states(checkpoint, template_states(spec, config, *_dims(record, checkpoint)))


def _dims(record: dict[str, Any], path: Path) -> tuple[int, int]:
    dims = record["metadata"].get("dims")
    if dims is None:
        raise RunError(f"{path}: checkpoint metadata lacks the obs/action dims")
    return int(dims[0]), int(dims[1])
