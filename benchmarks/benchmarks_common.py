"""Shared pieces of the benchmark scripts here: the report header (from ``brackit.bench``), the provenance
command line, and printing + atomically writing a finished markdown report."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

from brackit.bench import machine_header
from brackit.files import atomic_write_text

__all__ = ["emit_report", "machine_header", "script_command"]


def script_command(script: str, argv: Sequence[str] | None) -> str:
    """The command line that reruns ``script`` (a benchmark's ``__file__``) with these arguments."""
    return f".venv/bin/python benchmarks/{pathlib.Path(script).name} " + " ".join(argv or sys.argv[1:])


def emit_report(lines: Sequence[str], out: pathlib.Path | None, name: str) -> str:
    """Joins ``lines`` into the report, prints it and, when ``out`` is given, writes ``out/name`` atomically."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name, report)
    return report
