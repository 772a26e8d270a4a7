"""SimCLR pretraining on XLA:CPU: the encoder's convolution implementation and how runs are batched.

``brackit.extras.simclr.pretrain`` of ``--runs`` encoders (NT-Xent on two augmented views, batch 128,
28x28x1 images as in the study's MNIST) for ``--steps`` steps, in three settings of ``PretrainConfig``:
``nn.Conv`` in an unrolled scan with the runs one after the other (the default until 2026-11-28), the slices
+ matmul convolution of ``brackit.extras.layers`` in a plain scan with the runs one after the other (the
default now), and slices in a plain scan with the runs vmapped. Milliseconds per run-step of the best of
``--repeats`` alternated rounds (compiled programs are cached across calls), and the first call's time
(compilation included). The images are random: the timing does not depend on their content.

    .venv/bin/python -m benchmarks.experiments.simclr_conv_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import functools
import pathlib

import jax
import numpy as np

from benchmarks.benchmarks_common import (
    emit_report,
    first_and_best,
    machine_header,
    run_step_table,
    script_command,
)
from brackit.extras import simclr

VARIANTS = {  # name: (use_slices, unroll, vmap_runs)
    "nn.Conv, unrolled scan, runs in sequence": (False, True, False),
    "slices + matmul, scan, runs in sequence": (True, False, False),
    "slices + matmul, scan, runs vmapped": (True, False, True),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2000, 28, 28, 1)).astype(np.float32)  # the study's MNIST shape
    labels = rng.integers(0, 10, size=2000)
    keys = jax.random.split(jax.random.key(0), args.runs)
    configs = {
        name: simclr.PretrainConfig(
            steps=args.steps, chunk_steps=args.steps, use_slices=slices, unroll=unroll, vmap_runs=vmapped
        )
        for name, (slices, unroll, vmapped) in VARIANTS.items()
    }

    calls = {
        name: functools.partial(simclr.pretrain, config, images, labels, keys)
        for name, config in configs.items()
    }
    first, best = first_and_best(calls, args.repeats)
    lines = [
        "# SimCLR pretraining: convolution implementation and run batching (XLA:CPU)",
        "",
        machine_header(script_command(__file__, argv)),
        "- encoder channels 16-32-64, features 128, projection 128; batch 128 (256 views), 28x28x1 images"
        f" (the study's MNIST shape); {args.runs} runs x {args.steps} steps per call; best of {args.repeats} alternated rounds",
        "",
        *run_step_table("setting", first, best, args.steps, args.runs),
    ]
    emit_report(lines, args.out, "simclr_conv_ab.md")


if __name__ == "__main__":
    main()
