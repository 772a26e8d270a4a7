"""Outputs that a run writes beside metrics.jsonl, chosen by name (``brackit train --log csv,wandb``).

metrics.jsonl (``brackit.run``) is the record and is always written; these outputs are views of it:

    logdir/tensorboard/<run>/   tensorboardX event files (extra ``brackit[tensorboard]``)
    logdir/csv/<run>.csv        one row per metrics.jsonl entry (no extra)
    wandb                       one Weights & Biases run per brackit run (extra ``brackit[wandb]``), under
                                ``$WANDB_DIR/wandb/`` if set, else ``logdir/wandb/``

A run is one seed (and sweep value) of the logdir's vmapped program; ``brackit.run.run_name`` names it
(``seed0``, ``alpha0.1-seed0``). Its value of a metric is element i of the metric's array when the array has
one element per run, else the first element (``run_scalars``); entries that are not numbers are skipped.

Each output is opened with the history the run starts from (the checkpoint's on a resume, none on a fresh
start) and rebuilt from it, as metrics.jsonl is: after a kill and ``--resume``, each step appears once in
the event files and the CSV files. A W&B run cannot drop the steps logged after the checkpoint, so a resume
starts new W&B runs (same group and names) that replay the history; the stopped ones stay (W&B shows them
failed or crashed).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import os
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from brackit.errors import ConfigError
from brackit.files import AtomicDebris, atomic_path

LOGGERS = ("csv", "tensorboard", "wandb")
"""The outputs ``--log`` can name."""
EXTRAS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}
"""Output -> (the module it imports, the brackit extra that installs it)."""


def parse_loggers(text: str) -> tuple[str, ...]:
    """``"csv,wandb"`` -> ``("csv", "wandb")`` (duplicates dropped); an unknown or missing name is a
    ConfigError listing the valid ones."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [name for name in names if name not in LOGGERS]
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        raise ConfigError(
            f"--log {text!r}: unknown output {shown}; valid: {', '.join(LOGGERS)} (comma-separated)"
        )
    return names


def choose_loggers(names: Sequence[str] | None, tensorboard: bool | None = None) -> tuple[str, ...]:
    """The outputs a run writes beside metrics.jsonl, checked before anything is written.

    ``names`` None keeps the default choice of ``tensorboard``: True requires tensorboardX, False writes
    none, None writes TensorBoard events when tensorboardX is installed. Otherwise exactly ``names`` are
    written (``tensorboard`` must then be None). A named output whose package is missing is a ConfigError
    naming the extra to install."""
    if names is None:
        if tensorboard is None:
            return ("tensorboard",) if _installed("tensorboard") else ()
        names = ("tensorboard",) if tensorboard else ()
    elif tensorboard is not None:
        raise ConfigError(
            "--log and --tensorboard/--no-tensorboard both choose the outputs: pass one (e.g. --log csv,tensorboard)"
        )
    chosen = parse_loggers(",".join(names)) if names else ()
    for name in chosen:
        if not _installed(name):
            module, extra = EXTRAS[name]
            raise ConfigError(f"--log {name} needs {module}: pip install 'brackit[{extra}]'")
    return chosen


def _installed(name: str) -> bool:
    return name not in EXTRAS or importlib.util.find_spec(EXTRAS[name][0]) is not None


def run_scalars(entry: dict[str, Any], index: int, runs: int) -> dict[str, float]:
    """Run ``index``'s value (of ``runs``) of each numeric metric in a metrics entry, but phase and step."""
    out = {}
    for name, value in entry.items():
        array = np.asarray(value)
        if name in ("phase", "step") or array.dtype.kind not in "fiu":
            continue
        out[name] = float(array.reshape(-1)[index] if array.size == runs else array.reshape(-1)[0])
    return out


class RunLogger(Protocol):
    """One output: opened with the history so far, then given each new metrics entry."""

    def write(self, entry: dict[str, Any]) -> None: ...

    def close(self, failed: bool = False) -> None: ...


class RunLoggers:
    """The chosen outputs of a logdir's runs as one context manager: ``write(entry)`` passes a new metrics
    entry to each; leaving the context closes them (a W&B run is marked failed when an exception leaves)."""

    def __init__(
        self,
        names: Sequence[str],
        logdir: Path,
        runs: Sequence[str],
        history: Sequence[dict[str, Any]] = (),
        *,
        config: dict[str, Any] | None = None,
        group: str = "",
    ) -> None:
        """``runs``: the run names (``brackit.run.run_name``); ``config`` (the run's spec) and ``group``
        (default: the logdir's name) label the W&B runs."""
        self.loggers: list[RunLogger] = []
        try:
            for name in names:
                if name == "tensorboard":
                    self.loggers.append(TensorBoard(logdir, runs, history))
                elif name == "csv":
                    self.loggers.append(CsvLog(logdir, runs, history))
                elif name == "wandb":
                    self.loggers.append(WandbLog(logdir, runs, history, config or {}, group or logdir.name))
                else:
                    raise ConfigError(f"unknown output {name!r}; valid: {', '.join(LOGGERS)}")
        except BaseException:
            self.close(failed=True)
            raise

    def write(self, entry: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.write(entry)

    def close(self, failed: bool = False) -> None:
        loggers, self.loggers = self.loggers, []
        for logger in loggers:
            with contextlib.suppress(Exception):  # one output's failure to close leaves the others closed
                logger.close(failed)

    def __enter__(self) -> RunLoggers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: types.TracebackType | None
    ) -> None:
        self.close(failed=kind is not None)


class TensorBoard:
    """One tensorboardX writer per run (``logdir/tensorboard/seed0``, ``.../alpha0.1-seed0``); metrics of a
    phase other than 'train' are tagged ``<phase>/<name>``.

    Opening it replaces each run's event files by the ``history`` a run starts from (its checkpoint's; none
    for a fresh start), as metrics.jsonl is rewritten from it: after a kill, the events written past the
    checkpoint would otherwise appear twice once the resumed run writes those steps again."""

    EVENTS = "events.out.tfevents.*"

    def __init__(self, logdir: Path, runs: Sequence[str], history: Sequence[dict[str, Any]] = ()) -> None:
        from tensorboardX import SummaryWriter

        directories = [logdir / "tensorboard" / run for run in runs]
        for directory in directories:
            for stale in directory.glob(self.EVENTS):
                stale.unlink()
        self.writers = [SummaryWriter(str(directory)) for directory in directories]
        for entry in history:
            self.write(entry)

    def write(self, entry: dict[str, Any]) -> None:
        prefix = "" if entry["phase"] == "train" else f"{entry['phase']}/"
        for index, writer in enumerate(self.writers):
            for name, value in run_scalars(entry, index, len(self.writers)).items():
                writer.add_scalar(prefix + name, value, int(entry["step"]))
            writer.flush()

    def close(self, failed: bool = False) -> None:
        for writer in self.writers:
            writer.close()


class CsvLog:
    """``logdir/csv/<run>.csv`` per run, one row per metrics entry: columns ``phase``, ``step``, then each
    metric in the order it first appears. A row without some metric (evaluations come every ``eval_every``
    steps; a pretraining phase has its own losses) leaves its cell empty; values are Python floats, written
    by ``repr`` so they read back exactly.

    The header holds the columns known so far; a row is appended under it. A row that brings a new metric
    widens the header at its end, and the file is rewritten atomically (existing columns never move).
    Opening rewrites each file from ``history``, so a resumed run holds each step once."""

    DIRECTORY = "csv"
    FIXED = ("phase", "step")

    def __init__(self, logdir: Path, runs: Sequence[str], history: Sequence[dict[str, Any]] = ()) -> None:
        directory = logdir / self.DIRECTORY
        self.paths = [directory / f"{run}.csv" for run in runs]
        AtomicDebris.sweep(directory, [path.name for path in self.paths])  # a killed rewrite's temporaries
        self.columns: list[str] = list(self.FIXED)
        self.rows: list[list[dict[str, Any]]] = [[] for _ in runs]
        for entry in history:
            self._add(entry)
        self._rewrite()

    def _add(self, entry: dict[str, Any]) -> bool:
        """Adds the entry's row to each run; True if it brought new columns."""
        known = len(self.columns)
        for index, rows in enumerate(self.rows):
            row = {"phase": str(entry["phase"]), "step": int(entry["step"])}
            row.update(run_scalars(entry, index, len(self.rows)))
            self.columns += [name for name in row if name not in self.columns]
            rows.append(row)
        return len(self.columns) > known

    def write(self, entry: dict[str, Any]) -> None:
        if self._add(entry):
            self._rewrite()
            return
        for path, rows in zip(self.paths, self.rows, strict=True):
            with open(path, "a", newline="") as handle:
                csv.DictWriter(handle, self.columns, restval="", lineterminator="\n").writerow(rows[-1])

    def _rewrite(self) -> None:
        for path, rows in zip(self.paths, self.rows, strict=True):
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, self.columns, restval="", lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)

    def close(self, failed: bool = False) -> None:
        pass  # every write is complete when it returns


class WandbLog:
    """One W&B run per brackit run: named ``<group>/<run>``, grouped by ``group``, its config the run's
    spec plus the run's name. Each metrics entry is one W&B history row holding ``step`` and the metrics;
    a phase other than 'train' prefixes both with ``<phase>/`` (pretraining counts its own steps), and its
    metrics are plotted against its own step. wandb's own settings (``WANDB_MODE=offline``,
    ``WANDB_PROJECT``, default 'brackit', ``WANDB_DIR``, default the logdir) apply."""

    def __init__(
        self,
        logdir: Path,
        runs: Sequence[str],
        history: Sequence[dict[str, Any]],
        config: dict[str, Any],
        group: str,
    ) -> None:
        import wandb

        self.runs: list[Any] = []
        directory = os.environ.get("WANDB_DIR") or str(logdir)  # wandb's ``dir`` would override WANDB_DIR
        try:
            for run in runs:
                handle = wandb.init(
                    project=os.environ.get("WANDB_PROJECT") or "brackit",
                    group=group,
                    name=f"{group}/{run}",
                    job_type="train",
                    config={**config, "run": run},
                    dir=directory,
                    reinit="create_new",  # one W&B run per brackit run, all open at once
                    settings=wandb.Settings(console="off", quiet=True),
                )
                self.runs.append(handle)
                handle.define_metric("*", step_metric="step")
                handle.define_metric("pretrain/*", step_metric="pretrain/step")
        except wandb.errors.Error as error:  # e.g. no API key for an online run
            self.close(failed=True)
            raise ConfigError(f"wandb: {error} (WANDB_MODE=offline writes the runs locally)") from error
        for entry in history:
            self.write(entry)

    def write(self, entry: dict[str, Any]) -> None:
        prefix = "" if entry["phase"] == "train" else f"{entry['phase']}/"
        for index, handle in enumerate(self.runs):
            row = {"step": int(entry["step"]), **run_scalars(entry, index, len(self.runs))}
            handle.log({prefix + name: value for name, value in row.items()})

    def close(self, failed: bool = False) -> None:
        runs, self.runs = self.runs, []
        for handle in runs:
            handle.finish(exit_code=1 if failed else 0)
