"""L0-robust sparse Fourier transform by iterative hard thresholding (Bafna, Murtagh & Vyas, NeurIPS 2018).

Model (the paper's Section 3): an observed image ``y = x + e`` where ``x`` is k-sparse in the orthonormal
2-D DCT-II basis and ``e`` is t-sparse in pixels (an L0 adversary changes at most t pixels, by any amount).
Algorithm 1 (IHT) alternates

    a = H_k(DCT(y - e)),    e = H_t(y - IDCT(a)),

from ``e = 0``, where ``H_s`` keeps the s entries of largest magnitude. The defence (Section 5) trains a
classifier on the top-k DCT projections ``IDCT(H_k(DCT(x)))`` of clean images and, at test time, feeds it
``IDCT(a)`` recovered by IHT from the (possibly attacked) image.

Contents, top to bottom: transforms and thresholding (pure math) -> IHT -> synthetic recovery (phase
diagram) -> classifier -> L0 attacks -> the defence experiment.

The attacks (``ATTACKS``). The paper's two (Section 5): the JSMA of Papernot et al. (2016) with its saliency
map over pixel pairs (``jsma_pairs_attack``) and the L0 attack of Carlini & Wagner (2017)
(``cw_l0_attack``; where it departs from theirs, to fit a CPU budget, is listed in its docstring). Extra rows
beside them, not from the paper: a one-pixel-per-step JSMA (``jsma_single_attack``), a greedy gradient L0
attack (``greedy_l0_attack``) and random pixel flips (``random_l0_attack``). All of these see only the
undefended classifier, the paper's threat model. Beyond the paper, the adaptive attack
(``adaptive_l0_attack``): the greedy attack run on the whole defended pipeline (IHT then classifier), IHT's
backward pass replaced in the manner of BPDA (Athalye, Carlini & Wagner 2018, Section 4.1).

Other departures from the paper: the 5000-image MNIST subset replaces full MNIST; k, t and T are our
choices (``DefenseConfig``), not values read from the paper; the classifier is an MLP.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from brackit.config_checks import Rule
from brackit.errors import ConfigError
from brackit.extras.configs import CheckedConfig
from brackit.extras.data import ImageDataset
from brackit.extras.layers import MLP

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
    so one compiled program serves a whole grid of sparsities under ``vmap``; a Python ``int`` takes
    ``jax.lax.top_k`` instead of a full sort (several times faster on CPU; the same entries survive).
    """
    flat = values.reshape(-1)
    if isinstance(count, int):
        if count <= 0 or count >= flat.size:
            return values if count > 0 else jnp.zeros_like(values)
        _, kept = jax.lax.top_k(jnp.abs(flat), count)  # equal magnitudes: the lower index first
        return jnp.where(jnp.zeros(flat.shape, bool).at[kept].set(True), flat, 0.0).reshape(values.shape)
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


@functools.partial(jax.jit, static_argnames=("k", "t", "num_iters"))
def iht_projection(observed: jax.Array, k: int, t: int, num_iters: int) -> jax.Array:
    """The defence's pre-processing: ``IDCT(a)`` from IHT on each image of ``[N, H, W]`` (``k`` and ``t``
    static: ``hard_threshold``'s fast path)."""
    coefficients, _ = jax.vmap(iht, in_axes=(0, None, None, None))(observed, k, t, num_iters)
    return idct2(coefficients)


# ----------------------------------------------------------------------------- synthetic recovery


@dataclasses.dataclass(frozen=True)
class RecoveryConfig(CheckedConfig):
    """The synthetic phase diagram: exact recovery of k-sparse (DCT) images under t spikes."""

    height: Annotated[int, ">= 1"] = 28
    """Image height (pixels)."""
    width: Annotated[int, ">= 1"] = 28
    """Image width (pixels)."""
    ks: Annotated[tuple[int, ...], ">= 1"] = (1, 2, 4, 8, 16, 32, 64)
    """DCT sparsities on the grid."""
    ts: Annotated[tuple[int, ...], ">= 1"] = (1, 2, 4, 8, 16, 32, 64)
    """Numbers of corrupted pixels on the grid."""
    trials: Annotated[int, ">= 1"] = 20
    """Random problems per (k, t) cell."""
    num_iters: Annotated[int, ">= 1"] = 50
    """IHT iterations T."""
    spike_scale: Annotated[float, ">= 1"] = 5.0
    """Spike magnitudes are uniform in [1, spike_scale] times the largest clean pixel, random sign."""
    tolerance: Annotated[float, "> 0"] = 1e-3
    """A trial succeeds when ||a_hat - a|| <= tolerance ||a||."""
    seed: int = 0

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            ("ks", "ts", "height", "width"),
            lambda ks, ts, height, width: bool(ks and ts) and max(ks + ts) <= height * width,
            "need at least one k and one t, each at most height * width (the pixels)",
        ),
    )


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


@functools.partial(jax.jit, static_argnames="config")
def _recovery_success(keys: jax.Array, ks: jax.Array, ts: jax.Array, config: RecoveryConfig) -> jax.Array:
    """Success of each trial ``[cells, trials]``; ``keys`` ``[cells, trials]``, ``ks``/``ts`` ``[cells]``.
    ``config`` is static (its seed unused): every seed of a study shares one compiled program."""

    def trial(key, k, t):
        observed, coefficients, _ = sparse_problem(key, config.height, config.width, k, t, config.spike_scale)
        estimate, _ = iht(observed, k, t, config.num_iters)
        error = jnp.linalg.norm(estimate - coefficients) / jnp.linalg.norm(coefficients)
        return error <= config.tolerance

    return jax.vmap(jax.vmap(trial, in_axes=(0, None, None)), in_axes=(0, 0, 0))(keys, ks, ts)


def recovery_rates(config: RecoveryConfig) -> np.ndarray:
    """Fraction of exact recoveries ``[len(ks), len(ts)]``: the whole grid is one jitted program."""
    ks, ts = np.meshgrid(np.asarray(config.ks), np.asarray(config.ts), indexing="ij")
    keys = jax.random.split(jax.random.key(config.seed), ks.size * config.trials)
    keys = keys.reshape(ks.size, config.trials)
    unseeded = dataclasses.replace(config, seed=0)
    success = _recovery_success(keys, jnp.asarray(ks.ravel()), jnp.asarray(ts.ravel()), unseeded)
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


# ----------------------------------------------------------------------------- classifier (``layers.MLP``)


Logits = Callable[[jax.Array], jax.Array]


@functools.partial(jax.jit, static_argnames=("model", "epochs", "batch_size", "learning_rate"))
def train_classifier(
    model: MLP,
    images: jax.Array,
    labels: jax.Array,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    learning_rate: float,
):
    """Adam on softmax cross-entropy; every epoch is one ``lax.scan`` over shuffled minibatches.

    ``images``: ``[N, H, W]``; ``labels``: int ``[N]``. Returns the trained parameters. One jitted program,
    compiled once for the same model and sizes (every seed of a study).
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

    params, _ = jax.lax.scan(epoch, (params, optimizer.init(params)), jax.random.split(key, epochs))[0]
    return params


def accuracy(logits_fn: Logits, images: jax.Array, labels: jax.Array) -> float:
    """Top-1 accuracy of ``logits_fn`` on ``images`` ``[N, H, W]``."""
    return float(jnp.mean(jnp.argmax(logits_fn(images), axis=-1) == labels))


# ----------------------------------------------------------------------------- L0 attacks

ATTACK_CHUNK = 50
"""Images attacked at once (``jax.lax.map``'s batch): bounds the memory of the pair saliency map, ``[n, n]``
floats per image. A speed knob only: every image is attacked independently."""


def _single(logits_fn: Logits) -> Callable[[jax.Array], jax.Array]:
    return lambda image: logits_fn(image[None])[0]


def _margin(logits: jax.Array, label: jax.Array) -> jax.Array:
    """``Z_label - max_{j != label} Z_j`` of one logit vector ``[C]``: positive while ``label`` is predicted."""
    others = jnp.where(jnp.arange(logits.size) == label, -jnp.inf, logits)
    return logits[label] - jnp.max(others)


def _with_snapshots(
    body: Callable[[tuple], tuple[tuple, jax.Array]], carry: tuple, image: jax.Array, steps: Sequence[int]
) -> jax.Array:
    """Runs ``carry, active = body(carry)`` up to ``max(steps)`` times (``carry[0]``: the current image
    ``[H, W]``; ``active``: whether the step changed it) and returns ``[len(steps), H, W]``, the image after
    ``steps[j]`` steps. A greedy attack's first s steps do not depend on how many follow, so one run gives its
    result at every L0 budget; it ends at the first inactive step (later steps would change nothing)."""
    marks = jnp.asarray(steps, jnp.int32)
    snapshots = jnp.broadcast_to(image, (len(steps), *image.shape))

    def cond(state):
        step, _, _, active = state
        return (step < max(steps, default=0)) & active

    def loop(state):
        step, carry, snapshots, _ = state
        carry, active = body(carry)
        snapshots = jnp.where((marks == step + 1)[:, None, None], carry[0][None], snapshots)
        return step + 1, carry, snapshots, active

    step, carry, snapshots, _ = jax.lax.while_loop(
        cond, loop, (jnp.int32(0), carry, snapshots, jnp.array(True))
    )
    return jnp.where((marks > step)[:, None, None], carry[0][None], snapshots)


def _apply_best(
    image: jax.Array, changed: jax.Array, scores: jax.Array, active: jax.Array
) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """One greedy L0 step on ``image`` ``[H, W]``: ``scores`` ``[2, H*W]`` rate setting each pixel to 1 (row 0)
    or to 0 (row 1); the best finite one is applied and marked ``changed``, unless ``active`` is False.
    Returns ``((image, changed), applied)``."""
    num_pixels = image.size
    best = jnp.argmax(scores.reshape(-1))
    pixel, value = best % num_pixels, jnp.where(best < num_pixels, 1.0, 0.0)
    apply = active & jnp.isfinite(scores.reshape(-1)[best])
    flat_image, flat_changed = image.reshape(-1), changed.reshape(-1)
    flat_image = flat_image.at[pixel].set(jnp.where(apply, value, flat_image[pixel]))
    flat_changed = flat_changed.at[pixel].set(flat_changed[pixel] | apply)
    return (flat_image.reshape(image.shape), flat_changed.reshape(changed.shape)), apply


def _pair(to_one: jax.Array, to_zero: jax.Array) -> jax.Array:
    return jnp.stack([to_one.reshape(-1), to_zero.reshape(-1)])


def _first_order_scores(image: jax.Array, changed: jax.Array, gradient: jax.Array) -> jax.Array:
    """``[2, H*W]``: minus the first-order change of a function with gradient ``gradient`` when an unchanged
    pixel is set to 1 (row 0) or 0 (row 1); ``-inf`` for the pixels already changed."""
    free = ~changed
    return _pair(
        jnp.where(free, -(1.0 - image) * gradient, -jnp.inf),
        jnp.where(free, -(0.0 - image) * gradient, -jnp.inf),
    )


def pair_saliency(alpha: jax.Array, beta: jax.Array, domain: jax.Array) -> jax.Array:
    """The saliency map over pixel pairs of Papernot et al. (2016), Algorithm 3 (increasing pixels).

    ``alpha``: ``[n]``, the derivative of the target's logit in each pixel; ``beta``: ``[n]``, the sum of the
    other logits' derivatives; ``domain``: bool ``[n]``, the search domain. Returns ``[n, n]``: for a pair
    ``p != q`` of the domain, with ``A = alpha_p + alpha_q`` and ``B = beta_p + beta_q``, the saliency
    ``-A * B`` where ``A > 0`` and ``B < 0``, and ``-inf`` for every other pair.
    """
    alpha = jnp.where(domain, alpha, -jnp.inf)  # outside the domain A = -inf, which fails A > 0
    a = alpha[:, None] + alpha[None, :]
    b = beta[:, None] + beta[None, :]
    index = jnp.arange(alpha.size)
    return jnp.where((a > 0) & (b < 0) & (index[:, None] != index[None, :]), -a * b, -jnp.inf)


def _best_pair(scores: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(p, q, scores[p, q])`` for the first largest entry of ``scores`` ``[n, n]`` in row-major order (the
    flat argmax, taken row by row: a flat argmax over n^2 entries is many times slower on XLA's CPU)."""
    row = jnp.argmax(jnp.max(scores, axis=1))
    column = jnp.argmax(scores[row])
    return row, column, scores[row, column]


def jsma_pairs_attack(
    logits_fn: Logits, image: jax.Array, target: jax.Array, budgets: Sequence[int]
) -> jax.Array:
    """Targeted JSMA of Papernot et al. (2016): Algorithm 2 with the pair saliency map of Algorithm 3, on one
    image ``[H, W]`` in [0, 1]. Returns ``[len(budgets), H, W]``: the attacked image for each L0 budget.

    The search domain starts as the pixels below 1 (the ones that can still increase). Each step takes the
    Jacobian of the logits (the variant Carlini & Wagner 2017 call JSMA-Z), picks the pair of the domain with
    the largest ``pair_saliency`` (ties: the lowest flat index), raises both pixels by theta = +1 clipped to
    the pixel range, i.e. sets them to 1, and removes them from the domain. It stops once the prediction is
    ``target``, once no pair meets the sign conditions (Algorithm 3 then has no pair to return) or after
    ``budget // 2`` pairs: the maximum distortion (Papernot's Upsilon) is counted in pixels.
    """
    single = _single(logits_fn)

    def body(carry):
        adversarial, domain = carry
        logits, pullback = jax.vjp(single, adversarial)
        jacobian = jax.vmap(pullback)(jnp.eye(logits.size))[0].reshape(logits.size, -1)
        alpha = jacobian[target]
        beta = jacobian.sum(axis=0) - alpha
        p, q, score = _best_pair(pair_saliency(alpha, beta, domain.reshape(-1)))
        apply = (jnp.argmax(logits) != target) & jnp.isfinite(score)
        pixels = jnp.stack([p, q])
        flat, flat_domain = adversarial.reshape(-1), domain.reshape(-1)
        flat = flat.at[pixels].set(jnp.where(apply, 1.0, flat[pixels]))
        flat_domain = flat_domain.at[pixels].set(flat_domain[pixels] & ~apply)
        return (flat.reshape(image.shape), flat_domain.reshape(image.shape)), apply

    return _with_snapshots(body, (image, image < 1.0), image, [budget // 2 for budget in budgets])


def jsma_single_attack(
    logits_fn: Logits, image: jax.Array, target: jax.Array, budgets: Sequence[int]
) -> jax.Array:
    """A one-pixel-per-step JSMA (not the paper's: Papernot et al. 2016 pick pairs), on one image ``[H, W]``
    in [0, 1]; returns ``[len(budgets), H, W]``.

    Each step takes the Jacobian of the logits, ``alpha = dZ_target/dx`` and ``beta = sum_{j != target}
    dZ_j/dx``, and sets to 1 the unchanged pixel maximising ``alpha |beta|`` among those with ``alpha > 0,
    beta < 0`` (or to 0 the one maximising ``|alpha| beta`` with ``alpha < 0, beta > 0``): the single-pixel
    saliency maps of their Section III. When no pixel meets the sign conditions it falls back to the
    first-order gain ``(alpha - beta)(v - x)``. It stops once the prediction is ``target`` or after
    ``budget`` pixels.
    """
    single = _single(logits_fn)

    def body(carry):
        adversarial, changed = carry
        logits, pullback = jax.vjp(single, adversarial)
        jacobian = jax.vmap(pullback)(jnp.eye(logits.size))[0]
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
        return _apply_best(adversarial, changed, scores, jnp.argmax(logits) != target)

    return _with_snapshots(body, (image, jnp.zeros(image.shape, bool)), image, budgets)


def greedy_l0_attack(
    logits_fn: Logits, image: jax.Array, label: jax.Array, budgets: Sequence[int]
) -> jax.Array:
    """Untargeted greedy gradient L0 attack on one image ``[H, W]``, one gradient per step (a stand-in, not
    from the paper); returns ``[len(budgets), H, W]``.

    The margin ``m(x) = Z_label - max_{j != label} Z_j`` is linearised; each step sets the unchanged pixel and
    value ``v`` in {0, 1} with the most negative first-order change ``(v - x_i) dm/dx_i``, until the prediction
    leaves ``label`` or ``budget`` pixels have changed.
    """
    single = _single(logits_fn)

    def body(carry):
        adversarial, changed = carry
        value, gradient = jax.value_and_grad(lambda x: _margin(single(x), label))(adversarial)
        scores = _first_order_scores(adversarial, changed, gradient)
        return _apply_best(adversarial, changed, scores, value > 0)

    return _with_snapshots(body, (image, jnp.zeros(image.shape, bool)), image, budgets)


def random_l0_attack(key: jax.Array, image: jax.Array, budgets: Sequence[int]) -> jax.Array:
    """Flip ``budget`` uniformly chosen pixels of one image ``[H, W]`` to ``1 - round(x)`` (a model-free
    baseline); returns ``[len(budgets), H, W]``, the flipped sets nested (one random order of the pixels)."""
    rank = jnp.argsort(jax.random.uniform(key, (image.size,))).argsort().reshape(image.shape)
    return jnp.stack([jnp.where(rank < budget, 1.0 - jnp.round(image), image) for budget in budgets])


@dataclasses.dataclass(frozen=True)
class CWL0Config(CheckedConfig):
    """Sizes of ``cw_l0_attack``, the L0 attack of Carlini & Wagner (2017), Section VI-B, made cheaper to fit
    a CPU: fewer and larger steps, several pixels fixed per round (see ``cw_l0_attack``)."""

    rounds: Annotated[int, ">= 1"] = 40
    """Restricted L2 attacks in all, successful or not (theirs: as many as it takes)."""
    steps: Annotated[int, ">= 1"] = 50
    """Adam steps of each restricted L2 attack (their L2 attack runs far more, Section VI-A)."""
    learning_rate: float = 0.1
    """Adam's step size on the tanh variables ``w`` (larger than theirs, to move in fewer steps)."""
    initial_const: Annotated[float, "> 0"] = 1.0
    """The weight ``c`` of the misclassification term in the first L2 attack (theirs starts very low)."""
    max_const: Annotated[float, "> 0"] = 256.0
    """``c`` doubles after each failed L2 attack; past this the attack ends with its last success."""
    shrink: Annotated[float, "[0, 1)"] = 0.2
    """Fraction of the allowed pixels fixed after each success, at least one (0: one, as theirs)."""
    confidence: Annotated[float, ">= 0"] = 0.0
    """``kappa``: the target's logit must beat the others' by this much (Section VI-A)."""


def cw_l0_attack(
    logits_fn: Logits, image: jax.Array, target: jax.Array, config: CWL0Config
) -> tuple[jax.Array, jax.Array]:
    """Targeted L0 attack of Carlini & Wagner (2017), Section VI-B, on one image ``[H, W]`` in [0, 1].

    Returns ``(adversarial [H, W], found)``: the last adversarial image found (the one with the fewest changed
    pixels), or ``image`` itself when none was (``found`` False).

    Their method, as ported: an allowed set of pixels starts as all of them. Each round runs their L2 attack
    (Section VI-A) restricted to the allowed set: the other pixels keep their original values, the allowed ones
    are ``(tanh(w) + 1) / 2`` (their change of variables, Section V), and Adam minimises ``||x' - x||_2^2 + c
    f(x')`` with ``f(x') = max(max_{i != t} Z(x')_i - Z(x')_t, -kappa)``, warm-started from the previous
    round's ``w``. After a success (an iterate classified as the target; the last such iterate is kept), with
    ``delta`` its change and ``g`` the gradient there of ``max_{i != t} Z_i - Z_t`` (``f`` without its clamp,
    which is flat at an adversarial point), the allowed pixels of least ``|g_i delta_i|`` (the first-order
    contribution of each pixel, by which the paper ranks them) leave the allowed set. After a failure ``c``
    doubles; the attack ends when ``c`` passes its cap (keeping the last success) or after ``config.rounds``
    L2 attacks.

    Departures for the CPU budget: each success fixes ``max(1, floor(shrink * |allowed|))`` pixels instead of
    one (``shrink = 0``: one, as theirs), so the allowed set shrinks geometrically and then one pixel a round;
    the L2 attacks are short (``config.steps`` Adam steps of a larger step size, no early stop) and their
    number is capped; ``c`` starts near the values that succeed rather than very low. Departures of reading:
    pixels are ranked by the magnitude ``|g_i delta_i|`` where the paper writes ``g_i . delta_i``, and ``g``
    is the unclamped margin's gradient (the clamped ``f`` would give every pixel the score 0).
    """
    single = _single(logits_fn)
    optimizer = optax.adam(config.learning_rate)
    start = jnp.arctanh(jnp.clip(2.0 * image - 1.0, -0.999999, 0.999999))

    def unclamped(x):  # f without its clamp at -kappa, flat (zero gradient) at an adversarial point
        return -_margin(single(x), target)

    def l2_attack(w, allowed, const):
        def loss(w):
            x = jnp.where(allowed, 0.5 * (jnp.tanh(w) + 1.0), image)
            logits = single(x)
            term = jnp.maximum(-_margin(logits, target), -config.confidence)
            return jnp.sum((x - image) ** 2) + const * term, (x, jnp.argmax(logits) == target)

        def step(_, carry):
            w, opt_state, found, adversarial = carry
            (_, (x, hit)), grad = jax.value_and_grad(loss, has_aux=True)(w)
            updates, opt_state = optimizer.update(grad, opt_state)
            return optax.apply_updates(w, updates), opt_state, found | hit, jnp.where(hit, x, adversarial)

        initial = (w, optimizer.init(w), jnp.array(False), image)
        return jax.lax.fori_loop(0, config.steps, step, initial)

    def round_body(state):
        round_index, w, allowed, const, best, found_any, _ = state
        new_w, _, found, adversarial = l2_attack(w, allowed, const)
        gradient = jax.grad(unclamped)(adversarial)
        score = jnp.where(allowed, jnp.abs(gradient * (adversarial - image)), jnp.inf).reshape(-1)
        rank = jnp.argsort(score, stable=True).argsort().reshape(image.shape)
        count = jnp.sum(allowed)
        fixed = jnp.maximum(1, jnp.floor(config.shrink * count).astype(jnp.int32))
        allowed = jnp.where(found, allowed & (rank >= fixed), allowed)
        const = jnp.where(found, const, 2.0 * const)
        done = (~found & (const > config.max_const)) | ~jnp.any(allowed)
        return (
            round_index + 1,
            jnp.where(found, new_w, w),
            allowed,
            const,
            jnp.where(found, adversarial, best),
            found_any | found,
            done,
        )

    def cond(state):
        return (state[0] < config.rounds) & ~state[-1]

    initial = (
        jnp.int32(0),
        start,
        jnp.ones(image.shape, bool),
        jnp.float32(config.initial_const),
        image,
        jnp.array(False),
        jnp.array(False),
    )
    state = jax.lax.while_loop(cond, round_body, initial)
    return state[4], state[5]


BACKWARDS = ("identity", "projection")
"""How ``adaptive_l0_attack`` differentiates through IHT (see there)."""


def adaptive_l0_attack(
    logits_fn: Logits,
    image: jax.Array,
    label: jax.Array,
    budgets: Sequence[int],
    k: int,
    t: int,
    num_iters: int,
    backward: str,
) -> jax.Array:
    """The adaptive attack: ``greedy_l0_attack`` run on the defended pipeline ``x -> Z(P(x))``, ``P(x) =
    IDCT(a)`` with ``a`` from IHT (Algorithm 1 of Bafna et al.), on one image ``[H, W]``; returns
    ``[len(budgets), H, W]``.

    The margin that is linearised, and the test that stops the attack, are those of the defended output,
    computed exactly. Only the gradient through IHT is replaced, in the manner of BPDA (Athalye, Carlini &
    Wagner 2018, Section 4.1), by ``backward``:

    * ``identity``: ``dP/dx ~ I``, the gradient of the classifier at ``P(x)`` is used as the gradient in ``x``;
    * ``projection``: ``dP/dx ~ IDCT diag(1_S) DCT``, the Jacobian of IHT's last top-k projection with its
      noise estimate ``e`` held fixed (``S``: the support of ``a``; the projection is linear once S is fixed).
    """
    if backward not in BACKWARDS:
        raise ConfigError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    single = _single(logits_fn)

    def body(carry):
        adversarial, changed = carry
        coefficients, _ = iht(adversarial, k, t, num_iters)
        value, gradient = jax.value_and_grad(lambda z: _margin(single(z), label))(idct2(coefficients))
        if backward == "projection":
            gradient = idct2(jnp.where(coefficients != 0, dct2(gradient), 0.0))
        scores = _first_order_scores(adversarial, changed, gradient)
        return _apply_best(adversarial, changed, scores, value > 0)

    return _with_snapshots(body, (image, jnp.zeros(image.shape, bool)), image, budgets)


TRANSFER_ATTACKS = ("jsma_pairs", "cw_l0", "jsma_single", "greedy", "random")
"""Attacks computed on the undefended classifier (the paper's threat model); the first two are the paper's."""
PAPER_ATTACKS = ("jsma_pairs", "cw_l0")
ADAPTIVE_ATTACKS = ("bpda_identity", "bpda_projection")
"""The adaptive attack with each of ``BACKWARDS``: computed on the defended pipeline."""
ATTACKS = TRANSFER_ATTACKS + ADAPTIVE_ATTACKS


def make_attack(
    apply_fn: Callable[[object, jax.Array], jax.Array], attack: str, config: DefenseConfig
) -> Callable[[object, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]:
    """A jitted ``run(params, images [N, H, W], labels [N], key) -> (adversarial [B, N, H, W], found [N],
    pixels [N])``.

    ``attack`` is one of ``ATTACKS``; ``B = len(config.budgets)``: image ``[b, i]`` has at most
    ``config.budgets[b]`` changed pixels. The targeted attacks (JSMA, CW-L0) draw each image's target
    uniformly among the other classes with ``key``, the random attack its pixels. CW-L0 runs once, with no
    budget: its adversarial image is kept within a budget when it changed at most that many pixels, and the
    clean image stands in for it otherwise; ``found`` says whether it found one at all and ``pixels`` how many
    pixels that one changed. For the other attacks ``found`` is True and ``pixels`` counts the changed pixels
    at the largest budget. The images are attacked ``ATTACK_CHUNK`` at a time.
    """
    if attack not in ATTACKS:
        raise ConfigError(f"attack must be one of {ATTACKS}, got {attack!r}")
    budgets = tuple(config.budgets)

    def snapshots(logits_fn, image, label, target, key):
        if attack == "jsma_pairs":
            return jsma_pairs_attack(logits_fn, image, target, budgets)
        if attack == "jsma_single":
            return jsma_single_attack(logits_fn, image, target, budgets)
        if attack == "greedy":
            return greedy_l0_attack(logits_fn, image, label, budgets)
        if attack == "random":
            return random_l0_attack(key, image, budgets)
        backward = attack.removeprefix("bpda_")
        return adaptive_l0_attack(
            logits_fn, image, label, budgets, config.k, config.t, config.num_iters, backward
        )

    def one(logits_fn, image, label, target, key):
        if attack == "cw_l0":
            adversarial, found = cw_l0_attack(logits_fn, image, target, config.cw)
            pixels = jnp.sum(adversarial != image)
            within = found & (pixels <= jnp.asarray(budgets))
            return jnp.where(within[:, None, None], adversarial[None], image[None]), found, pixels
        attacked = snapshots(logits_fn, image, label, target, key)
        return attacked, jnp.array(True), jnp.sum(attacked[int(np.argmax(budgets))] != image)

    @jax.jit
    def run(params, images, labels, key):
        logits_fn = functools.partial(apply_fn, params)
        keys = jax.random.split(key, images.shape[0])
        num_classes = jax.eval_shape(logits_fn, images[:1]).shape[-1]
        offsets = jax.vmap(lambda k: jax.random.randint(k, (), 1, num_classes))(keys)
        targets = (labels + offsets) % num_classes
        adversarial, found, pixels = jax.lax.map(
            lambda args: one(logits_fn, *args), (images, labels, targets, keys), batch_size=ATTACK_CHUNK
        )
        return jnp.moveaxis(adversarial, 1, 0), found, pixels

    return run


@functools.partial(jax.jit, static_argnames=("model", "attack", "config"))
def attack_images(
    params: object,
    images: jax.Array,
    labels: jax.Array,
    key: jax.Array,
    model: MLP,
    attack: str,
    config: DefenseConfig,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``make_attack(model.apply, attack, config)(params, images, labels, key)`` as one cached program: the
    same model, attack and config compile once (pass ``config`` with a fixed seed to share it across seeds)."""
    return make_attack(model.apply, attack, config)(params, images, labels, key)


@functools.partial(jax.jit, static_argnames="k")
def project_batch(images: jax.Array, k: int) -> jax.Array:
    """``project_top_k`` of each image of ``[N, H, W]``."""
    return jax.vmap(project_top_k, in_axes=(0, None))(images, k)


# ----------------------------------------------------------------------------- the defence experiment


@dataclasses.dataclass(frozen=True)
class DefenseConfig(CheckedConfig):
    """The IHT defence on 28x28 MNIST digits (our choices of k, t, T; see the module docstring)."""

    k: Annotated[int, ">= 1"] = 80
    """DCT sparsity of the classifier's inputs and of IHT."""
    t: Annotated[int, ">= 0"] = 40
    """Pixels IHT may treat as corrupted (should be >= the attack budget)."""
    num_iters: Annotated[int, ">= 1"] = 20
    """IHT iterations T."""
    hidden: tuple[int, ...] = (256, 256)
    """MLP widths."""
    epochs: Annotated[int, ">= 1"] = 15
    batch_size: int = 100
    learning_rate: float = 1e-3
    attacks: tuple[str, ...] = ATTACKS
    """Rows of the table, from ``ATTACKS``."""
    budgets: Annotated[tuple[int, ...], ">= 0"] = (10, 20, 40)
    """L0 budgets (pixels) of every attack."""
    num_attack_images: Annotated[int, ">= 1"] = 1000
    """Test images attacked (the first ones of the stratified test split)."""
    cw: CWL0Config = CWL0Config()
    """Sizes of the CW-L0 attack."""
    seed: int = 0

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("budgets",), lambda budgets: len(budgets) >= 1, "need at least one L0 budget"),
        Rule(
            ("attacks",),
            lambda attacks: set(attacks) <= set(ATTACKS) and len(set(attacks)) == len(attacks),
            f"attacks must be distinct names from {ATTACKS}",
        ),
    )


@dataclasses.dataclass(frozen=True)
class DefenseRow:
    """One line of the defence table: accuracies in [0, 1] on the attacked test images."""

    attack: str
    budget: int
    undefended: float
    """The classifier on the raw (attacked) image."""
    defended: float
    """The same classifier on IHT's projection of the same attacked image."""
    pixels_changed: float
    """Mean number of pixels the attack changed per image (at most ``budget``)."""


def run_defense(config: DefenseConfig, dataset: ImageDataset) -> tuple[list[DefenseRow], dict[str, float]]:
    """Train on top-k projections (Section 5), attack, evaluate both pipelines on the same attacked images.

    Returns the table (first row: clean images, attack ``none``) and metrics: ``clean/projection_accuracy``
    (the classifier on exact top-k projections of the clean test images: the defence's ceiling),
    ``train/accuracy`` and, when CW-L0 runs, ``cw_l0/found`` (the fraction of images it found an adversarial
    for, at any number of pixels) and ``cw_l0/pixels_found`` (their mean number of changed pixels).
    """
    train_key, attack_key = jax.random.split(jax.random.key(config.seed))
    x_train = jnp.asarray(dataset.x_train[..., 0])
    model = MLP(hidden=config.hidden, num_classes=dataset.num_classes)
    train_projection = project_batch(x_train, config.k)
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
        changed = float(jnp.mean(jnp.sum(observed != images, axis=(1, 2))))
        return DefenseRow(
            name,
            budget,
            accuracy(logits_fn, observed, labels),
            accuracy(logits_fn, defended, labels),
            changed,
        )

    rows = [evaluate("none", 0, images)]
    metrics = {
        "clean/projection_accuracy": accuracy(logits_fn, project_batch(images, config.k), labels),
        "train/accuracy": accuracy(logits_fn, train_projection, jnp.asarray(dataset.y_train)),
    }
    for attack in config.attacks:
        # One key per attack, whichever others run: an attack's numbers do not depend on the list.
        key = jax.random.fold_in(attack_key, ATTACKS.index(attack))
        unseeded = dataclasses.replace(config, seed=0)  # one compiled program for every seed
        adversarial, found, pixels = attack_images(params, images, labels, key, model, attack, unseeded)
        rows += [evaluate(attack, b, adversarial[i]) for i, b in enumerate(config.budgets)]
        if attack == "cw_l0":
            metrics["cw_l0/found"] = float(jnp.mean(found))
            metrics["cw_l0/pixels_found"] = float(
                jnp.sum(jnp.where(found, pixels, 0)) / jnp.maximum(1, jnp.sum(found))
            )
    return rows, metrics
