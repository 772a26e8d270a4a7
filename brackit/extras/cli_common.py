"""What the ``brackit extras`` commands share: their options, the budget lookup and the results files.

Every paper's command takes ``--budget`` (``BUDGETS``: tiny, small or full), ``--out`` (the folder of its
results) and usually ``--seed``; each paper keeps its own sizes per budget in a dict of its own, and
``for_budget`` looks them up (an unknown budget is a ``ConfigError``, exit status 2). A results file starts
with ``results_header``: its title, then the provenance of ``brackit.provenance.machine_header`` for the
running command. ``markdown_table``/``print_table`` write one table to the report and to the terminal.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from brackit.config_checks import COMMON_RANGES, check_option
from brackit.errors import ConfigError
from brackit.files import atomic_write_text
from brackit.provenance import command_line, machine_header

BUDGETS = ("tiny", "small", "full")
"""The ``--budget`` names of every extras command (tiny: a smoke test; full: the largest run)."""

DEFAULT_OUT = pathlib.Path("benchmarks/results")

T = TypeVar("T")


def budget_option(help: str = "tiny | small | full") -> Any:
    """The ``--budget`` option (default ``small``); ``help`` may say what each budget runs."""
    return typer.Option("small", help=help)


def _check_out(out: pathlib.Path) -> pathlib.Path:
    if out.exists() and not out.is_dir():  # refused as the command starts, not after its run
        raise ConfigError(f"--out {out}: not a folder; --out names the folder the results are written to")
    return out


def _check_seed(seed: int) -> int:
    check_option("--seed", seed, COMMON_RANGES["seed"])
    return seed


def out_option() -> Any:
    """The ``--out`` option: the folder the results are written to (default ``benchmarks/results``); an
    existing file there is refused as the command starts."""
    return typer.Option(DEFAULT_OUT, help="Output folder.", callback=_check_out)


def seed_option(help: str | None = None) -> Any:
    """The ``--seed`` option (default 0), in the range of every config's seed."""
    return typer.Option(0, help=help, callback=_check_seed)


def for_budget(sizes: Mapping[str, T], budget: str) -> T:
    """A paper's sizes for ``--budget``: ``sizes`` maps each of ``BUDGETS`` to them."""
    if budget not in BUDGETS:
        raise ConfigError(f"--budget: expected one of {BUDGETS}, got {budget!r}")
    return sizes[budget]


def results_header(title: str) -> list[str]:
    """The first lines of a results file: ``title`` (a markdown heading), a blank line, then the machine,
    git commit, date and command that made it."""
    return [title, "", machine_header(command_line())]


def write_results(out: pathlib.Path, name: str, lines: Sequence[str]) -> pathlib.Path:
    """Writes ``lines`` (one string each) to ``out/name`` atomically, creating ``out``; returns the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def print_table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    """The same table, printed with rich."""
    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display), imported when a command plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
