"""brackit.extras.layers.Conv computes nn.Conv's function with nn.Conv's parameters; layers.MLP has the
parameters of the papers' MLPs."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from brackit.extras import fedavg, layers


@pytest.mark.parametrize(
    ("shape", "features", "kernel", "strides"),
    [
        ((28, 28, 1), 8, (5, 5), (1, 1)),  # the FedAvg CNN's first layer
        ((14, 13, 8), 16, (5, 5), (1, 1)),  # odd width
        ((32, 32, 3), 4, (3, 3), (2, 2)),  # the randomization / SimCLR encoders' layers
        ((15, 15, 2), 3, (3, 3), (2, 2)),  # odd size with a stride: uneven 'SAME' padding
        ((7, 9, 2), 3, (4, 2), (3, 2)),  # even, non-square kernel
    ],
)
def test_slice_conv_equals_nn_conv(shape, features, kernel, strides) -> None:
    x = jax.random.normal(jax.random.key(0), (2, *shape))
    reference = nn.Conv(features, kernel, strides=strides, padding="SAME")
    params = reference.init(jax.random.key(1), x)
    params = jax.tree.map(lambda leaf: leaf + 0.1, params)  # a nonzero bias too
    ours = layers.Conv(features, kernel, strides)
    assert jax.tree.map(np.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(np.shape, params)
    np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), atol=2e-5, rtol=1e-5)

    # Gradients with respect to the parameters and the input match too.
    def loss(module, params, x):
        return (module.apply(params, x) ** 2).sum()

    for argnum in (1, 2):
        got = jax.grad(loss, argnums=argnum)(ours, params, x)
        want = jax.grad(loss, argnums=argnum)(reference, params, x)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-4)


def test_fedavg_cnn_same_function_with_either_convolution() -> None:
    images = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
    sliced, plain = fedavg.CNN((4, 8, 16)), fedavg.CNN((4, 8, 16), use_slices=False)
    params = sliced.init(jax.random.key(1), images)
    assert jax.tree.structure(params) == jax.tree.structure(plain.init(jax.random.key(1), images))
    np.testing.assert_allclose(sliced.apply(params, images), plain.apply(params, images), atol=1e-5)
    with pytest.raises(ValueError, match="expected inputs"):
        layers.slice_conv(images[..., 0], params["params"]["Conv_0"]["kernel"])


def test_mlp_is_the_papers_2nn() -> None:
    """McMahan et al. (2017): the 2NN 784-200-200-10 has 199,210 parameters, in Dense_0 ... Dense_2."""
    params = fedavg.make_model(fedavg.FedConfig(model="2nn")).init(
        jax.random.key(0), np.zeros((1, 28, 28, 1))
    )
    shapes = jax.tree.map(np.shape, params["params"])
    assert shapes == {
        "Dense_0": {"kernel": (784, 200), "bias": (200,)},
        "Dense_1": {"kernel": (200, 200), "bias": (200,)},
        "Dense_2": {"kernel": (200, 10), "bias": (10,)},
    }
    assert (
        sum(np.prod(shape) for shape in jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple)))
        == 199_210
    )
