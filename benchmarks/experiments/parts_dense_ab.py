"""Sampled-action targets with obs repeated per sample vs obs multiplied once per state (``nets.PartsDense``).

BCQ's and BEAR's critic targets evaluate the VAE decoder, the actor and the critics at N sampled actions per
next state. Before ``PartsDense``, obs [B, O] was repeated to [N, B, O] and concatenated with the actions, so
the obs rows of every first layer were multiplied N times. ``PartsDense`` adds ``obs @ kernel[obs rows]``,
computed once per state, to ``actions @ kernel[action rows]``. This script compiles each preset's
``make_train`` chunk both ways (the old way by patching ``PartsDense`` to repeat and concatenate, which is
the old computation) and times them alternately, chunk after chunk; XLA's cost analysis gives the FLOPs.
``--ant`` adds rows at Ant's dimensions (obs 105, action 8), where the obs rows are most of the first layer.

    .venv/bin/python -m benchmarks.experiments.parts_dense_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
from collections.abc import Iterator

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
from brackit.nets import PartsDense
from brackit.train import make_train

ANT_DIMS = (105, 8)


@contextlib.contextmanager
def repeated_obs() -> Iterator[None]:
    """``PartsDense`` as before it existed: every part broadcast to the common leading shape, concatenated."""
    original = PartsDense.__call__

    def repeat_and_concatenate(self: PartsDense, parts):
        shape = jnp.broadcast_shapes(*(part.shape[:-1] for part in parts))
        return original(self, [jnp.broadcast_to(part, (*shape, part.shape[-1])) for part in parts])

    PartsDense.__call__ = repeat_and_concatenate
    try:
        yield
    finally:
        PartsDense.__call__ = original


def compare(name: str, dims: tuple[int, int], steps: int, repeats: int) -> tuple[dict, dict]:
    preset = PRESETS[name]
    dataset = synthetic_dataset(100_000, *dims)
    config = bench_config(preset.algorithm, preset.overrides)
    algorithm = get_algorithm(preset.algorithm)
    state = algorithm.init(config, jax.random.key(0), *dims)
    step = jnp.int32(0)
    programs, flops = {}, {}
    for variant, context in (("repeated", repeated_obs), ("once", contextlib.nullcontext)):
        # new functions for each variant: JAX caches a function's trace, which would carry the patch over
        fns = make_train(algorithm, config, *dims, chunk_steps=steps)
        update = make_train(algorithm, config, *dims, chunk_steps=1)
        with context():
            programs[variant] = (jax.jit(fns.chunk).lower(state, dataset, step).compile(), state, dataset)
            cost = jax.jit(update.chunk).lower(state, dataset, step).compile().cost_analysis()
        flops[variant] = cost["flops"] / 1e9
    return time_alternately(programs, steps, steps, repeats), flops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["bear", "bcq"], choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--ant", action="store_true", help="Also at Ant's dimensions (obs 105, action 8).")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    lines = [
        "# Sampled-action targets: obs repeated per sample vs once per state (`nets.PartsDense`)",
        "",
        machine_header(script_command(__file__, argv)),
        f"- 1 seed, chunks of {args.steps} updates timed alternately, {args.repeats} of each after a warm-up;"
        " updates/s of the best chunk (median in brackets); GFLOP per update from XLA's cost analysis",
        "",
        "| configuration | obs / action | GFLOP/update, repeated | once | updates/s, repeated | once |"
        " gain (best / median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.only:
        for dims in [PRESETS[name].dims] + ([ANT_DIMS] if args.ant else []):
            rates, flops = compare(name, dims, args.steps, args.repeats)
            old, new = rates["repeated"], rates["once"]
            lines.append(
                f"| {name} | {dims[0]} / {dims[1]} | {flops['repeated']:.3f} | {flops['once']:.3f} |"
                f" {rate_cell(old)} | {rate_cell(new)} | {gain_cell(new, old)} |"
            )
            print(lines[-1], flush=True)
    emit_report(lines, args.out, "parts_dense_ab.md")


if __name__ == "__main__":
    main()
