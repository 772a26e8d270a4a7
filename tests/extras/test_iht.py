"""Tests of brackit.extras.iht: DCT, hard thresholding, IHT recovery, attacks and the defence pipeline."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from brackit.errors import ConfigError
from brackit.extras import iht
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


def test_attacks_respect_budget_and_jsma_moves_toward_target() -> None:
    dataset = _toy_dataset()
    model = iht.MLPClassifier(hidden=(16,), num_classes=2)
    images, labels = jnp.asarray(dataset.x_train[..., 0]), jnp.asarray(dataset.y_train)
    params = iht.train_classifier(model, images, labels, jax.random.key(0), 20, 50, 1e-2)
    test_images, test_labels = jnp.asarray(dataset.x_test[..., 0]), jnp.asarray(dataset.y_test)
    logits_fn = lambda x: model.apply(params, x)  # noqa: E731
    assert iht.accuracy(logits_fn, test_images, test_labels) == 1.0
    results = {}
    for attack in iht.ATTACKS:
        run = iht.make_attack(model.apply, attack, 3)
        adversarial = results[attack] = run(params, test_images, test_labels, jax.random.key(1))
        np.testing.assert_array_equal(run(params, test_images, test_labels, jax.random.key(1)), adversarial)
        changed = jnp.sum(jnp.abs(adversarial - test_images) > 0, axis=(1, 2))
        assert int(jnp.max(changed)) <= 3 and int(jnp.max(changed)) >= 1
        assert set(np.unique(np.asarray(adversarial)[np.asarray(adversarial != test_images)])) <= {0.0, 1.0}
    # With two classes, the JSMA target is the other class: the target logit must gain on the true one.
    adversarial = results["jsma"]
    before, after = logits_fn(test_images), logits_fn(adversarial)
    rows = jnp.arange(test_labels.size)
    gap_before = before[rows, 1 - test_labels] - before[rows, test_labels]
    gap_after = after[rows, 1 - test_labels] - after[rows, test_labels]
    assert bool(jnp.all(gap_after >= gap_before - 1e-4)) and bool(jnp.any(gap_after > gap_before))
    with pytest.raises(ConfigError):
        iht.make_attack(model.apply, "cw", 3)


def test_defense_pipeline_runs() -> None:
    config = iht.DefenseConfig(
        k=8,
        t=4,
        num_iters=5,
        hidden=(16,),
        epochs=3,
        batch_size=50,
        attacks=("random",),
        budgets=(2,),
        num_attack_images=20,
    )
    rows, metrics = iht.run_defense(config, _toy_dataset())
    assert [(row.attack, row.budget) for row in rows] == [("none", 0), ("random", 2)]
    assert all(0.0 <= row.undefended <= 1.0 and 0.0 <= row.defended <= 1.0 for row in rows)
    assert 0.0 <= metrics["clean/projection_accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="unknown"):
        iht.DefenseConfig(attacks=("cw",))


def test_cli_recovery_and_defense_tiny(tmp_path) -> None:
    from brackit.cli import main

    assert main(["extras", "iht", "recovery", "--budget", "tiny", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "extras_iht_recovery.md").read_text()
    assert "| 1 | 1.00 |" in report and "git commit" in report
    assert (tmp_path / "extras_iht_recovery.png").stat().st_size > 1000
    assert main(["extras", "iht", "defense", "--budget", "tiny", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "extras_iht_defense.md").read_text()
    assert "| none | 0 |" in report and "| jsma | 5 |" in report
    assert main(["extras", "iht", "recovery", "--budget", "huge", "--out", str(tmp_path)]) == 2
