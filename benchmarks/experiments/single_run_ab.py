"""One seed, unbatched vs vmapped over a batch of one: the measurement behind ``brackit.train.over_runs``.

For each preset of ``brackit.bench.PRESETS`` named, the same ``make_train`` chunk is compiled twice: plain
(what ``over_runs`` does for a single run) and ``vmap``-ed over a leading axis of size 1 (what ``brackit.train``
did before). The two are timed alternately, chunk after chunk, so that the drifting speed of a shared machine
hits both alike; the table gives the best and the median of ``--repeats`` chunks each.

    .venv/bin/python -m benchmarks.experiments.single_run_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp

from benchmarks.benchmarks_common import (
    emit_report,
    gain_cell,
    machine_header,
    rate_cell,
    script_command,
    time_alternately,
)
from brackit.algos import get_algorithm
from brackit.bench import PRESETS, bench_config, synthetic_dataset
from brackit.train import make_train

DEFAULT = ["BC", "BRAC-v KL primal", "bear", "bcq", "td3bc", "rebrac"]


def compare(name: str, steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    preset = PRESETS[name]
    dataset = synthetic_dataset(100_000, *preset.dims)
    config = bench_config(preset.algorithm, preset.overrides)
    fns = make_train(get_algorithm(preset.algorithm), config, *preset.dims, chunk_steps=steps)
    plain = (jax.jit(fns.chunk), fns.init(jax.random.key(0)), dataset)
    batched = (
        jax.jit(jax.vmap(fns.chunk, in_axes=(0, None, None))),
        jax.vmap(fns.init)(jnp.stack([jax.random.key(0)])),
        dataset,
    )
    return time_alternately({"plain": plain, "batched": batched}, steps, steps, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=DEFAULT, choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    steps = {"BC": 1000, "bear": 50, "bcq": 50}
    lines = [
        "# One seed: unbatched chunk vs vmap over a batch of one",
        "",
        machine_header(script_command(__file__, argv)),
        f"- chunks timed alternately, {args.repeats} of each after a warm-up; updates/s of the best chunk"
        " (median in brackets)",
        "",
        "| configuration | steps/chunk | unbatched | vmap, batch of 1 | gain (best / median) |",
        "|---|---|---|---|---|",
    ]
    for name in args.only:
        count = steps.get(name, 100)
        r = compare(name, count, args.repeats)
        lines.append(
            f"| {name} | {count} | {rate_cell(r['plain'])} | {rate_cell(r['batched'])} |"
            f" {gain_cell(r['plain'], r['batched'])} |"
        )
        print(lines[-1], flush=True)
    emit_report(lines, args.out, "single_run_ab.md")


if __name__ == "__main__":
    main()
