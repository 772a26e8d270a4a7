"""Tests of the L0 attacks of brackit.extras.iht on tiny linear models, against numpy computations by hand.

A linear model ``Z = W x + b`` has the constant Jacobian ``W``, so each attack's choice can be worked out
independently: the pair saliency of Papernot et al. (2016, Algorithm 3) by a loop over pairs, CW-L0's
fixed pixels from which pixels move the logits, the adaptive attack's first pixel from a numpy IHT.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from brackit.errors import ConfigError
from brackit.extras import iht


def _linear(weights: np.ndarray, bias: np.ndarray):
    """``logits_fn`` of ``Z = W x + b`` on images ``[N, H, W]``; ``weights``: ``[C, H*W]``."""
    w, b = jnp.asarray(weights, jnp.float32), jnp.asarray(bias, jnp.float32)
    return lambda images: images.reshape(images.shape[0], -1) @ w.T + b


def test_pair_saliency_matches_a_loop_over_pairs() -> None:
    rng = np.random.default_rng(0)
    alpha, beta = rng.normal(size=7), rng.normal(size=7)
    domain = np.array([1, 1, 0, 1, 1, 1, 1], bool)
    expected = np.full((7, 7), -np.inf)
    for p, q in itertools.product(range(7), repeat=2):
        a, b = alpha[p] + alpha[q], beta[p] + beta[q]
        if p != q and domain[p] and domain[q] and a > 0 and b < 0:
            expected[p, q] = -a * b
    assert 2 < np.isfinite(expected).sum() < 30  # both kinds of pair occur
    got = iht.pair_saliency(
        jnp.asarray(alpha, jnp.float32), jnp.asarray(beta, jnp.float32), jnp.asarray(domain)
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


def _jsma_pairs_by_hand(weights, bias, image, target, pairs):
    """Algorithm 2 of Papernot et al. with Algorithm 3's pairs and theta = +1, on ``Z = W x + b``."""
    x, domain = image.reshape(-1).astype(np.float64).copy(), image.reshape(-1) < 1.0
    alpha = weights[target]
    beta = weights.sum(axis=0) - alpha
    taken = 0
    for _ in range(pairs):
        if np.argmax(weights @ x + bias) == target:
            break
        best, best_score = None, -np.inf
        for p, q in itertools.combinations(np.flatnonzero(domain), 2):
            a, b = alpha[p] + alpha[q], beta[p] + beta[q]
            if a > 0 and b < 0 and -a * b > best_score:
                best, best_score = (p, q), -a * b
        if best is None:
            break
        x[list(best)] = 1.0
        domain[list(best)] = False
        taken += 1
    return x.reshape(image.shape), taken


@pytest.mark.parametrize("target_bias", [-6.0, 0.0])
def test_jsma_pairs_follows_algorithms_2_and_3(target_bias: float) -> None:
    weights = np.random.default_rng(8).normal(size=(3, 6))
    bias = np.array([1.0, 0.0, target_bias])
    image = np.array([[0.0, 0.2, 1.0], [0.5, 0.0, 0.3]], np.float32)
    target, budgets = 2, (2, 4, 6, 1)
    got = np.asarray(iht.jsma_pairs_attack(_linear(weights, bias), jnp.asarray(image), target, budgets))
    taken = []
    for budget, attacked in zip(budgets, got, strict=True):
        expected, pairs = _jsma_pairs_by_hand(weights, bias, image, target, budget // 2)
        taken.append(pairs)
        np.testing.assert_allclose(attacked, expected, atol=1e-6)
        assert np.sum(attacked != image) <= budget  # the L0 budget
        assert attacked.min() >= 0.0 and attacked.max() <= 1.0  # the pixel range
    # Both stop before their budget: -6 after two pairs (no third pair qualifies), 0 after one (the target wins).
    assert taken == ([1, 2, 2, 0] if target_bias < 0 else [1, 1, 1, 0])


def test_jsma_single_picks_the_most_salient_pixel() -> None:
    rng = np.random.default_rng(2)
    weights, bias = rng.normal(size=(3, 6)), np.array([2.0, 0.0, -3.0])
    image = np.array([[0.0, 0.2, 1.0], [0.5, 0.0, 0.3]], np.float32)
    alpha = weights[2]
    beta = weights.sum(axis=0) - alpha
    flat = image.reshape(-1)
    up = [(-alpha[i] * beta[i], i, 1.0) for i in range(6) if flat[i] < 1 and alpha[i] > 0 and beta[i] < 0]
    down = [(-alpha[i] * beta[i], i, 0.0) for i in range(6) if flat[i] > 0 and alpha[i] < 0 and beta[i] > 0]
    assert up or down
    _, pixel, value = max(up + down)
    expected = flat.copy()
    expected[pixel] = value
    got = iht.jsma_single_attack(_linear(weights, bias), jnp.asarray(image), 2, (1,))
    np.testing.assert_array_equal(np.asarray(got)[0].reshape(-1), expected)


def test_cw_l0_keeps_only_the_pixel_that_moves_the_logits() -> None:
    # Two classes on 3x3 images; only pixel 4 moves the logits: Z_1 - Z_0 = 4 x_4 - 2. Every other pixel has
    # zero gradient, so CW-L0 fixes them all (back to their values) and the adversarial image differs from the
    # original at pixel 4 only, which must exceed 0.5 for class 1 to win.
    weights = np.zeros((2, 9))
    weights[1, 4] = 4.0
    bias = np.array([0.0, -2.0])
    rng = np.random.default_rng(3)
    image = rng.uniform(size=(3, 3)).astype(np.float32)
    image[1, 1] = 0.0
    config = iht.CWL0Config(rounds=30, steps=100, learning_rate=0.1, shrink=0.5, confidence=0.4)
    adversarial, found = iht.cw_l0_attack(_linear(weights, bias), jnp.asarray(image), 1, config)
    adversarial = np.asarray(adversarial)
    assert bool(found)
    changed = adversarial != image
    assert changed.sum() == 1 and changed[1, 1]
    assert 0.5 < adversarial[1, 1] <= 1.0


def test_cw_l0_budgets_and_failure_in_make_attack() -> None:
    weights = np.zeros((2, 9))
    weights[1, 4] = 4.0
    apply_fn = lambda params, x: _linear(*params)(x)  # noqa: E731
    images = jnp.zeros((2, 3, 3))
    labels = jnp.array([0, 0])
    cw = iht.CWL0Config(rounds=30, steps=100, shrink=0.5, confidence=0.4)
    config = iht.DefenseConfig(budgets=(0, 1), attacks=("cw_l0",), cw=cw)
    run = iht.make_attack(apply_fn, "cw_l0", config)
    adversarial, found, pixels = run((weights, np.array([0.0, -2.0])), images, labels, jax.random.key(0))
    assert adversarial.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(adversarial[0], images)  # budget 0: nothing may change
    assert bool(jnp.all(found)) and np.asarray(pixels).tolist() == [1, 1]
    assert bool(jnp.all(adversarial[1, :, 1, 1] > 0.5))
    # A class that no pixel can reach (Z_1 - Z_0 = -10): no adversarial, the clean image at every budget.
    adversarial, found, _ = run((weights * 0.0, np.array([0.0, -10.0])), images, labels, jax.random.key(0))
    assert not bool(jnp.any(found))
    np.testing.assert_array_equal(adversarial, jnp.broadcast_to(images, adversarial.shape))


def _iht_by_hand(observed: np.ndarray, k: int, t: int, num_iters: int) -> np.ndarray:
    """Algorithm 1 of Bafna et al. with scipy's orthonormal DCT; returns the coefficients ``a``."""

    def keep(values, count):
        flat = values.reshape(-1)
        kept = np.zeros(flat.size, bool)
        kept[np.argsort(-np.abs(flat), kind="stable")[:count]] = True
        return np.where(kept, flat, 0.0).reshape(values.shape)

    noise = np.zeros_like(observed)
    for _ in range(num_iters):
        coefficients = keep(scipy.fft.dctn(observed - noise, norm="ortho"), k)
        noise = keep(observed - scipy.fft.idctn(coefficients, norm="ortho"), t)
    return coefficients


@pytest.mark.parametrize("backward", iht.BACKWARDS)
def test_adaptive_attack_first_pixel_matches_numpy(backward: str) -> None:
    rng = np.random.default_rng(4)
    weights, bias = rng.normal(size=(3, 16)), np.zeros(3)
    image = rng.uniform(size=(4, 4))
    k, t, num_iters = 3, 2, 6
    coefficients = _iht_by_hand(image, k, t, num_iters)
    projection = scipy.fft.idctn(coefficients, norm="ortho")
    logits = weights @ projection.reshape(-1)
    label = int(np.argmax(logits))  # the defended pipeline's own prediction: the attack is active
    runner_up = max((j for j in range(3) if j != label), key=lambda j: logits[j])
    gradient = (weights[label] - weights[runner_up]).reshape(4, 4)  # of the margin, in the projection
    if backward == "projection":
        gradient = scipy.fft.idctn(
            np.where(coefficients != 0, scipy.fft.dctn(gradient, norm="ortho"), 0.0), norm="ortho"
        )
    flat, g = image.reshape(-1), gradient.reshape(-1)
    scores = np.concatenate([-(1.0 - flat) * g, flat * g])  # set to 1, set to 0: minus the margin's change
    best = int(np.argmax(scores))
    expected = flat.copy()
    expected[best % 16] = 1.0 if best < 16 else 0.0

    logits_fn = _linear(weights, bias)
    got = iht.adaptive_l0_attack(
        logits_fn, jnp.asarray(image, jnp.float32), label, (1, 3), k, t, num_iters, backward
    )
    np.testing.assert_allclose(np.asarray(got[0]).reshape(-1), expected, atol=1e-6)
    changed = np.asarray(got) != image.astype(np.float32)
    assert changed[0].sum() == 1 and changed[1].sum() <= 3  # the L0 budgets
    assert np.all(changed[0] <= changed[1])  # the first step is the start of the longer run
    assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0
    with pytest.raises(ConfigError, match="backward"):
        iht.adaptive_l0_attack(logits_fn, jnp.asarray(image), label, (1,), k, t, num_iters, "exact")


def test_random_attack_flips_nested_sets_of_exactly_budget_pixels() -> None:
    image = jnp.asarray(np.random.default_rng(5).uniform(size=(5, 5)), jnp.float32)
    attacked = np.asarray(iht.random_l0_attack(jax.random.key(0), image, (2, 7, 0)))
    changed = attacked != np.asarray(image)
    assert changed.reshape(3, -1).sum(axis=1).tolist() == [2, 7, 0]
    assert np.all(changed[0] <= changed[1])
    np.testing.assert_array_equal(
        attacked[changed], 1.0 - np.round(np.broadcast_to(image, attacked.shape)[changed])
    )
