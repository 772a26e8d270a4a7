"""Training chunks with JAX's rolled Threefry loop on CPU vs an unrolled lowering of the same hash (A/B).

JAX lowers Threefry-2x32 (20 rounds) as a 5-iteration ``fori_loop`` on CPU, so every random draw inside a
training chunk runs a small ``while`` loop of about 16 tiny kernels per iteration. This experiment registers a
straight-line lowering of the identical hash (Random123's rotations and key schedule; the random bits do not
change) and asks whether brackit's chunks get faster. They did not, measurably
(``benchmarks/results/experiments/threefry_ab.md``), so brackit keeps JAX's default.

For each preset of ``brackit.bench.PRESETS`` named and each seed count, the same ``make_train`` chunk is lowered
and compiled twice, once with JAX's CPU lowering of ``threefry2x32`` (a 5-iteration ``fori_loop``) and once with the
straight-line one, and the two are timed alternately (``--repeats`` rounds after a warm-up),
so that both see the same machine state. Reports updates/s (every seed's updates) of the best and the median
chunk, the gain, and whether the two chunks' outputs are bit-identical (the random bits are; floating-point
results can differ in the last bits where XLA fuses the surrounding arithmetic differently).

    .venv/bin/python -m benchmarks.experiments.threefry_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.random import threefry2x32 as jax_threefry  # benchmark only: JAX's own (rolled) CPU lowering
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir

from benchmarks.benchmarks_common import emit_report, machine_header, preset_runs, script_command
from brackit.bench import (
    chunk_steps_for,
    resolve_presets,
)
from brackit.train import over_runs

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jnp.ndarray, distance: int) -> jnp.ndarray:
    return (x << np.uint32(distance)) | (x >> np.uint32(32 - distance))


def threefry2x32_unrolled(key1, key2, x1, x2) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Threefry-2x32 with 20 rounds on uint32 arrays (broadcast together), as straight-line code."""
    keys = (key1, key2, key1 ^ key2 ^ _PARITY)
    a, b = x1 + keys[0], x2 + keys[1]
    for block in range(5):  # 4 rounds, then a key injection
        for distance in _ROTATIONS[block % 2]:
            a = a + b
            b = _rotate_left(b, distance)
            b = a ^ b
        a = a + keys[(block + 1) % 3]
        b = b + keys[(block + 2) % 3] + np.uint32(block + 1)
    return a, b


UNROLLED = mlir.lower_fun(threefry2x32_unrolled, multiple_results=True)


def same_random_bits() -> bool:
    """Both lowerings give the same integers, normals and split keys (and the unrolled program has no loop)."""
    key = jax.random.key(42)

    def draws(k):
        return (
            jax.random.randint(k, (257,), 0, 1000),
            jax.random.normal(jax.random.fold_in(k, 3), (5, 7)),
            jax.random.key_data(jax.random.split(k, 3)),
        )

    results = []
    for lowering in (jax_threefry._threefry2x32_cpu_lowering_rule, UNROLLED):
        mlir.register_lowering(threefry2x32_p, lowering, platform="cpu")
        compiled = jax.jit(lambda k: draws(k)).lower(key).compile()  # a fresh function: no cached lowering
        results.append(([np.asarray(x) for x in compiled(key)], compiled.as_text().count(" while(")))
    mlir.register_lowering(threefry2x32_p, jax_threefry._threefry2x32_cpu_lowering_rule, platform="cpu")
    (rolled, rolled_loops), (unrolled, unrolled_loops) = results
    same = all(np.array_equal(a, b) for a, b in zip(rolled, unrolled, strict=True))
    return same and rolled_loops > 0 and unrolled_loops == 0


DEFAULT = ["BC", "BRAC-v KL primal", "BRAC-p KL dual", "bear", "bcq", "td3bc", "rebrac"]


def _leaves(tree) -> list[np.ndarray]:
    def host(x):
        return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    return [host(x) for x in jax.tree.leaves(tree)]


def compare(name: str, num_seeds: int, steps: int, repeats: int) -> dict[str, float | bool]:
    fns, states, dataset = preset_runs(name, num_seeds, steps)
    step = jnp.int32(0)
    compiled, loops = {}, {}
    for variant, lowering in (
        ("rolled", jax_threefry._threefry2x32_cpu_lowering_rule),
        ("unrolled", UNROLLED),
    ):
        mlir.register_lowering(threefry2x32_p, lowering, platform="cpu")
        compiled[variant] = jax.jit(over_runs(fns.chunk, num_seeds)).lower(states, dataset, step).compile()
        loops[variant] = compiled[variant].as_text().count(" while(")
    mlir.register_lowering(threefry2x32_p, jax_threefry._threefry2x32_cpu_lowering_rule, platform="cpu")
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
    rate = {v: steps * num_seeds / min(t) for v, t in times.items()}
    median = {v: steps * num_seeds / float(np.median(t)) for v, t in times.items()}
    return {
        "rolled": rate["rolled"],
        "unrolled": rate["unrolled"],
        "rolled_median": median["rolled"],
        "unrolled_median": median["unrolled"],
        "identical": identical,
        "loops": f"{loops['rolled']} / {loops['unrolled']}",
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
    bits = same_random_bits()
    lines = [
        "# Threefry on XLA:CPU: JAX's rolled loop vs an unrolled lowering of the same hash",
        "",
        machine_header(script_command(__file__, argv)),
        f"- the same chunk compiled both ways and timed alternately, {args.repeats} rounds after a warm-up;"
        " updates/s of all seeds, best chunk (median in brackets); chunk length as `brackit.bench`"
        f" (`--steps {args.steps}` with one seed)",
        f"- random draws (randint, normal, split) identical under both lowerings: {'yes' if bits else 'NO'}",
        "",
        "| preset | seeds | rolled updates/s | unrolled updates/s | gain (median) | bit-identical | while loops |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for seeds in args.seeds:
            r = compare(name, seeds, chunk_steps_for(args.steps, seeds), args.repeats)
            gain, gain_median = r["unrolled"] / r["rolled"] - 1, r["unrolled_median"] / r["rolled_median"] - 1
            lines.append(
                f"| {name} | {seeds} | {r['rolled']:,.1f} ({r['rolled_median']:,.1f}) |"
                f" {r['unrolled']:,.1f} ({r['unrolled_median']:,.1f}) | {100 * gain:+.0f}%"
                f" ({100 * gain_median:+.0f}%) | {'yes' if r['identical'] else 'NO'} | {r['loops']} |"
            )
            print(lines[-1], flush=True)
    emit_report(lines, args.out, "threefry_ab.md")


if __name__ == "__main__":
    main()
