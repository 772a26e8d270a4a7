"""Training chunks with JAX's rolled Threefry loop on CPU vs ``brackit.rng``'s unrolled lowering (A/B).

For each preset of ``brackit.bench.PRESETS`` named and each seed count, the same ``make_train`` chunk is lowered
and compiled twice, once with JAX's CPU lowering of ``threefry2x32`` (a 5-iteration ``fori_loop``) and once with
``brackit.rng``'s straight-line one, and the two are timed alternately (``--repeats`` rounds after a warm-up),
so that both see the same machine state. Reports updates/s (every seed's updates) of the best and the median
chunk, the gain, and whether the two chunks' outputs are bit-identical (they must be: the hash is the same).

    .venv/bin/python benchmarks/threefry_ab.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.random import threefry2x32 as jax_threefry  # benchmark only: JAX's own (rolled) CPU lowering
from jax.interpreters import mlir

from brackit import rng
from brackit.algos import get_algorithm
from brackit.bench import (
    PRESETS,
    bench_config,
    chunk_steps_for,
    machine_header,
    resolve_presets,
    synthetic_dataset,
)
from brackit.train import make_train, over_runs

DEFAULT = ["BC", "BRAC-v KL primal", "BRAC-p KL dual", "bear", "bcq", "td3bc", "rebrac"]


def _leaves(tree) -> list[np.ndarray]:
    def host(x):
        return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    return [host(x) for x in jax.tree.leaves(tree)]


def compare(name: str, seeds: int, steps: int, repeats: int) -> dict[str, float | bool]:
    preset = PRESETS[name]
    dataset = synthetic_dataset(100_000, *preset.dims)
    config = bench_config(preset.algorithm, preset.overrides)
    fns = make_train(get_algorithm(preset.algorithm), config, *preset.dims, chunk_steps=steps)
    states = jax.jit(jax.vmap(fns.init))(jnp.stack([jax.random.key(seed) for seed in range(seeds)]))
    step = jnp.int32(0)
    compiled = {}
    for variant, lowering in (
        ("rolled", jax_threefry._threefry2x32_cpu_lowering_rule),
        ("unrolled", rng._LOWERING),
    ):
        mlir.register_lowering(jax_threefry.threefry2x32_p, lowering, platform="cpu")
        compiled[variant] = jax.jit(over_runs(fns.chunk, seeds)).lower(states, dataset, step).compile()
    rng.unroll_threefry_on_cpu()  # leave the process as brackit.train set it
    outputs = {variant: jax.block_until_ready(fn(states, dataset, step)) for variant, fn in compiled.items()}
    identical = all(
        np.array_equal(a, b)
        for a, b in zip(_leaves(outputs["rolled"]), _leaves(outputs["unrolled"]), strict=True)
    )
    times: dict[str, list[float]] = {variant: [] for variant in compiled}
    for _ in range(repeats):
        for variant, fn in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(states, dataset, step))
            times[variant].append(time.perf_counter() - start)
    rate = {v: steps * seeds / min(t) for v, t in times.items()}
    median = {v: steps * seeds / float(np.median(t)) for v, t in times.items()}
    return {
        "rolled": rate["rolled"],
        "unrolled": rate["unrolled"],
        "rolled_median": median["rolled"],
        "unrolled_median": median["unrolled"],
        "identical": identical,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=DEFAULT)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--steps", type=int, default=200, help="updates per chunk with one seed")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    names = resolve_presets(args.presets)
    lines = [
        "# Threefry on XLA:CPU: JAX's rolled loop vs brackit.rng's unrolled lowering",
        "",
        machine_header(".venv/bin/python benchmarks/threefry_ab.py " + " ".join(argv or sys.argv[1:])),
        f"- the same chunk compiled both ways and timed alternately, {args.repeats} rounds after a warm-up;"
        " updates/s of all seeds, best chunk (median in brackets); chunk length as `brackit.bench`"
        f" (`--steps {args.steps}` with one seed)",
        "",
        "| preset | seeds | rolled updates/s | unrolled updates/s | gain (median) | bit-identical |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        for seeds in args.seeds:
            r = compare(name, seeds, chunk_steps_for(args.steps, seeds), args.repeats)
            gain, gain_median = r["unrolled"] / r["rolled"] - 1, r["unrolled_median"] / r["rolled_median"] - 1
            lines.append(
                f"| {name} | {seeds} | {r['rolled']:,.1f} ({r['rolled_median']:,.1f}) |"
                f" {r['unrolled']:,.1f} ({r['unrolled_median']:,.1f}) | {100 * gain:+.0f}%"
                f" ({100 * gain_median:+.0f}%) | {'yes' if r['identical'] else 'NO'} |"
            )
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "threefry_ab.md").write_text(report)


if __name__ == "__main__":
    main()
