"""Tests of brackit.extras.iht: DCT, hard thresholding, IHT recovery, attacks and the defence pipeline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from brackit.errors import ConfigError
from brackit.extras import iht, layers
from brackit.extras.data import ImageDataset


@pytest.mark.library_precision
@pytest.mark.parametrize("shape", [(28, 28), (8, 12)])
def test_dct2_matches_scipy_and_is_orthonormal(shape: tuple[int, int]) -> None:
    images = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    coefficients = np.asarray(iht.dct2(jnp.asarray(images)))
    np.testing.assert_allclose(coefficients, scipy.fft.dctn(images, axes=(1, 2), norm="ortho"), atol=2e-5)
    np.testing.assert_allclose(np.asarray(iht.idct2(jnp.asarray(coefficients))), images, atol=2e-5)
    # Parseval: the orthonormal transform keeps the Euclidean norm of every image.
    np.testing.assert_allclose(
        np.linalg.norm(coefficients.reshape(3, -1), axis=1),
        np.linalg.norm(images.reshape(3, -1), axis=1),
        rtol=1e-5,
    )
    matrix = np.asarray(iht.dct_matrix(shape[0]))
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(shape[0]), atol=1e-5)


def test_hard_threshold_keeps_largest_magnitudes() -> None:
    values = jnp.array([[3.0, -5.0], [1.0, 0.5]])
    np.testing.assert_array_equal(iht.hard_threshold(values, 2), [[3.0, -5.0], [0.0, 0.0]])
    np.testing.assert_array_equal(iht.hard_threshold(values, 0), np.zeros((2, 2)))
    np.testing.assert_array_equal(iht.hard_threshold(values, 4), values)
    # Ties: exactly `count` entries survive, the lower flat index first.
    np.testing.assert_array_equal(iht.hard_threshold(jnp.array([1.0, -1.0, 1.0]), 2), [1.0, -1.0, 0.0])
    # A traced count works under jit.
    np.testing.assert_array_equal(jax.jit(iht.hard_threshold)(values, 3), [[3.0, -5.0], [1.0, 0.0]])


@pytest.mark.library_precision
def test_iht_recovers_sparse_image_and_spikes_exactly() -> None:
    key = jax.random.key(0)
    observed, coefficients, noise = jax.vmap(lambda k: iht.sparse_problem(k, 28, 28, 5, 3, 5.0))(
        jax.random.split(key, 4)
    )
    assert int(jnp.count_nonzero(coefficients[0])) == 5 and int(jnp.count_nonzero(noise[0])) == 3
    estimate, estimated_noise = iht.iht_batch(observed, 5, 3, 30)
    np.testing.assert_allclose(np.asarray(estimate), np.asarray(coefficients), atol=1e-4)
    np.testing.assert_allclose(np.asarray(estimated_noise), np.asarray(noise), atol=1e-3)
    # Without IHT, the plain top-k projection of the corrupted image is far from the truth.
    naive = jax.vmap(lambda y: iht.hard_threshold(iht.dct2(y), 5))(observed)
    assert float(jnp.max(jnp.abs(naive - coefficients))) > 0.1


def test_recovery_rate_falls_as_kt_grows() -> None:
    config = iht.RecoveryConfig(height=16, width=16, ks=(2, 96), ts=(2, 96), trials=6, num_iters=30)
    rates = iht.recovery_rates(config)
    assert rates.shape == (2, 2)
    assert rates[0, 0] == 1.0
    assert rates[1, 1] < 0.5
    with pytest.raises(ConfigError):
        iht.RecoveryConfig(height=4, width=4, ks=(20,))


def _toy_dataset() -> ImageDataset:
    """Two classes of 8x8 images: a bright left half vs a bright right half, plus noise."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=240).astype(np.int32)
    images = np.zeros((240, 8, 8, 1), np.float32)
    images[labels == 0, :, :4] = 1.0
    images[labels == 1, :, 4:] = 1.0
    images = np.clip(images + rng.normal(0.0, 0.1, images.shape), 0.0, 1.0).astype(np.float32)
    return ImageDataset("toy", images[:200], labels[:200], images[200:], labels[200:], 2)


def test_hard_threshold_top_k_path_matches_the_sort() -> None:
    # A Python int count takes lax.top_k, a traced one the stable sort: the same entries survive, ties too.
    values = jnp.asarray(np.random.default_rng(1).normal(size=(6, 7)), jnp.float32).at[0, :4].set(-0.5)
    values = values.at[1, :3].set(0.5)
    for count in (0, 1, 3, 5, 20, 42, 50):
        np.testing.assert_array_equal(
            iht.hard_threshold(values, count), jax.jit(iht.hard_threshold)(values, jnp.int32(count))
        )


def test_attacks_respect_budget_and_jsma_moves_toward_target() -> None:
    dataset = _toy_dataset()
    model = layers.MLP(hidden=(16,), num_classes=2)
    images, labels = jnp.asarray(dataset.x_train[..., 0]), jnp.asarray(dataset.y_train)
    params = iht.train_classifier(model, images, labels, jax.random.key(0), 20, 50, 1e-2)
    test_images, test_labels = jnp.asarray(dataset.x_test[..., 0]), jnp.asarray(dataset.y_test)
    logits_fn = lambda x: model.apply(params, x)  # noqa: E731
    assert iht.accuracy(logits_fn, test_images, test_labels) == 1.0
    config = iht.DefenseConfig(k=8, t=4, num_iters=3, budgets=(1, 3), cw=iht.CWL0Config(rounds=4, steps=10))
    results = {}
    for attack in iht.ATTACKS:
        run = iht.make_attack(model.apply, attack, config)
        adversarial, found, pixels = run(params, test_images, test_labels, jax.random.key(1))
        results[attack] = adversarial
        again = run(params, test_images, test_labels, jax.random.key(1))[0]
        np.testing.assert_array_equal(again, adversarial)  # the same key, the same images
        assert adversarial.shape == (2, *test_images.shape) and found.shape == pixels.shape == (40,)
        changed = jnp.sum(adversarial != test_images, axis=(2, 3))
        assert int(jnp.max(changed[0])) <= 1 and int(jnp.max(changed[1])) <= 3, attack
        assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0
        if attack != "cw_l0":  # the greedy attacks and random flips set pixels to 0 or 1
            assert int(jnp.max(changed[1])) >= 1, attack
            values = np.asarray(adversarial)[np.asarray(adversarial != test_images)]
            assert set(np.unique(values)) <= {0.0, 1.0}, attack
    # With two classes, the JSMA target is the other class: the target logit must gain on the true one.
    rows = jnp.arange(test_labels.size)
    before = logits_fn(test_images)
    gap_before = before[rows, 1 - test_labels] - before[rows, test_labels]
    for attack in ("jsma_pairs", "jsma_single"):
        after = logits_fn(results[attack][1])
        gap_after = after[rows, 1 - test_labels] - after[rows, test_labels]
        assert bool(jnp.all(gap_after >= gap_before - 1e-4)) and bool(jnp.any(gap_after > gap_before)), attack
    with pytest.raises(ConfigError):
        iht.make_attack(model.apply, "cw", config)


def test_defense_pipeline_runs() -> None:
    config = iht.DefenseConfig(
        k=8,
        t=4,
        num_iters=5,
        hidden=(16,),
        epochs=3,
        batch_size=50,
        attacks=("random", "cw_l0"),
        budgets=(2, 4),
        num_attack_images=20,
        cw=iht.CWL0Config(rounds=3, steps=5),
    )
    rows, metrics = iht.run_defense(config, _toy_dataset())
    expected = [("none", 0), ("random", 2), ("random", 4), ("cw_l0", 2), ("cw_l0", 4)]
    assert [(row.attack, row.budget) for row in rows] == expected
    assert all(0.0 <= row.undefended <= 1.0 and 0.0 <= row.defended <= 1.0 for row in rows)
    assert [row.pixels_changed for row in rows[:3]] == [0.0, 2.0, 4.0]
    assert 0.0 <= metrics["clean/projection_accuracy"] <= 1.0 and 0.0 <= metrics["cw_l0/found"] <= 1.0
    with pytest.raises(ConfigError, match="attacks must be distinct names"):
        iht.DefenseConfig(attacks=("cw",))
    with pytest.raises(ConfigError, match="attacks must be distinct names"):
        iht.DefenseConfig(attacks=("random", "random"))
    with pytest.raises(ConfigError, match=r"CWL0Config\.shrink"):
        iht.CWL0Config(shrink=1.0)
