"""Training runs in a log directory (``brackit.rundir.RunDir``: run.json, metrics.jsonl, checkpoint.npz and
the outputs of ``brackit.loggers``), resumable after a kill.

A logdir that holds a different run is refused unless ``overwrite=True`` replaces it; so is one in use by
another process, and one holding a checkpoint but no run.json. ``resume=True`` continues from the
checkpoint; because every bit of randomness lives in the checkpointed state, the result is bit-identical to
an uninterrupted run. A checkpoint records the hash of its run's spec (``RunSpec.identity_sha256``), and a
resume refuses one of another run (copied in). Every argument is checked before the first write, so a
refused command leaves nothing behind (but the empty lock file in an existing logdir). Starting in a logdir
removes the temporaries of atomic writes that a kill interrupted (``RunDir.sweep_debris``). run.json also
records ``provenance`` (library versions, git commit), which the resume comparison ignores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from brackit import config as config_lib
from brackit.algos import get_algorithm
from brackit.checkpoint import load_obs_stats, load_states, read_record
from brackit.config_checks import check_option
from brackit.data import OfflineDataset, load_dataset
from brackit.errors import ConfigError
from brackit.loggers import RunLoggers, choose_loggers
from brackit.provenance import run_provenance
from brackit.rundir import RunDir, RunError, RunSpec
from brackit.scores import dataset_reference
from brackit.train import Progress, RunPlacement, TrainResult, initial_states, make_train, run_grid, train

# ----------------------------------------------------------------------------------------- --set parsing


def parse_overrides(algorithm: str, assignments: Sequence[str]) -> dict[str, Any]:
    """``["alpha=0.5", "critic_hidden=64,64", "behavior.hidden=32,32"]`` -> typed config overrides of the
    algorithm's config (``brackit.config.overrides_from_text``)."""
    return config_lib.overrides_from_text(get_algorithm(algorithm).config_cls, assignments, algorithm)


# ----------------------------------------------------------------------------------------- runs

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
    replaces the run files (``RunDir.FILES``) of a different run, or of this run instead of resuming it.
    ``devices`` shards the runs across devices (``brackit.train.train``). ``tensorboard`` writes event
    files under ``logdir/tensorboard/<run>/`` (None: when tensorboardX is installed; True requires it);
    ``loggers`` instead names the outputs written beside metrics.jsonl (``brackit.loggers.LOGGERS``).
    ``progress`` shows a progress bar (``brackit.train.train``; None: when standard error is a terminal).
    Every argument is checked before anything is written."""
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
    config = get_algorithm(algorithm).config_cls(**(overrides or {}))
    check_sweep(config, sweep)
    dataset = data if isinstance(data, OfflineDataset) else load_dataset(data, env_id=env_id)
    outputs = choose_loggers(loggers, tensorboard)
    spec = make_spec(
        algorithm,
        config,
        data=str(data) if not isinstance(data, OfflineDataset) else "<in memory>",
        dataset_sha256=dataset.card.sha256,
        env_id=env_id or dataset.card.env_id,
        seeds=seeds,
        sweep=sweep,
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
    rundir = RunDir(logdir)
    writer = jax.process_index() == 0  # across processes (jax.distributed) only process 0 writes files
    with contextlib.ExitStack() as stack:
        if writer:  # one process at a time writes a logdir; held until the run stops
            stack.enter_context(rundir.lock())
        return _run_in_logdir(
            spec,
            config,
            dataset,
            rundir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            overwrite=overwrite,
            writer=writer,
            outputs=outputs,
            train_options={"env_id": env_id, "logger": logger, "devices": devices, "progress": progress},
        )


def make_spec(
    algorithm: str,
    config: Any,
    *,
    data: str,
    dataset_sha256: str,
    env_id: str | None,
    seeds: Sequence[int],
    sweep: Mapping[str, Sequence[float]] | None,
    steps: int,
    chunk_steps: int,
    eval_every: int,
    eval_episodes: int,
    eval_mode: str | None = None,
    label: str = "",
    provenance: dict[str, Any] | None = None,
) -> RunSpec:
    """The spec ``run_training`` writes to run.json (and ``brackit.study`` expects to find there): with
    evaluation off (``eval_episodes`` 0) ``eval_every`` is 0; ``eval_mode`` None is the algorithm's rule."""
    return RunSpec(
        algorithm=algorithm,
        config=config_lib.to_dict(config),
        data=data,
        dataset_sha256=dataset_sha256,
        env_id=env_id,
        seeds=tuple(int(s) for s in seeds),
        sweep={k: [float(v) for v in values] for k, values in (sweep or {}).items()},
        steps=steps,
        chunk_steps=chunk_steps,
        eval_every=eval_every if eval_episodes > 0 else 0,
        eval_episodes=eval_episodes,
        eval_mode=eval_mode or get_algorithm(algorithm).eval_mode,
        label=label,
        provenance=provenance,
    )


REMEDY = "choose another --logdir, or pass --overwrite to replace it"
"""What ``run_training``'s refusals of a logdir's content say to do."""


def _run_in_logdir(
    spec: RunSpec,
    config: Any,
    dataset: OfflineDataset,
    rundir: RunDir,
    *,
    checkpoint_every: int,
    resume: bool,
    overwrite: bool,
    writer: bool,
    outputs: tuple[str, ...],
    train_options: dict[str, Any],
) -> TrainResult:
    """``run_training`` once the logdir ``rundir`` is locked: checks what it holds, then trains the run
    ``spec`` records (``brackit.train.train``, with ``train_options``)."""
    restored = None
    replace = False
    if rundir.has_spec():
        old = None if overwrite else rundir.read_spec(REMEDY)
        if old is not None:
            rundir.refuse_other_run(old, spec, REMEDY)
        replace = overwrite
        if rundir.has_checkpoint() and not overwrite:
            if not resume:
                raise RunError(
                    f"{rundir.path} already holds this run; pass --resume to continue it (or --overwrite to "
                    "start it again)"
                )
            restored = restore_progress(rundir, config, dataset, spec)
        if old is not None and old.provenance and old.provenance != spec.provenance:
            first = {k: v for k, v in old.provenance.items() if k != "resumed_with"}
            if first != spec.provenance:  # keep what started the run; note what continued it
                spec = dataclasses.replace(spec, provenance={**first, "resumed_with": spec.provenance})
    elif rundir.has_checkpoint():
        if not overwrite:
            raise RunError(
                f"{rundir.path} holds {rundir.CHECKPOINT} but no {rundir.SPEC}, so whose run it is cannot be "
                f"checked; move the checkpoint away, {REMEDY}"
            )
        replace = True
    if writer:
        rundir.sweep_debris()  # temporaries of writes a kill interrupted
        if replace:
            rundir.clear()
        rundir.write_spec(spec)
    runs = run_grid(spec.seeds, spec.sweep)
    history = restored.history if restored is not None else []
    logs = RunLoggers(
        outputs if writer else (),
        rundir.path,
        [run_name(run) for run in runs],
        history,
        config=json.loads(spec.to_json()),
        group=spec.label,
    )

    def on_chunk(progress: Progress) -> None:
        finished = progress.phase == "train" and progress.step == spec.steps
        due = checkpoint_every and progress.step % checkpoint_every == 0
        # Gathering the states is a collective across processes: every process takes part, one writes.
        states = progress.host_states() if finished or due else None
        if not writer:
            return
        rundir.write_metrics(progress.history)
        logs.write(progress.history[-1])
        if states is not None:
            metadata = {
                "dims": [dataset.card.obs_dim, dataset.card.action_dim],
                "score_reference": dataset_reference(dataset.card.extra),  # for `brackit eval`
            }
            rundir.save_checkpoint(spec, progress, states, metadata)

    with logs:
        return train(
            spec.algorithm,
            dataset,
            config,
            steps=spec.steps,
            seeds=spec.seeds,
            sweep=spec.sweep or None,
            chunk_steps=spec.chunk_steps,
            eval_every=spec.eval_every,
            eval_episodes=spec.eval_episodes,
            eval_mode=spec.eval_mode,
            on_chunk=on_chunk,
            resume=restored,
            **train_options,
        )


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


def template_states(spec: RunSpec, config: Any, obs_dim: int, action_dim: int) -> Any:
    """Fresh states with the run's structure (the skeleton a checkpoint is loaded into)."""
    fns = make_train(get_algorithm(spec.algorithm), config, obs_dim, action_dim, 1)
    return initial_states(fns, run_grid(spec.seeds, spec.sweep))


def restore_progress(rundir: RunDir, config: Any, dataset: OfflineDataset, spec: RunSpec) -> Progress:
    """The progress saved in the checkpoint of ``rundir``, whose run.json holds ``spec``; a checkpoint bound
    to another run is a RunError (``RunDir.checkpoint_record``)."""
    record = rundir.checkpoint_record(spec, "pass --overwrite to start this run afresh")
    path = rundir.checkpoint
    states = load_states(path, template_states(spec, config, dataset.card.obs_dim, dataset.card.action_dim))
    history = [{k: np.asarray(v) for k, v in entry.items()} for entry in record["history"]]
    for entry in history:
        entry["phase"], entry["step"] = str(entry["phase"]), int(entry["step"])
    return Progress(record["phase"], record["step"], states, history, obs_stats=load_obs_stats(path))


def load_run(checkpoint: str | Path) -> tuple[RunSpec, Any, Any]:
    """(spec, config, states) of a saved run, for evaluation."""
    checkpoint = Path(checkpoint)
    record = read_record(checkpoint)
    spec = RunSpec.from_dict(record["metadata"].get("run"), f"{checkpoint}: metadata 'run'")
    config = config_lib.from_dict(get_algorithm(spec.algorithm).config_cls, spec.config)
    return spec, config, load_states(checkpoint, template_states(spec, config, *_dims(record, checkpoint)))


def _dims(record: dict[str, Any], path: Path) -> tuple[int, int]:
    dims = record["metadata"].get("dims")
    if dims is None:
        raise RunError(f"{path}: checkpoint metadata lacks the obs/action dims")
    return int(dims[0]), int(dims[1])
