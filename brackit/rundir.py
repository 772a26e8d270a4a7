"""The run directory: one owner for the names of its files, its spec (run.json), and the refusals of a
directory that holds something else.

    logdir/run.json          what the run is (``RunSpec``: algorithm, full config, dataset sha256, seeds ...)
    logdir/metrics.jsonl     one line per chunk (rewritten atomically from the checkpointed history)
    logdir/checkpoint.npz    the latest checkpoint (``brackit.checkpoint``), bound to its run by ``run_sha256``
    logdir/tensorboard/      event files per run (rewritten from the checkpointed history on every start)
    logdir/csv/, wandb/      the other outputs ``--log`` may choose (``brackit.loggers``: a folder each)
    logdir/.lock             flock'ed while a process writes there (``brackit.files.DirectoryLock``)

``brackit.run`` trains in one, ``brackit.study`` checks and resumes many, ``brackit.report`` reads them.
``RunSpec.from_dict`` checks every field of a run.json against its type (``brackit.config.check_value``);
a malformed file, a different run or a checkpoint of another run is a one-line ``RunError`` naming the file,
ending with what the caller says to do about it (``remedy``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from brackit import config as config_lib
from brackit.checkpoint import read_record, save_checkpoint
from brackit.errors import BrackitError, ConfigError
from brackit.files import AtomicDebris, DirectoryLock, atomic_write_text
from brackit.loggers import LOGGERS

if TYPE_CHECKING:
    from brackit.train import Progress


class RunError(BrackitError):
    """A log directory that cannot be used for this run."""


NOT_IDENTITY = ("data", "provenance")
"""RunSpec fields that are not part of what the run is: the same content at another path, or under other
library versions, is the same run (``RunSpec.differences``, ``RunSpec.identity_sha256``)."""


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
    """Library versions and git commit of the process that wrote run.json (``brackit.provenance.run_provenance``);
    not part of what the run is, so resuming under other versions is the same run. None in older run.json
    files."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def identity_sha256(self) -> str:
        """sha256 of what the run is: every field but ``NOT_IDENTITY`` (the fields a resume ignores). A
        checkpoint stores it (``run_sha256``), binding it to its run."""
        identity = {k: v for k, v in json.loads(self.to_json()).items() if k not in NOT_IDENTITY}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def differences(self, other: RunSpec) -> list[str]:
        """``field: old != new`` (``config.FIELD: ...`` inside the dicts) for every field of what the run is
        that differs between this spec and ``other``."""
        a, b = json.loads(self.to_json()), json.loads(other.to_json())
        out = []
        for key in sorted(set(a) | set(b)):
            if key in NOT_IDENTITY or a.get(key) == b.get(key):
                continue
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                out += [
                    f"{key}.{k}: {a[key].get(k)!r} != {b[key].get(k)!r}"
                    for k in sorted(set(a[key]) | set(b[key]))
                    if a[key].get(k) != b[key].get(k)
                ]
            else:
                out.append(f"{key}: {a.get(key)!r} != {b.get(key)!r}")
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunSpec:
        """A spec from its JSON values, each checked against its field's type; a missing, unknown or
        mistyped field is a RunError ``WHERE: field 'NAME' ...``."""
        if not isinstance(data, dict):
            raise RunError(f"{where}: expected a JSON object, found {type(data).__name__}")
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise RunError(f"{where}: unknown field '{unknown[0]}' (written by a newer brackit?)")
        hints = config_lib.fields(cls)
        values = {}
        for name, field in fields.items():
            if name not in data:
                if field.default is dataclasses.MISSING:
                    raise RunError(f"{where}: field '{name}' is missing")
                continue
            try:
                values[name] = config_lib.check_value(hints[name], data[name], f"{where}: field '{name}'")
            except ConfigError as error:
                raise RunError(str(error)) from None
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, where: str = "run.json") -> RunSpec:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise RunError(f"{where}: not valid JSON ({error})") from None
        return cls.from_dict(data, where)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run's log directory (see the module docstring): where its files are, and reading, checking and
    atomically writing them. Only one process writes at a time (``lock``)."""

    path: Path

    SPEC: ClassVar[str] = "run.json"
    METRICS: ClassVar[str] = "metrics.jsonl"
    CHECKPOINT: ClassVar[str] = "checkpoint.npz"
    FILES: ClassVar[tuple[str, ...]] = (SPEC, METRICS, CHECKPOINT, *LOGGERS)
    """What a run writes in its logdir (each output of ``brackit.loggers`` is a folder of its name);
    ``clear`` removes exactly these."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a str is welcome too

    @property
    def spec_path(self) -> Path:
        return self.path / self.SPEC

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @classmethod
    def find(cls, path: Path) -> list[RunDir]:
        """The run directories at or below ``path`` (those holding a run.json; a run.json names its own),
        outside hidden directories, in sorted order."""
        if path.is_file():
            return [cls(path.parent)] if path.name == cls.SPEC else []
        return [
            cls(spec.parent)
            for spec in sorted(path.rglob(cls.SPEC))
            if not any(part.startswith(".") for part in spec.relative_to(path).parts[:-1])
        ]

    def lock(self) -> DirectoryLock:
        return DirectoryLock(self.path)

    # ------------------------------------------------------------------------------------- the spec

    def has_spec(self) -> bool:
        return self.spec_path.exists()

    def read_spec(self, remedy: str = "") -> RunSpec:
        """The spec in run.json; an unreadable or malformed file is a RunError naming it (then ``remedy``)."""
        try:
            return RunSpec.from_json(self.spec_path.read_text(), str(self.spec_path))
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", error)
            raise RunError(_with(f"{self.spec_path}: not readable ({reason})", remedy)) from None
        except RunError as error:
            raise RunError(_with(str(error), remedy)) from None

    def refuse_other_run(self, found: RunSpec, expected: RunSpec, remedy: str) -> None:
        """A RunError ``LOGDIR holds a different run (its first differences); REMEDY`` unless ``found`` (read
        from this directory) is the run ``expected`` (``RunSpec.differences``)."""
        differences = found.differences(expected)
        if differences:
            raise RunError(f"{self.path} holds a different run ({'; '.join(differences[:3])}); {remedy}")

    def write_spec(self, spec: RunSpec) -> None:
        atomic_write_text(self.spec_path, spec.to_json() + "\n")

    # ------------------------------------------------------------------------------------- checkpoint

    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def save_checkpoint(
        self, spec: RunSpec, progress: Progress, states: Any, metadata: Mapping[str, Any]
    ) -> None:
        """The checkpoint (``brackit.checkpoint.save_checkpoint``) of ``progress`` (phase, step, history,
        observation statistics) with its ``states`` gathered on the host, bound to the run ``spec`` (its
        ``identity_sha256``), which also goes under ``metadata['run']``."""
        save_checkpoint(
            self.checkpoint,
            states,
            phase=progress.phase,
            step=progress.step,
            history=progress.history,
            metadata={"run": json.loads(spec.to_json()), **metadata},
            obs_stats=progress.obs_stats,
            run_sha256=spec.identity_sha256(),
        )

    def checkpoint_record(self, spec: RunSpec, remedy: str) -> dict[str, Any]:
        """The checkpoint's record (``brackit.checkpoint.read_record``); a checkpoint bound to another run
        than ``spec`` (copied in from another logdir) is a RunError. Older checkpoints carry no binding."""
        record = read_record(self.checkpoint)
        bound, expected = record.get("run_sha256"), spec.identity_sha256()
        if bound is not None and bound != expected:
            raise RunError(
                f"{self.checkpoint} belongs to another run than {self.spec_path} (run hash {bound[:12]}, "
                f"expected {expected[:12]}); was it copied in from another logdir? Move it away, or {remedy}"
            )
        return record

    # ------------------------------------------------------------------------------------- metrics

    def write_metrics(self, history: Sequence[Mapping[str, Any]]) -> None:
        lines = (
            json.dumps({k: np.asarray(v).tolist() for k, v in entry.items()}) + "\n" for entry in history
        )
        atomic_write_text(self.metrics_path, "".join(lines))

    def metrics(self) -> list[tuple[str, dict[str, Any]]]:
        """The entries of metrics.jsonl, each with where it stands (``PATH: line N``, for messages); [] when
        there is no file yet (a run not started). A line that is not a JSON object is a RunError naming it."""
        path = self.metrics_path
        lines = path.read_text().splitlines() if path.exists() else []
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise RunError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(entry, dict):
                raise RunError(f"{where}: expected a JSON object")
            entries.append((where, entry))
        return entries

    def history(self) -> list[dict[str, Any]]:
        """The metrics history: the checkpoint's, else metrics.jsonl's (results kept without their
        checkpoint); [] where neither is readable."""
        if self.has_checkpoint():
            return read_record(self.checkpoint)["history"]
        try:
            return [entry for _, entry in self.metrics()]
        except (OSError, RunError):
            return []

    # ------------------------------------------------------------------------------------- cleaning

    def sweep_debris(self) -> None:
        """Removes the temporaries of atomic writes of the run's files that a kill interrupted
        (``brackit.files.AtomicDebris``); only while holding the ``lock``."""
        AtomicDebris.sweep(self.path, self.FILES)

    def clear(self) -> None:
        """Removes the run's files (``FILES``), nothing else."""
        for name in self.FILES:
            path = self.path / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()


def _with(message: str, remedy: str) -> str:
    return f"{message}; {remedy}" if remedy else message
