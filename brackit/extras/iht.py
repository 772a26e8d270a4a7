"""L0-robust sparse Fourier transform by iterative hard thresholding (Bafna, Murtagh & Vyas, NeurIPS 2018).

Model (the paper's Section 3): an observed image ``y = x + e`` where ``x`` is k-sparse in the orthonormal
2-D DCT-II basis and ``e`` is t-sparse in pixels (an L0 adversary changes at most t pixels, by any amount).
Algorithm 1 (IHT) alternates

    a = H_k(DCT(y - e)),    e = H_t(y - IDCT(a)),

from ``e = 0``, where ``H_s`` keeps the s entries of largest magnitude. The defence (Section 5) trains a
classifier on the top-k DCT projections ``IDCT(H_k(DCT(x)))`` of clean images and, at test time, feeds it
``IDCT(a)`` recovered by IHT from the (possibly attacked) image.

Contents, top to bottom: transforms and thresholding (pure math) -> IHT -> synthetic recovery (phase
diagram) -> classifier -> L0 attacks (JSMA, greedy gradient, random) -> the defence experiment.

Departures from the paper, stated where they happen: the JSMA here changes one pixel per step (the paper's
JSMA, from Papernot et al. 2016, picks pixel pairs); the CW-L0 attack is not ported (a greedy gradient L0
attack and a random one stand in for it); the 5000-image MNIST subset replaces full MNIST; k, t and T are
our choices (``DefenseConfig``), not values read from the paper.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from brackit.config_checks import Rule, check_ranges
from brackit.errors import ConfigError
from brackit.extras.data import ImageDataset

# ----------------------------------------------------------------------------- transforms and thresholding


def dct_matrix(size: int) -> jax.Array:
    """The orthonormal DCT-II matrix ``C`` of order ``size``: ``C[f, i] = s_f cos(pi (2 i + 1) f / (2 size))``.

    ``s_0 = sqrt(1 / size)`` and ``s_f = sqrt(2 / size)`` otherwise, so that ``C @ C.T = I``.
    """
    frequency = np.arange(size)[:, None]
    position = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * position + 1) * frequency / (2 * size)) * np.sqrt(2.0 / size)
    matrix[0] /= np.sqrt(2.0)
    return jnp.asarray(matrix, dtype=jnp.float32)


def dct2(image: jax.Array) -> jax.Array:
    """Orthonormal 2-D DCT-II over the last two axes: ``[..., H, W] -> [..., H, W]`` (``C_H X C_W^T``).

    In full float32 precision: on NVIDIA GPUs the default matmul precision (TF32) leaves errors near 1e-3,
    which breaks IHT's exact recovery.
    """
    rows, cols = dct_matrix(image.shape[-2]), dct_matrix(image.shape[-1])
    return jnp.einsum("fh,...hw,gw->...fg", rows, image, cols, precision=jax.lax.Precision.HIGHEST)


def idct2(coefficients: jax.Array) -> jax.Array:
    """Inverse of ``dct2`` (its transpose, the basis being orthonormal): ``[..., H, W] -> [..., H, W]``.
    Full float32 precision, as ``dct2``."""
    rows, cols = dct_matrix(coefficients.shape[-2]), dct_matrix(coefficients.shape[-1])
    return jnp.einsum("fh,...fg,gw->...hw", rows, coefficients, cols, precision=jax.lax.Precision.HIGHEST)


def hard_threshold(values: jax.Array, count: int | jax.Array) -> jax.Array:
    """``H_count``: keep the ``count`` entries of ``values`` (any shape, one signal) largest in magnitude.

    Exactly ``count`` entries survive; ties are broken by the lower flat index. ``count`` may be traced,
    so one compiled program serves a whole grid of sparsities under ``vmap``.
    """
    flat = values.reshape(-1)
    order = jnp.argsort(-jnp.abs(flat), stable=True)
    rank = jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32))
    return jnp.where(rank < count, flat, 0.0).reshape(values.shape)


def project_top_k(image: jax.Array, k: int | jax.Array) -> jax.Array:
    """The top-k DCT projection ``IDCT(H_k(DCT(x)))`` of one image ``[H, W]``."""
    return idct2(hard_threshold(dct2(image), k))


# ----------------------------------------------------------------------------- IHT (Algorithm 1)


def iht(
    observed: jax.Array, k: int | jax.Array, t: int | jax.Array, num_iters: int
) -> tuple[jax.Array, jax.Array]:
    """Recover ``(a, e)`` with ``y ~= IDCT(a) + e`` from one image ``observed`` ``[H, W]``.

    ``a`` (``[H, W]``, DCT coefficients) is k-sparse and ``e`` (``[H, W]``, pixels) is t-sparse; ``num_iters``
    alternations starting from ``e = 0``.
    """

    def body(_, carry):
        _, noise = carry
        coefficients = hard_threshold(dct2(observed - noise), k)
        noise = hard_threshold(observed - idct2(coefficients), t)
        return coefficients, noise

    zeros = jnp.zeros_like(observed)
    return jax.lax.fori_loop(0, num_iters, body, (zeros, zeros))


@functools.partial(jax.jit, static_argnames="num_iters")
def iht_batch(
    observed: jax.Array, k: int | jax.Array, t: int | jax.Array, num_iters: int
) -> tuple[jax.Array, jax.Array]:
    """``iht`` over a batch ``[N, H, W]`` (same k, t for all), one jitted, vmapped program."""
    return jax.vmap(iht, in_axes=(0, None, None, None))(observed, k, t, num_iters)


@functools.partial(jax.jit, static_argnames="num_iters")
def iht_projection(observed: jax.Array, k: int, t: int, num_iters: int) -> jax.Array:
    """The defence's pre-processing: ``IDCT(a)`` from IHT on each image of ``[N, H, W]``."""
    coefficients, _ = jax.vmap(iht, in_axes=(0, None, None, None))(observed, k, t, num_iters)
    return idct2(coefficients)


# ----------------------------------------------------------------------------- synthetic recovery


@dataclasses.dataclass(frozen=True)
class RecoveryConfig:
    """The synthetic phase diagram: exact recovery of k-sparse (DCT) images under t spikes."""

    height: int = 28
    """Image height (pixels)."""
    width: int = 28
    """Image width (pixels)."""
    ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    """DCT sparsities on the grid."""
    ts: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    """Numbers of corrupted pixels on the grid."""
    trials: int = 20
    """Random problems per (k, t) cell."""
    num_iters: int = 50
    """IHT iterations T."""
    spike_scale: float = 5.0
    """Spike magnitudes are uniform in [1, spike_scale] times the largest clean pixel, random sign."""
    tolerance: float = 1e-3
    """A trial succeeds when ||a_hat - a|| <= tolerance ||a||."""
    seed: int = 0

    RANGES: ClassVar[dict[str, str]] = {  # checked by brackit.config_checks.check_ranges
        "height": ">= 1",
        "width": ">= 1",
        "ks": ">= 1",
        "ts": ">= 1",
        "trials": ">= 1",
        "num_iters": ">= 1",
        "spike_scale": ">= 1",
        "tolerance": "> 0",
    }
    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            ("ks", "ts", "height", "width"),
            lambda ks, ts, height, width: bool(ks and ts) and max(ks + ts) <= height * width,
            "need at least one k and one t, each at most height * width (the pixels)",
        ),
    )

    def __post_init__(self) -> None:
        check_ranges(self)


def sparse_problem(
    key: jax.Array, height: int, width: int, k: jax.Array, t: jax.Array, spike_scale: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One random problem: ``(y, a, e)`` with ``a`` k-sparse Gaussian DCT coefficients on a uniformly random
    support, ``e`` t spikes at random pixels, ``y = IDCT(a) + e``. Each is ``[height, width]``."""
    support_key, value_key, spike_key, magnitude_key, sign_key = jax.random.split(key, 5)
    size = height * width
    coefficient_rank = jnp.argsort(jax.random.uniform(support_key, (size,)))
    coefficients = jnp.where(coefficient_rank < k, jax.random.normal(value_key, (size,)), 0.0)
    coefficients = coefficients.reshape(height, width)
    clean = idct2(coefficients)
    spike_rank = jnp.argsort(jax.random.uniform(spike_key, (size,)))
    magnitude = jax.random.uniform(magnitude_key, (size,), minval=1.0, maxval=spike_scale)
    sign = jnp.where(jax.random.bernoulli(sign_key, 0.5, (size,)), 1.0, -1.0)
    noise = jnp.where(spike_rank < t, magnitude * sign * jnp.max(jnp.abs(clean)), 0.0)
    noise = noise.reshape(height, width)
    return clean + noise, coefficients, noise


def recovery_rates(config: RecoveryConfig) -> np.ndarray:
    """Fraction of exact recoveries ``[len(ks), len(ts)]``: the whole grid is one jitted program."""

    def trial(key, k, t):
        observed, coefficients, _ = sparse_problem(key, config.height, config.width, k, t, config.spike_scale)
        estimate, _ = iht(observed, k, t, config.num_iters)
        error = jnp.linalg.norm(estimate - coefficients) / jnp.linalg.norm(coefficients)
        return error <= config.tolerance

    ks, ts = np.meshgrid(np.asarray(config.ks), np.asarray(config.ts), indexing="ij")
    keys = jax.random.split(jax.random.key(config.seed), ks.size * config.trials)
    keys = keys.reshape(ks.size, config.trials)
    per_cell = jax.vmap(jax.vmap(trial, in_axes=(0, None, None)), in_axes=(0, 0, 0))
    success = jax.jit(per_cell)(keys, jnp.asarray(ks.ravel()), jnp.asarray(ts.ravel()))
    return np.asarray(success.mean(axis=1)).reshape(ks.shape)


def plot_phase_diagram(rates: np.ndarray, config: RecoveryConfig, path: str) -> None:
    """Heat map of ``recovery_rates`` (rows k, columns t) written to ``path`` (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.0, 4.2))
    image = axis.imshow(rates, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis")
    axis.set_xticks(range(len(config.ts)), [str(t) for t in config.ts])
    axis.set_yticks(range(len(config.ks)), [str(k) for k in config.ks])
    axis.set_xlabel("t (corrupted pixels)")
    axis.set_ylabel("k (DCT sparsity)")
    axis.set_title(f"IHT exact recovery, {config.height}x{config.width}, T={config.num_iters}")
    figure.colorbar(image, ax=axis, label="recovery rate")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


# ----------------------------------------------------------------------------- classifier


class MLPClassifier(nn.Module):
    """An MLP on flattened images: ``[N, H, W] -> logits [N, num_classes]``."""

    hidden: Sequence[int]
    num_classes: int

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        features = images.reshape(images.shape[0], -1)
        for width in self.hidden:
            features = nn.relu(nn.Dense(width)(features))
        return nn.Dense(self.num_classes)(features)


Logits = Callable[[jax.Array], jax.Array]


def train_classifier(
    model: MLPClassifier,
    images: jax.Array,
    labels: jax.Array,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    learning_rate: float,
):
    """Adam on softmax cross-entropy; every epoch is one ``lax.scan`` over shuffled minibatches.

    ``images``: ``[N, H, W]``; ``labels``: int ``[N]``. Returns the trained parameters.
    """
    init_key, key = jax.random.split(key)
    params = model.init(init_key, images[:1])
    optimizer = optax.adam(learning_rate)
    num_batches = images.shape[0] // batch_size

    def loss_fn(params, batch_images, batch_labels):
        logits = model.apply(params, batch_images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

    def epoch(carry, epoch_key):
        permutation = jax.random.permutation(epoch_key, images.shape[0])
        shuffled_images, shuffled_labels = images[permutation], labels[permutation]

        def step(carry, batch_index):
            params, opt_state = carry
            start = batch_index * batch_size
            batch_images = jax.lax.dynamic_slice_in_dim(shuffled_images, start, batch_size)
            batch_labels = jax.lax.dynamic_slice_in_dim(shuffled_labels, start, batch_size)
            grads = jax.grad(loss_fn)(params, batch_images, batch_labels)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, carry, jnp.arange(num_batches))[0], None

    run = jax.jit(lambda carry, keys: jax.lax.scan(epoch, carry, keys)[0])
    params, _ = run((params, optimizer.init(params)), jax.random.split(key, epochs))
    return params


def accuracy(logits_fn: Logits, images: jax.Array, labels: jax.Array) -> float:
    """Top-1 accuracy of ``logits_fn`` on ``images`` ``[N, H, W]``."""
    return float(jnp.mean(jnp.argmax(logits_fn(images), axis=-1) == labels))


# ----------------------------------------------------------------------------- L0 attacks


def _single(logits_fn: Logits) -> Callable[[jax.Array], jax.Array]:
    return lambda image: logits_fn(image[None])[0]


def _apply_best(
    image: jax.Array, changed: jax.Array, scores: jax.Array, active: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One greedy L0 step on ``image`` ``[H, W]``: ``scores`` ``[2, H*W]`` rate setting each pixel to 1 (row 0)
    or to 0 (row 1); the best finite one is applied and marked ``changed``, unless ``active`` is False."""
    num_pixels = image.size
    best = jnp.argmax(scores.reshape(-1))
    pixel, value = best % num_pixels, jnp.where(best < num_pixels, 1.0, 0.0)
    apply = active & jnp.isfinite(scores.reshape(-1)[best])
    flat_image, flat_changed = image.reshape(-1), changed.reshape(-1)
    flat_image = flat_image.at[pixel].set(jnp.where(apply, value, flat_image[pixel]))
    flat_changed = flat_changed.at[pixel].set(flat_changed[pixel] | apply)
    return flat_image.reshape(image.shape), flat_changed.reshape(changed.shape)


def _pair(to_one: jax.Array, to_zero: jax.Array) -> jax.Array:
    return jnp.stack([to_one.reshape(-1), to_zero.reshape(-1)])


def jsma_attack(logits_fn: Logits, image: jax.Array, target: jax.Array, budget: int) -> jax.Array:
    """Targeted JSMA (Papernot et al. 2016), one pixel per step, on one image ``[H, W]`` in [0, 1].

    Each step takes the Jacobian of the logits, ``alpha = dZ_target/dx`` and ``beta = sum_{j != target}
    dZ_j/dx``, and sets to 1 the unchanged pixel maximising ``alpha |beta|`` among those with ``alpha > 0,
    beta < 0`` (or to 0 the one maximising ``|alpha| beta`` with ``alpha < 0, beta > 0``). When no pixel
    meets the sign conditions it falls back to the first-order gain ``(alpha - beta)(v - x)``. It stops once
    the prediction is ``target`` or ``budget`` pixels have changed. Departure: single pixels, not pairs.
    """
    single = _single(logits_fn)

    def body(_, carry):
        adversarial, changed = carry
        active = jnp.argmax(single(adversarial)) != target
        jacobian = jax.jacrev(single)(adversarial)
        alpha = jacobian[target]
        beta = jacobian.sum(axis=0) - alpha
        free = ~changed
        increase = free & (adversarial < 1.0)
        decrease = free & (adversarial > 0.0)
        strict = _pair(
            jnp.where(increase & (alpha > 0) & (beta < 0), -alpha * beta, -jnp.inf),
            jnp.where(decrease & (alpha < 0) & (beta > 0), -alpha * beta, -jnp.inf),
        )
        first_order = _pair(
            jnp.where(increase, (alpha - beta) * (1.0 - adversarial), -jnp.inf),
            jnp.where(decrease, (alpha - beta) * (0.0 - adversarial), -jnp.inf),
        )
        scores = jnp.where(jnp.any(jnp.isfinite(strict)), strict, first_order)
        return _apply_best(adversarial, changed, scores, active)

    changed = jnp.zeros(image.shape, bool)
    return jax.lax.fori_loop(0, budget, body, (image, changed))[0]


def greedy_l0_attack(logits_fn: Logits, image: jax.Array, label: jax.Array, budget: int) -> jax.Array:
    """Untargeted greedy gradient L0 attack on one image ``[H, W]``: one gradient per step.

    The margin ``m(x) = Z_label - max_{j != label} Z_j`` is linearised; each step sets the unchanged pixel and
    value ``v`` in {0, 1} with the most negative first-order change ``(v - x_i) dm/dx_i``, until the prediction
    leaves ``label`` or ``budget`` pixels have changed.
    """
    single = _single(logits_fn)

    def margin(x):
        logits = single(x)
        return logits[label] - jnp.max(jnp.where(jnp.arange(logits.size) == label, -jnp.inf, logits))

    def body(_, carry):
        adversarial, changed = carry
        value, gradient = jax.value_and_grad(margin)(adversarial)
        free = ~changed
        scores = _pair(
            jnp.where(free, -(1.0 - adversarial) * gradient, -jnp.inf),
            jnp.where(free, -(0.0 - adversarial) * gradient, -jnp.inf),
        )
        return _apply_best(adversarial, changed, scores, value > 0)

    changed = jnp.zeros(image.shape, bool)
    return jax.lax.fori_loop(0, budget, body, (image, changed))[0]


def random_l0_attack(key: jax.Array, image: jax.Array, budget: int) -> jax.Array:
    """Flip ``budget`` uniformly chosen pixels of one image ``[H, W]`` to ``1 - round(x)`` (a model-free baseline)."""
    rank = jnp.argsort(jax.random.uniform(key, (image.size,))).reshape(image.shape)
    return jnp.where(rank < budget, 1.0 - jnp.round(image), image)


ATTACKS = ("jsma", "greedy", "random")


def make_attack(
    apply_fn: Callable[[object, jax.Array], jax.Array], attack: str, budget: int
) -> Callable[[object, jax.Array, jax.Array, jax.Array], jax.Array]:
    """A jitted ``run(params, images [N, H, W], labels [N], key) -> adversarial images [N, H, W]``.

    ``attack`` is one of ``ATTACKS``; each image gets at most ``budget`` changed pixels; the batch is vmapped.
    JSMA's target is drawn uniformly among the other classes with ``key``; the random attack uses ``key``.
    """
    if attack not in ATTACKS:
        raise ConfigError(f"attack must be one of {ATTACKS}, got {attack!r}")
    if budget < 0:
        raise ConfigError(f"attack budget must be >= 0, got {budget}")

    @jax.jit
    def run(params, images, labels, key):
        logits_fn = functools.partial(apply_fn, params)
        keys = jax.random.split(key, images.shape[0])
        if attack == "jsma":
            num_classes = jax.eval_shape(logits_fn, images[:1]).shape[-1]
            offsets = jax.vmap(lambda k: jax.random.randint(k, (), 1, num_classes))(keys)
            targets = (labels + offsets) % num_classes
            return jax.vmap(lambda x, y: jsma_attack(logits_fn, x, y, budget))(images, targets)
        if attack == "greedy":
            return jax.vmap(lambda x, y: greedy_l0_attack(logits_fn, x, y, budget))(images, labels)
        return jax.vmap(lambda k, x: random_l0_attack(k, x, budget))(keys, images)

    return run


# ----------------------------------------------------------------------------- the defence experiment


@dataclasses.dataclass(frozen=True)
class DefenseConfig:
    """The IHT defence on 28x28 MNIST digits (our choices of k, t, T; see the module docstring)."""

    k: int = 80
    """DCT sparsity of the classifier's inputs and of IHT."""
    t: int = 40
    """Pixels IHT may treat as corrupted (should be >= the attack budget)."""
    num_iters: int = 20
    """IHT iterations T."""
    hidden: tuple[int, ...] = (256, 256)
    """MLP widths."""
    epochs: int = 15
    batch_size: int = 100
    learning_rate: float = 1e-3
    attacks: tuple[str, ...] = ATTACKS
    budgets: tuple[int, ...] = (10, 20, 40)
    """L0 budgets (pixels) of every attack."""
    num_attack_images: int = 1000
    """Test images attacked (the first ones of the stratified test split)."""
    seed: int = 0

    RANGES: ClassVar[dict[str, str]] = {  # checked by brackit.config_checks.check_ranges
        "k": ">= 1",
        "t": ">= 0",
        "num_iters": ">= 1",
        "epochs": ">= 1",
        "budgets": ">= 0",
        "num_attack_images": ">= 1",
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown:
            raise ConfigError(f"DefenseConfig.attacks: unknown {sorted(unknown)}; choose from {ATTACKS}")


@dataclasses.dataclass(frozen=True)
class DefenseRow:
    """One line of the defence table: accuracies in [0, 1] on the attacked test images."""

    attack: str
    budget: int
    undefended: float
    """The classifier on the raw (attacked) image: the model the attacker targets."""
    defended: float
    """The same classifier on IHT's projection of the same attacked image."""


def run_defense(config: DefenseConfig, dataset: ImageDataset) -> tuple[list[DefenseRow], dict[str, float]]:
    """Train on top-k projections, attack the undefended classifier, evaluate both pipelines.

    Returns the table (first row: clean images) and metrics: ``clean/projection_accuracy`` (the classifier on
    exact top-k projections of the clean test images: the defence's ceiling) and ``train/accuracy``.
    """
    train_key, attack_key = jax.random.split(jax.random.key(config.seed))
    x_train = jnp.asarray(dataset.x_train[..., 0])
    project = jax.jit(jax.vmap(project_top_k, in_axes=(0, None)), static_argnums=1)
    model = MLPClassifier(hidden=config.hidden, num_classes=dataset.num_classes)
    train_projection = project(x_train, config.k)
    params = train_classifier(
        model,
        train_projection,
        jnp.asarray(dataset.y_train),
        train_key,
        config.epochs,
        config.batch_size,
        config.learning_rate,
    )
    logits_fn = functools.partial(model.apply, params)
    images = jnp.asarray(dataset.x_test[: config.num_attack_images, ..., 0])
    labels = jnp.asarray(dataset.y_test[: config.num_attack_images])

    def evaluate(name: str, budget: int, observed: jax.Array) -> DefenseRow:
        defended = iht_projection(observed, config.k, config.t, config.num_iters)
        return DefenseRow(
            name, budget, accuracy(logits_fn, observed, labels), accuracy(logits_fn, defended, labels)
        )

    rows = [evaluate("none", 0, images)]
    for attack in config.attacks:
        for budget in config.budgets:
            attack_key, key = jax.random.split(attack_key)
            adversarial = make_attack(model.apply, attack, budget)(params, images, labels, key)
            rows.append(evaluate(attack, budget, adversarial))
    metrics = {
        "clean/projection_accuracy": accuracy(logits_fn, project(images, config.k), labels),
        "train/accuracy": accuracy(logits_fn, train_projection, jnp.asarray(dataset.y_train)),
    }
    return rows, metrics
