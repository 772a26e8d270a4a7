"""The randomization tests' CNN on XLA:CPU: how to run its SGD chunks, per convolution implementation.

Three ways to train R runs of ``brackit.extras.randomization.SmallCNN`` (MNIST 28x28, batch 128, SGD with
momentum) for a chunk of steps: ``nn.Conv`` in a fully unrolled ``lax.scan`` with the runs one after the other
(the CLI's setting until 2026-11-28), the slices + matmul convolution (``brackit.extras.layers``) in a plain
``lax.scan`` with the runs vmapped (the setting now), and ``nn.Conv`` in a plain scan with the runs vmapped (for
contrast). Milliseconds per run-step of the best of ``--repeats`` alternated rounds, and the first call's time
(compilation included).

    .venv/bin/python -m benchmarks.experiments.randomization_cnn_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import functools
import pathlib

import jax
import jax.numpy as jnp
import optax

from benchmarks.benchmarks_common import (
    emit_report,
    first_and_best,
    machine_header,
    run_step_table,
    script_command,
)
from brackit.extras import data
from brackit.extras import randomization as rz

VARIANTS = {  # name: (use_slices, unroll, vmap over runs)
    "nn.Conv, unrolled scan, runs in sequence": (False, True, False),
    "slices + matmul, scan, runs vmapped": (True, False, True),
    "nn.Conv, scan, runs vmapped": (False, False, True),
}


def build(x, y, runs: int, steps: int, use_slices: bool, unroll: bool, vmapped: bool):
    network = rz.SmallCNN(10, use_slices=use_slices)
    optimizer = optax.sgd(0.02, momentum=0.9)

    def init(key):
        params = network.init(key, x[:1])
        return params, optimizer.init(params), key

    def step(carry, _):
        params, opt_state, key = carry
        key, batch_key = jax.random.split(key)
        index = jax.random.randint(batch_key, (128,), 0, x.shape[0])
        grads = jax.grad(lambda p: rz.cross_entropy_loss(network.apply(p, x[index]), y[index])[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), None

    def chunk(carry):
        return jax.lax.scan(step, carry, None, length=steps, unroll=unroll)[0]

    keys = jax.random.split(jax.random.key(0), runs)
    if vmapped:
        compiled = jax.jit(jax.vmap(chunk))
        return (lambda carry: compiled(carry)), jax.vmap(init)(keys)
    compiled = jax.jit(chunk)
    return (lambda carries: [compiled(carry) for carry in carries]), [init(key) for key in keys]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    dataset = data.load_mnist5k()
    x, y = jnp.asarray(dataset.x_train[:1000]), jnp.asarray(dataset.y_train[:1000])
    calls = {}
    for name, options in VARIANTS.items():
        run, carry = build(x, y, args.runs, args.steps, *options)
        calls[name] = functools.partial(run, carry)
    first, best = first_and_best(calls, args.repeats)
    lines = [
        "# The randomization tests' CNN: convolution implementation and loop structure (XLA:CPU)",
        "",
        machine_header(script_command(__file__, argv)),
        f"- SmallCNN (channels 32, 64; dense 128), MNIST 28x28, batch 128; {args.runs} runs x {args.steps} steps"
        f" per chunk; best of {args.repeats} alternated rounds",
        "",
        *run_step_table("variant", first, best, args.steps, args.runs),
    ]
    emit_report(lines, args.out, "randomization_cnn_ab.md")


if __name__ == "__main__":
    main()
