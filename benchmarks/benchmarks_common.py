"""Shared pieces of the benchmark scripts here: the report header (``brackit.provenance.machine_header``),
the provenance command line, and printing + atomically writing a finished markdown report."""

from __future__ import annotations

import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.algos import get_algorithm
from brackit.bench import PRESETS, bench_config, synthetic_dataset
from brackit.files import atomic_write_text
from brackit.provenance import command_line, machine_header
from brackit.train import TrainFunctions, initial_states, make_train, run_grid

HERE = pathlib.Path(__file__).resolve().parent
"""``benchmarks/``: the maintained scripts; the finished A/B experiments are in ``experiments/`` under it."""

__all__ = [
    "emit_report",
    "first_and_best",
    "machine_header",
    "preset_runs",
    "run_step_table",
    "script_command",
    "time_alternately",
]


def preset_runs(name: str, num_seeds: int, steps: int) -> tuple[TrainFunctions, Any, Any]:
    """A ``brackit.bench`` preset ready to time: its ``make_train`` functions (``steps``-update chunks),
    ``num_seeds`` initial states stacked on a leading run axis, and a 100k-transition synthetic dataset."""
    preset = PRESETS[name]
    dataset = synthetic_dataset(100_000, *preset.dims)
    config = bench_config(preset.algorithm, preset.overrides)
    fns = make_train(get_algorithm(preset.algorithm), config, *preset.dims, chunk_steps=steps)
    states = initial_states(fns, run_grid(range(num_seeds), None))
    return fns, states, dataset


def time_alternately(
    programs: dict[str, tuple[Callable[..., Any], Any, Any]], steps: int, updates: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """Times jitted chunk programs (name -> (chunk, states, dataset)) alternately, one chunk of each in turn,
    so that a shared machine's drifting speed hits all alike: after one warm-up chunk each, ``repeats``
    rounds. Returns name -> (best, median) updates/s, where one chunk does ``updates`` updates (all runs)."""
    states = {name: state for name, (_, state, _) in programs.items()}
    times: dict[str, list[float]] = {name: [] for name in programs}
    for index in range(repeats + 1):
        step = jnp.int32(index * steps)
        for name, (chunk, _, dataset) in programs.items():
            start = time.perf_counter()
            states[name], _ = jax.block_until_ready(chunk(states[name], dataset, step))
            if index:
                times[name].append(time.perf_counter() - start)
    return {name: (updates / min(t), updates / float(np.median(t))) for name, t in times.items()}


def rate_cell(rate: tuple[float, float]) -> str:
    """A (best, median) updates/s pair as a table cell: "best (median)"."""
    return f"{rate[0]:,.1f} ({rate[1]:,.1f})"


def gain_cell(new: tuple[float, float], old: tuple[float, float]) -> str:
    """The gain of ``new`` over ``old`` (both (best, median) pairs) as a table cell: "+x% / +y%"."""
    return f"{100 * (new[0] / old[0] - 1):+.0f}% / {100 * (new[1] / old[1] - 1):+.0f}%"


def script_command(script: str, argv: Sequence[str] | None) -> str:
    """The command line that reruns ``script`` (a benchmark's ``__file__``) with these arguments, from the
    repository root: a script of ``benchmarks/`` by its path, one of ``benchmarks/experiments/`` as a module
    (``python -m benchmarks.experiments.NAME``, so that it finds this file)."""
    path = pathlib.Path(script).resolve()
    target = (
        f"benchmarks/{path.name}" if path.parent == HERE else f"-m benchmarks.{path.parent.name}.{path.stem}"
    )
    return command_line(f".venv/bin/python {target}", argv or sys.argv[1:])


def emit_report(lines: Sequence[str], out: pathlib.Path | None, name: str) -> str:
    """Joins ``lines`` into the report, prints it and, when ``out`` is given, writes ``out/name`` atomically."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name, report)
    return report


def first_and_best(
    calls: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per call: each call's first (compilation included), then the best of ``repeats`` rounds in
    which the calls alternate, so that a shared machine's drifting speed hits all alike."""

    def timed(call: Callable[[], Any]) -> float:
        start = time.perf_counter()
        jax.block_until_ready(call())
        return time.perf_counter() - start

    first = {name: timed(call) for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            best[name] = min(best[name], timed(call))
    return first, best


def run_step_table(
    label: str, first: dict[str, float], best: dict[str, float], steps: int, runs: int
) -> list[str]:
    """Markdown rows of ``first_and_best``'s times for calls of ``runs`` x ``steps`` steps each."""
    lines = [f"| {label} | ms per run-step | first call, s (compile included) |", "|---|---|---|"]
    for name in best:
        lines.append(f"| {name} | {1e3 * best[name] / steps / runs:.2f} | {first[name]:.1f} |")
    return lines
