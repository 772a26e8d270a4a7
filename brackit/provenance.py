"""Provenance: what made a result, recorded beside it (package versions, commit, machine, date, command).

One owner for the facts that every result brackit writes carries: the versions of the packages that
computed it (``package_versions``), the git commit of the brackit checkout that ran and whether its tracked
files differed from it (``git_state``), the machine (``cpu_model``, ``device_description``), the date
(``utc_date``) and the command line that reruns it (``command_line``). Three shapes use them:
``run_provenance`` is the ``provenance`` dict of a run's ``run.json`` (``brackit.run``; not part of a run's
identity); ``machine_header`` is the bullet lines at the top of every markdown report (``brackit bench``,
the scripts of ``benchmarks/``, ``brackit extras``); the behavior policies' and datasets' cards
(``brackit.protocol``) take their ``*_version`` fields and device from here.

The commit is that of the checkout ``brackit`` is imported from (not of the working directory), so a
report names the code that made it; an installed package has no commit ("unknown", or no key in run.json).
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

RUN_PACKAGES = ("brackit", "jax", "jaxlib", "flax", "optax")
"""The packages whose versions ``run.json`` records (its ``provenance`` keys)."""


def package_versions(packages: Sequence[str], suffix: str = "") -> dict[str, str | None]:
    """``{name + suffix: installed version}`` of each distribution in ``packages`` (None where it is not
    installed), e.g. ``suffix="_version"`` for the cards' ``jax_version`` fields."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package + suffix] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package + suffix] = None
    return versions


class GitState(NamedTuple):
    commit: str
    """The commit hash (abbreviated as ``git rev-parse --short`` does when asked)."""
    dirty: bool | None
    """Tracked files differ from the commit; None when ``git status`` failed."""


@functools.cache
def _checkout_state() -> tuple[str, str, bool | None] | None:
    """(full hash, abbreviated hash, dirty) of the checkout brackit is imported from, asked of git once."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    git = ["git", "-C", str(root)]
    try:
        full, short, status = (
            subprocess.run([*git, *args], capture_output=True, text=True, timeout=10)
            for args in (
                ["rev-parse", "HEAD"],
                ["rev-parse", "--short", "HEAD"],
                ["status", "--porcelain", "--untracked-files=no"],
            )
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if full.returncode != 0 or short.returncode != 0:
        return None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return full.stdout.strip(), short.stdout.strip(), dirty


def git_state(short: bool = False) -> GitState | None:
    """The commit of the git checkout brackit runs from and whether its tracked files differ from it;
    None outside a checkout (an installed package) or when git cannot tell. Taken once per process, at the
    first call: every result a process writes names the same state, that of the code it runs, and the files
    the process itself writes (a results file tracked in the repo) cannot mark the results written after
    them as made from uncommitted changes."""
    state = _checkout_state()
    if state is None:
        return None
    full, abbreviated, dirty = state
    return GitState(abbreviated if short else full, dirty)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``), or "unknown CPU"."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_description() -> str:
    """JAX's backend and first device, the CPU cores and the platform, in one line (the behavior cards'
    ``device``), e.g. ``cpu: cpu; 2 CPU cores; x86_64 Linux``."""
    import jax  # here, not at the top: the CLI imports this module and starts fast without JAX

    device = jax.devices()[0]
    return (
        f"{jax.default_backend()}: {device.device_kind}; {os.cpu_count()} CPU cores; "
        f"{platform.machine()} {platform.system()}"
    )


def utc_date() -> str:
    """Now, as ``YYYY-mm-dd HH:MM UTC``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(program: str = "brackit", argv: Sequence[str] | None = None) -> str:
    """``program`` followed by ``argv`` (default: this process's arguments), each shell-quoted: the line
    that reruns this command."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join([program, *(shlex.quote(arg) for arg in args)])


def run_provenance() -> dict[str, Any]:
    """The ``provenance`` of ``run.json``: the versions of ``RUN_PACKAGES`` (one key each) and, when brackit
    runs from a checkout, ``git_commit`` (full hash) and ``git_dirty`` (tracked files differ from it)."""
    out: dict[str, Any] = package_versions(RUN_PACKAGES)
    state = git_state()
    if state is not None:
        out["git_commit"] = state.commit
        if state.dirty is not None:
            out["git_dirty"] = state.dirty
    return out


def machine_header(command: str) -> str:
    """Markdown bullets: the machine (CPU, cores, JAX version and device kinds), the git commit (marked when
    the tree is dirty), the UTC date and ``command``."""
    import jax

    state = git_state(short=True)
    commit = "unknown" if state is None else state.commit
    if state is not None and state.dirty:
        commit += " (with uncommitted changes)"
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return "\n".join(
        [
            f"- machine: {cpu_model()}, {os.cpu_count()} cores; JAX {jax.__version__} on {devices}",
            f"- git commit: {commit}",
            f"- date: {utc_date()}",
            f"- command: `{command}`",
        ]
    )
