"""The extras' shared layers: an MLP on flattened images, and a 2-D convolution as shifted slices and one
matmul, for XLA:CPU inside loops and under ``vmap``.

``MLP`` is the classifier of three ports: the 2NN of McMahan et al. (2017) (``hidden = (200, 200)``), the
MLP 1x512 and 3x512 of Zhang et al. (2017) and the IHT defence's classifier (Bafna et al. 2018).

``Conv`` computes what ``flax.linen.Conv(features, kernel_size, strides, padding="SAME")`` computes, with the
same parameters (``kernel [kh, kw, C_in, C_out]``, ``bias [C_out]``), so checkpoints and initialisations carry
over. It gathers the ``kh * kw`` shifted (and strided) views of the padded input into ``[..., kh * kw * C_in]``
and multiplies by the reshaped kernel: no convolution op at all.

Why: on XLA:CPU (JAX 0.10) a small convolution's SGD step ran several times slower inside ``lax.scan`` than
as one top-level call (``benchmarks/results/experiments/fedavg_cnn_loop.md``), and ``vmap`` over per-client
or per-seed kernels turns ``nn.Conv`` into a grouped convolution. Slices and a (batched) matmul avoid both;
the extras' training loops are scans over vmapped models throughout. The cost is ``kh * kw`` times the
input's memory for the gathered views, small at MNIST/CIFAR sizes. On GPUs cuDNN's convolutions would be
faster: the ``use_slices`` switch of the models that use this layer picks ``nn.Conv`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(pad before, pad after, output size) of XLA's 'SAME' padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def slice_conv(inputs: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1)) -> jax.Array:
    """'SAME' cross-correlation of ``inputs [B, H, W, C]`` with ``kernel [kh, kw, C, F]``: ``[B, H', W', F]``."""
    kh, kw, channels, features = kernel.shape
    if inputs.ndim != 4 or inputs.shape[-1] != channels:
        raise ValueError(f"expected inputs [B, H, W, {channels}], got {inputs.shape}")
    sh, sw = strides
    top, bottom, out_h = _same_padding(inputs.shape[1], kh, sh)
    left, right, out_w = _same_padding(inputs.shape[2], kw, sw)
    padded = jnp.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    views = [
        padded[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = jnp.concatenate(views, axis=-1)  # [B, H', W', kh * kw * C], ordered (i, j, c) like the kernel
    return columns @ kernel.reshape(kh * kw * channels, features)


class Conv(nn.Module):
    """``nn.Conv(features, kernel_size, strides, padding="SAME")`` computed by ``slice_conv``."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (*self.kernel_size, inputs.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return slice_conv(inputs, kernel, self.strides) + bias


def conv(
    features: int, kernel_size: tuple[int, int], strides: tuple[int, int], use_slices: bool
) -> nn.Module:
    """``Conv`` (slices + matmul) or ``nn.Conv`` (XLA's convolution), same parameters and function."""
    if use_slices:
        return Conv(features, kernel_size, strides)
    return nn.Conv(features, kernel_size, strides=strides, padding="SAME")


class MLP(nn.Module):
    """ReLU multi-layer perceptron on flattened images: ``[B, ...] -> logits [B, num_classes]``, one
    ``nn.Dense`` per entry of ``hidden`` then the output layer (parameters ``Dense_0`` ... ``Dense_{len}``)."""

    hidden: tuple[int, ...]
    num_classes: int

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        features = images.reshape(images.shape[0], -1)
        for width in self.hidden:
            features = nn.relu(nn.Dense(width)(features))
        return nn.Dense(self.num_classes)(features)
