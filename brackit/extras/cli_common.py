"""What the ``brackit extras`` commands share: their options, the budget lookup and the results files.

Every paper's command takes ``--budget`` (``BUDGETS``: tiny, small or full), ``--out`` (the folder of its
results) and usually ``--seed``; each paper keeps its own sizes per budget in a dict of its own (written
directly or as a ``budget_table``, one column per budget), and ``for_budget`` looks them up (an unknown
budget is a ``ConfigError``, exit status 2). A results file starts with ``results_header``: its title, then
the provenance of ``brackit.provenance.machine_header`` for the running command. ``markdown_table``/``print_table`` write one table to the report and to the terminal.

Seeds and verdicts: a results command takes ``--seeds`` (``seeds_option``, default ``0,1,2``) and runs every
seed; each number it reports is a ``Spread`` over the seeds (mean and min-max), and each claim a
``verdict``: "reproduced" only if it held in every seed, otherwise how often it held. Beside each results
file ``NAME.md`` the command writes ``NAME.json`` (``write_results_json``; ``write_results_files`` writes
both): the command's arguments, commit, date, budget, seeds and every seed's metrics (flat ``name ->
number``), which ``benchmarks/check_extras.py`` reruns at the ``small`` budget to check that the ports still
give the numbers recorded at the results' commit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from brackit.config_checks import COMMON_RANGES, check_option
from brackit.errors import ConfigError
from brackit.files import atomic_write_text
from brackit.provenance import command_line, git_state, machine_header, utc_date

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


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``: distinct seeds in the range of every config's seed."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}") from None
    for seed in seeds:
        check_option("--seeds", seed, COMMON_RANGES["seed"])
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct seeds, got {text!r}")
    return seeds


def seeds_option(help: str | None = None, default: str = "0,1,2") -> Any:
    """The ``--seeds`` option: comma-separated seeds, each a full rerun (default ``0,1,2``); the command's
    parameter receives the text (``parse_seeds`` has checked it) and calls ``parse_seeds`` itself."""

    def check(text: str) -> str:
        parse_seeds(text)
        return text

    return typer.Option(default, help=help or "Comma-separated seeds, one full run each.", callback=check)


@dataclasses.dataclass(frozen=True)
class Spread:
    """One metric over seeds: its mean, smallest and largest value and the number of seeds."""

    mean: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``0.912 (0.905-0.920)``; a single seed is just its value."""
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "min": self.low, "max": self.high, "n": self.n}


def spread(values: Sequence[float]) -> Spread:
    """The ``Spread`` of one metric's values over seeds (NaNs are kept: they make the mean NaN)."""
    if not values:
        raise ValueError("spread of no values")
    floats = [float(v) for v in values]
    return Spread(math.fsum(floats) / len(floats), min(floats), max(floats), len(floats))


def verdict(holds: Sequence[bool], claim: str = "reproduced") -> str:
    """``"reproduced (3/3 seeds)"`` when the claim held in every seed, else ``"held in 2/3 seeds"``
    (``"not reproduced (0/3 seeds)"`` when in none)."""
    held, n = sum(bool(h) for h in holds), len(holds)
    if n and held == n:
        return f"{claim} ({held}/{n} seeds)"
    if held == 0:
        return f"not {claim} (0/{n} seeds)"
    return f"held in {held}/{n} seeds"


def write_results_json(
    out: pathlib.Path,
    name: str,
    *,
    budget: str,
    seeds: Sequence[int],
    per_seed: Mapping[int, Mapping[str, float]],
    extra: Mapping[str, Any] | None = None,
    argv: Sequence[str] | None = None,
) -> pathlib.Path:
    """Writes ``out/name`` (``extras_X.json``, beside ``extras_X.md``) atomically: the arguments that rerun
    the command (``argv``, default this process's after the program name), commit, date, ``budget``,
    ``seeds``, every seed's flat metrics and ``extra`` (settings worth keeping); returns the path.
    ``benchmarks/check_extras.py`` reruns ``argv`` with ``--budget small --seeds 0`` and compares
    ``per_seed["0"]``."""
    state = git_state()
    payload = {
        "argv": list(sys.argv[1:] if argv is None else argv),
        "commit": None if state is None else state.commit,
        "dirty": None if state is None else state.dirty,
        "date": utc_date(),
        "budget": budget,
        "seeds": list(seeds),
        "per_seed": {str(seed): {k: float(v) for k, v in per_seed[seed].items()} for seed in seeds},
        **({"extra": dict(extra)} if extra else {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=True) + "\n")
    return path


def write_results_files(
    out: pathlib.Path,
    stem: str,
    lines: Sequence[str],
    *,
    budget: str,
    seeds: Sequence[int],
    per_seed: Mapping[int, Mapping[str, float]],
    extra: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """A results file and its sidecar: ``out/STEM.md`` (``lines``, ``write_results``) and ``out/STEM.json``
    (the other arguments, ``write_results_json``); returns the markdown file's path."""
    path = write_results(out, f"{stem}.md", lines)
    write_results_json(out, f"{stem}.json", budget=budget, seeds=seeds, per_seed=per_seed, extra=extra)
    return path


def for_budget(sizes: Mapping[str, T], budget: str) -> T:
    """A paper's sizes for ``--budget``: ``sizes`` maps each of ``BUDGETS`` to them."""
    if budget not in BUDGETS:
        raise ConfigError(f"--budget: expected one of {BUDGETS}, got {budget!r}")
    return sizes[budget]


def budget_table(make: Callable[..., T], **columns: Sequence[Any]) -> dict[str, T]:
    """A paper's sizes written as a table, one row per size and one column per budget (the order of
    ``BUDGETS``): ``{budget: make(size=column value, ...)}``, for ``for_budget``."""
    for name, values in columns.items():
        if len(values) != len(BUDGETS):
            raise ValueError(f"{name}: expected one value per budget {BUDGETS}, got {values!r}")
    return {
        budget: make(**{name: values[i] for name, values in columns.items()})
        for i, budget in enumerate(BUDGETS)
    }


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
    """A GitHub markdown table; a ``|`` inside a cell (a norm, an absolute value) is escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


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
