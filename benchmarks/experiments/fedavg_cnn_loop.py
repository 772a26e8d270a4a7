"""The FedAvg CNN's SGD step on XLA:CPU at top level vs inside a loop, for four ways to compute it.

For the FedAvg benchmark's CNN (widths 8, 16, 64; E=5, B=10 on a 40-example client, 20 steps):
``fedavg.CNN`` as shipped (convolutions as shifted slices + one matmul, ``brackit.extras.layers``), the same
with ``nn.Conv`` (``use_slices=False``, the implementation until 2026-11-28), and two more rewrites of the
``nn.Conv`` model (2x2 max-pool as reshape + max; convolutions as ``conv_general_dilated_patches`` + matmul).
Three timings each: one jitted SGD step called from Python, ``brackit.extras.fedavg.local_update`` (the 20
steps as nested ``lax.scan``), and the same 20 steps in one fully unrolled ``lax.scan``. Milliseconds per
step, best of ``--repeats``.

    .venv/bin/python -m benchmarks.experiments.fedavg_cnn_loop --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks.benchmarks_common import emit_report, machine_header, script_command
from brackit.extras import data, fedavg

WIDTHS = (8, 16, 64)


def reshape_max_pool(features: jax.Array) -> jax.Array:
    batch, height, width, channels = features.shape
    return features.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))


class PatchConv(nn.Module):
    """5x5 'SAME' convolution as patches + matmul, with ``nn.Conv``'s parameters."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (5, 5, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        patches = jax.lax.conv_general_dilated_patches(
            x, (5, 5), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return patches @ jnp.transpose(kernel, (2, 0, 1, 3)).reshape(-1, self.features) + bias


class VariantCNN(nn.Module):
    patches: bool = False

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        features = images
        for channels in WIDTHS[:2]:
            conv = PatchConv(channels) if self.patches else nn.Conv(channels, (5, 5))
            features = reshape_max_pool(nn.relu(conv(features)))
        features = nn.relu(nn.Dense(WIDTHS[2])(features.reshape(features.shape[0], -1)))
        return nn.Dense(10)(features)


def _ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def measure(model: nn.Module, repeats: int) -> tuple[float, float, float]:
    dataset = data.load_mnist5k()
    x, y = jnp.asarray(dataset.x_train[:40]), jnp.asarray(dataset.y_train[:40])
    lr = jnp.float32(0.1)
    params = model.init(jax.random.key(0), x[:1])

    def step(params, images, labels):
        mask = jnp.ones(labels.shape, bool)
        grads = jax.grad(fedavg.masked_loss, argnums=1)(model.apply, params, images, labels, mask)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    top = _ms(jax.jit(step), params, x[:10], y[:10], repeats=repeats)
    key = jax.random.key(0)
    scan = jax.jit(lambda p: fedavg.local_update(model.apply, p, x, y, jnp.int32(40), key, lr, 5, 10))
    in_loop = _ms(scan, params, repeats=repeats) / 20

    def unrolled(params):
        def body(params, index):
            start = (index % 4) * 10
            images = jax.lax.dynamic_slice_in_dim(x, start, 10)
            return step(params, images, jax.lax.dynamic_slice_in_dim(y, start, 10)), None

        return jax.lax.scan(body, params, jnp.arange(20), unroll=True)[0]

    return top, in_loop, _ms(jax.jit(unrolled), params, repeats=repeats) / 20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    variants = {
        "fedavg.CNN (slices + matmul, nn.max_pool)": fedavg.CNN(WIDTHS),
        "fedavg.CNN (nn.Conv, nn.max_pool)": fedavg.CNN(WIDTHS, use_slices=False),
        "nn.Conv, reshape + max pool": VariantCNN(patches=False),
        "patches + matmul, reshape + max pool": VariantCNN(patches=True),
    }
    lines = [
        "# The FedAvg CNN's SGD step at top level and inside a loop (XLA:CPU)",
        "",
        machine_header(script_command(__file__, argv)),
        f"- one client, 40 examples, B=10, E=5 (20 steps), widths {WIDTHS}; ms per step, best of {args.repeats}",
        "",
        "| model | one jitted step | in `local_update` (nested lax.scan) | unrolled lax.scan |",
        "|---|---|---|---|",
    ]
    for name, model in variants.items():
        top, in_loop, unrolled = measure(model, args.repeats)
        lines.append(f"| {name} | {top:.2f} | {in_loop:.2f} | {unrolled:.2f} |")
        print(lines[-1], flush=True)
    emit_report(lines, args.out, "fedavg_cnn_loop.md")


if __name__ == "__main__":
    main()
