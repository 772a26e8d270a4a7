"""Randomization tests of generalization (Zhang, Bengio, Hardt, Recht & Vinyals 2017).

"Understanding deep learning requires rethinking generalization", ICLR 2017:

* Section 2 / Figure 1: the same networks that generalize on true labels also reach zero training error on
  partially corrupted labels (probability ``p``), random labels, shuffled pixels (one fixed permutation),
  random pixels (a permutation per image) and Gaussian images matching the data's mean and variance.
  Random labels take a small constant factor more steps; test error grows with ``p`` up to chance.
* Section 4, Theorem 1: a two-layer ReLU network with ``2n + d`` weights fits any labels on ``n`` points in
  ``d`` dimensions; :func:`fit_two_layer_relu` builds it (Lemma 1's lower-triangular system, in float64).
* Section 5: SGD from zero on a linear least-squares problem stays in the row space of the data, so when
  it interpolates it converges to the minimum-norm solution; :func:`sgd_min_norm` checks this against
  ``np.linalg.pinv``.

Everything that trains is a pure function of an explicit state; one jitted call runs a chunk of
``lax.scan`` steps, vmapped over runs (settings, corruption levels or seeds).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg

from brackit.config_checks import Rule, choice
from brackit.errors import ConfigError
from brackit.extras import layers
from brackit.extras.configs import CheckedConfig

ARCHITECTURES = ("mlp1x512", "mlp3x512", "cnn")
SETTINGS = ("true_labels", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")

# ----------------------------------------------------------------------------------------------------------
# Data transforms (Section 2). Pure functions of a key; images [N, H, W, C], labels [N] int32.
# ----------------------------------------------------------------------------------------------------------


def corrupt_labels(key: jax.Array, labels: np.ndarray, num_classes: int, probability: float) -> np.ndarray:
    """Replace each label, independently with probability ``p``, by a class drawn uniformly at random.

    The replacement may equal the true class, so the expected fraction of changed labels is
    ``p (K - 1) / K``, as in the paper. Labels are drawn once (fixed for the whole run).
    labels: [N] int -> [N] int32.
    """
    if not 0.0 <= probability <= 1.0:
        raise ConfigError(f"label corruption probability must be in [0, 1], got {probability}")
    if num_classes < 2:
        raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
    coin_key, class_key = jax.random.split(key)
    labels = np.asarray(labels, dtype=np.int32)
    replace = np.asarray(jax.random.uniform(coin_key, labels.shape) < probability)
    random_classes = np.asarray(jax.random.randint(class_key, labels.shape, 0, num_classes), dtype=np.int32)
    return np.where(replace, random_classes, labels).astype(np.int32)


def random_labels(key: jax.Array, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """All labels replaced by uniform random classes (``corrupt_labels`` with ``p = 1``)."""
    return corrupt_labels(key, labels, num_classes, 1.0)


def pixel_permutation(key: jax.Array, image_shape: tuple[int, ...]) -> np.ndarray:
    """One permutation of the ``H * W`` pixel positions (all channels of a pixel move together)."""
    height, width = image_shape[0], image_shape[1]
    return np.asarray(jax.random.permutation(key, height * width))


def shuffle_pixels(images: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Apply one fixed pixel permutation to every image: [N, H, W, C] -> [N, H, W, C].

    Use the same ``permutation`` (from :func:`pixel_permutation`) for the train and the test images.
    """
    images = np.asarray(images)
    n, height, width, channels = images.shape
    if permutation.shape != (height * width,):
        raise ConfigError(f"permutation has shape {permutation.shape}, expected ({height * width},)")
    flat = images.reshape(n, height * width, channels)
    return flat[:, permutation].reshape(images.shape)


def random_pixels(key: jax.Array, images: np.ndarray) -> np.ndarray:
    """Apply an independent random pixel permutation to each image: [N, H, W, C] -> [N, H, W, C]."""
    images = np.asarray(images)
    n, height, width, channels = images.shape
    keys = jax.random.split(key, n)
    permutations = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, height * width))(keys))
    flat = images.reshape(n, height * width, channels)
    return np.take_along_axis(flat, permutations[:, :, None], axis=1).reshape(images.shape)


def gaussian_images(key: jax.Array, images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Images of i.i.d. Gaussian pixels with the given mean and standard deviation (same shape, float32).

    Pass the mean and standard deviation of the original training images (one scalar each, as in the
    paper's "matching mean and variance"); values are not clipped to [0, 1].
    """
    noise = jax.random.normal(key, np.shape(images), dtype=jnp.float32)
    return np.asarray(mean + std * noise, dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class RandomizedData:
    """One randomization setting applied to a dataset (train inputs/labels changed, test labels true)."""

    setting: str
    x_train: np.ndarray  # [N, H, W, C] float32
    y_train: np.ndarray  # [N] int32
    x_test: np.ndarray  # [M, H, W, C] float32
    y_test: np.ndarray  # [M] int32


def apply_setting(
    key: jax.Array,
    setting: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    corruption: float = 0.0,
) -> RandomizedData:
    """Build one of the paper's settings; ``true_labels`` with ``corruption > 0`` gives partially corrupted labels.

    Image transforms are applied to train and test images alike (the shuffled-pixels permutation is
    shared); test labels always stay true, so test error measures generalization to the real task.
    """
    if setting not in SETTINGS:
        raise ConfigError(f"unknown setting {setting!r}; choose one of {', '.join(SETTINGS)}")
    label_key, train_key, test_key = jax.random.split(key, 3)
    x_train = np.asarray(x_train, np.float32)
    x_test = np.asarray(x_test, np.float32)
    y_train = np.asarray(y_train, np.int32)
    if setting == "true_labels":
        y_train = corrupt_labels(label_key, y_train, num_classes, corruption)
    elif setting == "random_labels":
        y_train = random_labels(label_key, y_train, num_classes)
    elif setting == "shuffled_pixels":
        permutation = pixel_permutation(train_key, x_train.shape[1:])
        x_train, x_test = shuffle_pixels(x_train, permutation), shuffle_pixels(x_test, permutation)
    elif setting == "random_pixels":
        x_train, x_test = random_pixels(train_key, x_train), random_pixels(test_key, x_test)
    else:  # gaussian
        mean, std = float(x_train.mean()), float(x_train.std())
        x_train = gaussian_images(train_key, x_train, mean, std)
        x_test = gaussian_images(test_key, x_test, mean, std)
    return RandomizedData(setting, x_train, y_train, x_test, np.asarray(y_test, np.int32))


# ----------------------------------------------------------------------------------------------------------
# Networks and the scanned training loop (Figure 1).
# ----------------------------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """A small convolutional net (two strided 3x3 convs, one dense layer); a CPU-sized stand-in for the
    paper's small Inception / AlexNet."""

    num_classes: int
    channels: tuple[int, int] = (32, 64)
    dense: int = 128
    use_slices: bool = True  # convolutions as slices + matmul (brackit.extras.layers); False: nn.Conv

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        """images: [B, H, W, C] -> logits [B, K]."""
        x = images
        for channels in self.channels:
            x = nn.relu(layers.conv(channels, (3, 3), (2, 2), self.use_slices)(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.dense)(x))
        return nn.Dense(self.num_classes)(x)


def make_network(architecture: str, num_classes: int) -> nn.Module:
    """``mlp1x512``, ``mlp3x512`` (``layers.MLP``, the paper's MLP 1x512 and 3x512) or ``cnn``."""
    if architecture == "mlp1x512":
        return layers.MLP((512,), num_classes)
    if architecture == "mlp3x512":
        return layers.MLP((512, 512, 512), num_classes)
    if architecture == "cnn":
        return SmallCNN(num_classes)
    raise ConfigError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


@dataclasses.dataclass(frozen=True)
class FitConfig(CheckedConfig):
    """How to train a classifier to zero training error."""

    architecture: str = "mlp1x512"
    """Network: ``mlp1x512``, ``mlp3x512`` or ``cnn``."""
    learning_rate: float = 0.01
    """SGD step size (the paper uses SGD with momentum 0.9, initial rate 0.01 or 0.1)."""
    momentum: Annotated[float, "[0, 1)"] = 0.9
    """Heavy-ball momentum."""
    batch_size: int = 128
    """Minibatch size; minibatches are drawn uniformly (with replacement) on the device."""
    chunk_steps: Annotated[int, ">= 1"] = 100
    """Steps per jitted ``lax.scan`` chunk; training error on the whole train set is measured after each."""
    max_steps: Annotated[int, ">= 1"] = 20_000
    """Give up after this many steps (a run that has not fitted reports ``steps_to_fit = -1``)."""
    eval_block: Annotated[int, ">= 1"] = 1000
    """Images per block when measuring errors on a whole set (bounds memory for the CNN)."""
    unroll: bool = False
    """Unroll the chunk's ``lax.scan`` completely. XLA on CPU ran ``nn.Conv`` gradients about 10x slower
    inside a loop body than outside one; the CNN's slices + matmul convolutions (``brackit.extras.layers``)
    do not need this any more."""
    vmap_runs: bool = True
    """Train the runs side by side with ``jax.vmap``; if False, one after the other with the same compiled
    chunk (on CPU, vmapping ``nn.Conv`` over parameters becomes a slow grouped convolution; the slices
    convolution vmaps into batched matmuls)."""

    RULES: ClassVar[tuple[Rule, ...]] = (choice("architecture", ARCHITECTURES),)


@flax.struct.dataclass
class FitState:
    """Everything one training run carries: parameters, optimizer state, step and key."""

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean softmax cross-entropy. logits: [B, K], labels: [B] int -> (loss, metrics)."""
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    error = jnp.mean(jnp.argmax(logits, -1) != labels)
    return loss, {"train/loss": loss, "train/batch_error": error}


def error_rate(apply: Callable, params: Any, images: jax.Array, labels: jax.Array, block: int) -> jax.Array:
    """Classification error on a whole set, evaluated ``block`` images at a time (images padded, masked)."""
    n = images.shape[0]
    num_blocks = -(-n // block)
    pad = num_blocks * block - n
    images = jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1))
    labels = jnp.pad(labels, (0, pad))
    mask = jnp.arange(num_blocks * block) < n

    def block_errors(args: tuple[jax.Array, jax.Array]) -> jax.Array:
        x, y = args
        return (jnp.argmax(apply(params, x), -1) != y).astype(jnp.float32)

    wrong = jax.lax.map(
        block_errors,
        (images.reshape(num_blocks, block, *images.shape[1:]), labels.reshape(num_blocks, block)),
    )
    return jnp.sum(wrong.reshape(-1) * mask) / n


def make_fit(config: FitConfig, num_classes: int, image_shape: tuple[int, ...]):
    """Return pure ``init(key) -> state`` and ``chunk(state, x, y, x_test, y_test) -> (state, metrics)``.

    ``chunk`` runs ``config.chunk_steps`` SGD steps in one ``lax.scan`` and then measures the error on the
    whole train and test sets. metrics: ``train/loss`` [chunk_steps], ``train/error`` [], ``test/error`` [].
    Both functions vmap over a leading run axis.
    """
    network = make_network(config.architecture, num_classes)
    optimizer = optax.sgd(config.learning_rate, momentum=config.momentum)

    def init(key: jax.Array) -> FitState:
        key, init_key = jax.random.split(key)
        params = network.init(init_key, jnp.zeros((1, *image_shape), jnp.float32))
        return FitState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key)

    def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        return cross_entropy_loss(network.apply(params, x), y)

    def update_step(state: FitState, x: jax.Array, y: jax.Array) -> tuple[FitState, dict[str, jax.Array]]:
        key, batch_key = jax.random.split(state.key)
        index = jax.random.randint(batch_key, (config.batch_size,), 0, x.shape[0])
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, x[index], y[index])
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return FitState(params, opt_state, state.step + 1, key), metrics

    def chunk(state: FitState, x: jax.Array, y: jax.Array, x_test: jax.Array, y_test: jax.Array):
        state, metrics = jax.lax.scan(
            lambda s, _: update_step(s, x, y), state, None, length=config.chunk_steps, unroll=config.unroll
        )
        metrics = {"train/loss": metrics["train/loss"]}
        metrics["train/error"] = error_rate(network.apply, state.params, x, y, config.eval_block)
        metrics["test/error"] = error_rate(network.apply, state.params, x_test, y_test, config.eval_block)
        return state, metrics

    return init, chunk


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Curves of ``R`` runs trained side by side (vmapped)."""

    steps: np.ndarray  # [T] step index of each loss entry (1-based)
    loss: np.ndarray  # [R, T] minibatch training loss per step
    chunk_steps: np.ndarray  # [C] steps done at the end of each chunk
    train_error: np.ndarray  # [R, C] error on the whole train set after each chunk
    test_error: np.ndarray  # [R, C]
    steps_to_fit: np.ndarray  # [R] first chunk end with zero train error; -1 if never
    test_error_at_fit: np.ndarray  # [R] test error at that chunk (at the last chunk if never fitted)
    seconds: float


def fit_to_zero(
    config: FitConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    keys: jax.Array,
    num_classes: int,
    stop_when_fitted: bool = True,
) -> FitResult:
    """Train ``R`` runs until every run has zero training error (or ``config.max_steps``).

    x_train: [R, N, H, W, C], y_train: [R, N], x_test: [R, M, H, W, C], y_test: [R, M], keys: [R].
    One jitted call per chunk, vmapped over the runs (or, with ``vmap_runs=False``, the same compiled
    chunk called run by run); the Python loop only decides when to stop.
    """
    runs = keys.shape[0]
    for name, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        if array.shape[0] != runs:
            raise ConfigError(f"{name} has {array.shape[0]} runs on its leading axis, keys has {runs}")
    init, chunk = _compiled(config, num_classes, tuple(x_train.shape[2:]))
    start = time.perf_counter()
    if config.vmap_runs:
        data = [jnp.asarray(x_train), jnp.asarray(y_train), jnp.asarray(x_test), jnp.asarray(y_test)]
        histories = [_train_runs(config, init, chunk, keys, data, stop_when_fitted)]
    else:
        histories = []
        for run in range(runs):
            data = [jnp.asarray(a[run]) for a in (x_train, y_train, x_test, y_test)]
            histories.append(_train_runs(config, init, chunk, keys[run], data, stop_when_fitted))
        # Runs may stop at different chunks: pad each run's curves with its last value.
        length = max(len(h["ends"]) for h in histories)
        for h in histories:
            pad = length - len(h["ends"])
            for name, width in (
                ("loss", pad * config.chunk_steps),
                ("train_error", pad),
                ("test_error", pad),
            ):
                h[name] = np.concatenate([h[name], np.repeat(h[name][:, -1:], width, axis=1)], axis=1)
            h["ends"] = np.arange(1, length + 1) * config.chunk_steps
    seconds = time.perf_counter() - start
    ends = histories[0]["ends"]
    loss = np.concatenate([h["loss"] for h in histories], 0)
    train_error = np.concatenate([h["train_error"] for h in histories], 0)
    test_error = np.concatenate([h["test_error"] for h in histories], 0)
    zero = train_error == 0
    first = np.where(zero.any(1), zero.argmax(1), len(ends) - 1)
    return FitResult(
        steps=np.arange(1, loss.shape[1] + 1),
        loss=loss,
        chunk_steps=ends,
        train_error=train_error,
        test_error=test_error,
        steps_to_fit=np.where(zero.any(1), ends[first], -1),
        test_error_at_fit=test_error[np.arange(runs), first],
        seconds=seconds,
    )


@functools.cache
def _compiled(config: FitConfig, num_classes: int, image_shape: tuple[int, ...]) -> tuple[Callable, Callable]:
    """Jitted (and, with ``vmap_runs``, vmapped) ``init`` and ``chunk``, cached so repeated fits reuse them."""
    init, chunk = make_fit(config, num_classes, image_shape)
    if config.vmap_runs:
        init, chunk = jax.vmap(init), jax.vmap(chunk)
    return jax.jit(init), jax.jit(chunk)


def _train_runs(
    config: FitConfig, init: Callable, chunk: Callable, keys: jax.Array, data: list, stop_when_fitted: bool
) -> dict[str, np.ndarray]:
    """Chunks until all runs in ``state`` fitted; curves with a leading run axis (added if single)."""
    state = init(keys)
    losses, train_errors, test_errors, ends = [], [], [], []
    done = 0
    while done < config.max_steps:
        state, metrics = chunk(state, *data)
        done += config.chunk_steps
        losses.append(np.atleast_2d(np.asarray(metrics["train/loss"])))
        train_errors.append(np.atleast_1d(np.asarray(metrics["train/error"])))
        test_errors.append(np.atleast_1d(np.asarray(metrics["test/error"])))
        ends.append(done)
        if stop_when_fitted and (np.stack(train_errors, 1) == 0).any(1).all():
            break
    return {
        "loss": np.concatenate(losses, 1),
        "train_error": np.stack(train_errors, 1),
        "test_error": np.stack(test_errors, 1),
        "ends": np.asarray(ends),
    }


# ----------------------------------------------------------------------------------------------------------
# Theorem 1: finite-sample expressivity with 2n + d weights (Section 4, Lemma 1).
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TwoLayerReLU:
    """``c(x) = sum_j w_j max(<a, x> - b_j, 0)``: a depth-two ReLU network with ``d + n + n`` weights."""

    direction: np.ndarray  # a: [d]
    thresholds: np.ndarray  # b: [n], increasing
    weights: np.ndarray  # w: [n]

    @property
    def num_parameters(self) -> int:
        """``d + 2 n``: the direction ``a``, the thresholds ``b`` and the output weights ``w``."""
        return self.direction.size + self.thresholds.size + self.weights.size

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """The hidden layer ``A_ij = max(<a, x_i> - b_j, 0)``: x [m, d] -> [m, n] float64."""
        z = np.asarray(x, np.float64).reshape(len(x), -1) @ self.direction
        return np.maximum(z[:, None] - self.thresholds[None, :], 0.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: [m, d] -> [m] float64."""
        return self.hidden(x) @ self.weights

    def rounding_bound(self, x: np.ndarray) -> np.ndarray:
        """The most float64 rounding can move ``c(x_i)`` from ``y_i`` on the points it was fitted to:
        ``2 gamma_n (|A| |w|)_i`` with ``gamma_n = n u / (1 - n u)``, ``u`` the unit roundoff. Substitution
        solves the triangular system with a backward error ``|dA| <= gamma_n |A|`` (Higham 2002, "Accuracy
        and Stability of Numerical Algorithms", Theorem 8.5), so ``|y - A w| <= gamma_n |A| |w|``, and the
        product ``A w`` adds at most as much again (Higham 2002, Section 3.1). Nearly equal projections
        make ``A``'s diagonal small and ``w`` large: the bound grows with them. x: [m, d] -> [m] float64."""
        hidden = self.hidden(x)
        n_u = hidden.shape[1] * np.finfo(np.float64).eps / 2
        return 2 * n_u / (1 - n_u) * (np.abs(hidden) @ np.abs(self.weights))


def fit_two_layer_relu(x: np.ndarray, y: np.ndarray, seed: int = 0, max_tries: int = 10) -> TwoLayerReLU:
    """Construct the network of Theorem 1 that interpolates ``y`` on ``x`` exactly (in float64).

    x: [n, ...] (flattened to [n, d]), y: [n] real targets (e.g. class indices). A random Gaussian ``a``
    gives distinct projections ``z_i = <a, x_i>`` with probability one for distinct points; with ``z``
    sorted, thresholds ``b_1 < z_1 < b_2 < z_2 < ... < b_n < z_n`` (midpoints) make
    ``A_ij = max(z_i - b_j, 0)`` lower triangular with a positive diagonal, and ``w = A^-1 y``.
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64)
    n, d = x.shape
    if y.shape != (n,):
        raise ConfigError(f"y has shape {y.shape}, expected ({n},)")
    if len(np.unique(x, axis=0)) < n:
        raise ConfigError("x has repeated rows: no function fits different labels on identical points")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        direction = rng.standard_normal(d)
        z = x @ direction
        order = np.argsort(z)
        z_sorted = z[order]
        gaps = np.diff(z_sorted)
        if n == 1 or gaps.min() > 1e-9 * max(1.0, np.abs(z_sorted).max()):
            break
    else:
        raise ConfigError("could not find a direction with distinct projections; are the points distinct?")
    first_gap = gaps.min() if n > 1 else 1.0
    thresholds = np.concatenate([[z_sorted[0] - first_gap], (z_sorted[1:] + z_sorted[:-1]) / 2])
    system = np.maximum(z_sorted[:, None] - thresholds[None, :], 0.0)  # lower triangular
    weights = scipy.linalg.solve_triangular(system, y[order], lower=True)
    return TwoLayerReLU(direction, thresholds, weights)


# ----------------------------------------------------------------------------------------------------------
# Implicit regularization (Section 5): SGD on least squares from zero finds the minimum-norm interpolant.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MinNormResult:
    """SGD solution of an under-determined least-squares problem, compared with ``pinv(X) y``."""

    sgd_weights: np.ndarray  # [d]
    min_norm_weights: np.ndarray  # [d]
    relative_distance: float  # ||w_sgd - w_pinv|| / ||w_pinv||
    relative_residual: float  # ||X w_sgd - y|| / ||y||
    sgd_norm: float
    min_norm: float


def sgd_least_squares(
    key: jax.Array,
    x: jax.Array,
    y: jax.Array,
    init: jax.Array,
    learning_rate: float,
    batch_size: int,
    steps: int,
) -> jax.Array:
    """Minibatch SGD on ``0.5 mean (x w - y)^2`` from ``init``; one ``lax.scan``. x: [n, d], y: [n] -> w: [d]."""

    def step(weights: jax.Array, step_key: jax.Array) -> tuple[jax.Array, None]:
        index = jax.random.randint(step_key, (batch_size,), 0, x.shape[0])
        residual = x[index] @ weights - y[index]
        return weights - learning_rate * x[index].T @ residual / batch_size, None

    weights, _ = jax.lax.scan(step, init, jax.random.split(key, steps))
    return weights


@functools.cache
def _jitted_sgd_least_squares() -> Callable:
    """``sgd_least_squares`` jitted once per process (its compilations cached across calls)."""
    return jax.jit(sgd_least_squares, static_argnames=("learning_rate", "batch_size", "steps"))


def sgd_min_norm(
    seed: int = 0,
    num_samples: int = 40,
    dim: int = 200,
    learning_rate: float = 0.5,
    batch_size: int = 8,
    steps: int = 5000,
    init_scale: float = 0.0,
) -> MinNormResult:
    """SGD from ``init_scale * N(0, I / d)`` on a random problem with ``d > n``; compare with ``pinv``.

    From zero (``init_scale = 0``) the iterates stay in the row space of ``X`` and converge to the minimum
    norm interpolant; a non-zero start keeps its null-space component, so the distance stays positive.
    """
    if dim <= num_samples:
        raise ConfigError(f"dim ({dim}) must exceed num_samples ({num_samples}) to be over-parameterized")
    data_key, init_key, sgd_key = jax.random.split(jax.random.key(seed), 3)
    x_key, y_key = jax.random.split(data_key)
    x = jax.random.normal(x_key, (num_samples, dim)) / np.sqrt(dim)
    y = jax.random.normal(y_key, (num_samples,))
    init = init_scale * jax.random.normal(init_key, (dim,)) / np.sqrt(dim)
    weights = np.asarray(
        _jitted_sgd_least_squares()(sgd_key, x, y, init, learning_rate, batch_size, steps), np.float64
    )
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    min_norm_weights = np.linalg.pinv(x64) @ y64
    return MinNormResult(
        sgd_weights=weights,
        min_norm_weights=min_norm_weights,
        relative_distance=float(
            np.linalg.norm(weights - min_norm_weights) / np.linalg.norm(min_norm_weights)
        ),
        relative_residual=float(np.linalg.norm(x64 @ weights - y64) / np.linalg.norm(y64)),
        sgd_norm=float(np.linalg.norm(weights)),
        min_norm=float(np.linalg.norm(min_norm_weights)),
    )
