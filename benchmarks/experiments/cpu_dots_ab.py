"""XLA:CPU's dot kernels at brackit's sizes: YNNPACK (JAX's default) vs Eigen, the measurement behind
``brackit.xla_setup``.

For each preset named, the same ``make_train`` chunk is compiled twice, as ``brackit.train`` runs it (one
seed unbatched, several vmapped): once with XLA's defaults, which hand most dots to YNNPACK fusions, and
once with ``xla_cpu_experimental_ynn_fusion_type`` emptied for that one compile, which leaves every dot to
XLA's Eigen kernels. The two are timed alternately, chunk after chunk, so that the drifting speed of a
shared machine hits both alike. The float32 matmul ceiling (2048^3) is measured both ways too.

    .venv/bin/python -m benchmarks.experiments.cpu_dots_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp

from benchmarks.benchmarks_common import (
    emit_report,
    gain_cell,
    machine_header,
    preset_runs,
    rate_cell,
    script_command,
    time_alternately,
)
from brackit import xla_setup
from brackit.bench import PRESETS
from brackit.train import over_runs

EIGEN = {xla_setup.CPU_DOTS_OPTION: ""}  # as brackit.train compiles on CPU, whatever BRACKIT_CPU_DOTS says
DEFAULT = [
    "BC",
    "BRAC-v KL primal",
    "BRAC-v MMD primal",
    "BRAC-p KL dual",
    "BRAC-p W dual",
    "bear",
    "bcq",
    "td3bc",
    "rebrac",
]
STEPS = {"BC": 500, "bear": 50, "bcq": 50}  # per chunk with one seed (default 100); 2/S of it with S seeds


def ceilings(size: int = 2048, rounds: int = 10) -> dict[str, float]:
    """Best GFLOP/s of a [size, size] @ [size, size] float32 matmul under each kernel choice, alternately."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmuls = {
        "ynnpack": jax.jit(lambda x, y: x @ y),
        "eigen": jax.jit(lambda x, y: x @ y, compiler_options=EIGEN),
    }
    best = dict.fromkeys(matmuls, float("inf"))
    for index in range(rounds + 1):
        for name, matmul in matmuls.items():
            start = time.perf_counter()
            jax.block_until_ready(matmul(a, b))
            if index:
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: 2 * size**3 / seconds / 1e9 for name, seconds in best.items()}


def compare(name: str, num_seeds: int, steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    fns, states, dataset = preset_runs(name, num_seeds, steps)
    chunk = over_runs(fns.chunk, num_seeds)
    programs = {
        "ynnpack": (jax.jit(chunk), states, dataset),
        "eigen": (jax.jit(chunk, compiler_options=EIGEN), states, dataset),
    }
    return time_alternately(programs, steps, steps * num_seeds, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=DEFAULT, choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    before = ceilings()
    lines = [
        "# XLA:CPU dots at brackit's sizes: YNNPACK (JAX's default) vs Eigen",
        "",
        machine_header(script_command(__file__, argv)),
        f"- {jax.device_count()} {jax.default_backend()} device(s); each chunk compiled with XLA's defaults"
        " (YNNPACK dot fusions) and with `xla_cpu_experimental_ynn_fusion_type` emptied (Eigen dots), timed"
        f" alternately, {args.repeats} of each after a warm-up; updates/s of all seeds together, best chunk"
        " (median in brackets)",
        f"- float32 matmul ceiling (2048^3, best of 10, alternately) before the rows: YNNPACK"
        f" {before['ynnpack']:.1f} GFLOP/s, Eigen {before['eigen']:.1f} GFLOP/s",
        "",
        "| configuration | seeds | steps/chunk | YNNPACK | Eigen | gain (best / median) |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.only:
        for seeds in args.seeds:
            steps = STEPS.get(name, 100)
            steps = steps if seeds == 1 else max(10, 2 * steps // seeds)
            rates = compare(name, seeds, steps, args.repeats)
            lines.append(
                f"| {name} | {seeds} | {steps} | {rate_cell(rates['ynnpack'])} | {rate_cell(rates['eigen'])}"
                f" | {gain_cell(rates['eigen'], rates['ynnpack'])} |"
            )
            print(lines[-1], flush=True)
    after = ceilings()
    lines += [
        "",
        f"- float32 matmul ceiling after the rows: YNNPACK {after['ynnpack']:.1f} GFLOP/s, Eigen"
        f" {after['eigen']:.1f} GFLOP/s",
    ]
    emit_report(lines, args.out, "cpu_dots_ab.md")


if __name__ == "__main__":
    main()
