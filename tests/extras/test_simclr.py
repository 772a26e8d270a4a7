"""Tests of brackit.extras.simclr: NT-Xent against a float64 reference, augmentations, corruptions, probe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brackit.errors import ConfigError
from brackit.extras import simclr


def _nt_xent_reference(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """SimCLR Eq. 1 written out with loops in float64."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        positive = (i + n) % n2
        sims = [z[i] @ z[k] / (np.linalg.norm(z[i]) * np.linalg.norm(z[k])) / temperature for k in range(n2)]
        denominator = sum(np.exp(sims[k]) for k in range(n2) if k != i)
        total += -np.log(np.exp(sims[positive]) / denominator)
    return total / n2


@pytest.mark.library_precision
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_nt_xent_matches_float64_reference(temperature):
    rng = np.random.default_rng(int(temperature * 100))
    z1, z2 = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    loss, metrics = simclr.nt_xent_loss(
        jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), temperature
    )
    expected = _nt_xent_reference(z1, z2, temperature)
    np.testing.assert_allclose(float(loss), expected, rtol=2e-5)
    assert 0.0 <= float(metrics["contrastive/accuracy"]) <= 1.0
    jitted, _ = jax.jit(simclr.nt_xent_loss, static_argnums=2)(jnp.asarray(z1), jnp.asarray(z2), temperature)
    np.testing.assert_allclose(float(jitted), expected, rtol=2e-5)


def test_nt_xent_is_low_for_aligned_views_and_scale_invariant():
    rng = np.random.default_rng(0)
    z = jnp.asarray(np.eye(8)[:, :8] * 3.0, jnp.float32)  # orthogonal images, identical views
    aligned, metrics = simclr.nt_xent_loss(z, 2.0 * z, 0.1)
    assert float(metrics["contrastive/accuracy"]) == 1.0
    # With cosine similarity 1 to the positive and 0 to the 14 negatives: -log(e^10 / (e^10 + 14)).
    np.testing.assert_allclose(float(aligned), -np.log(np.exp(10) / (np.exp(10) + 14)), rtol=1e-3, atol=1e-6)
    other = jnp.asarray(rng.standard_normal((8, 8)), jnp.float32)
    shuffled, _ = simclr.nt_xent_loss(z, other, 0.1)
    assert float(shuffled) > float(aligned) + 1.0
    with pytest.raises(ConfigError):
        simclr.nt_xent_loss(z, z[:4], 0.1)


def test_augmentations_keep_shape_and_range_and_follow_the_key():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((5, 28, 28, 1)), jnp.float32)
    config = simclr.AugmentConfig()
    augment_batch = jax.jit(simclr.augment_batch, static_argnums=2)
    views = augment_batch(jax.random.key(0), images, config)
    assert views.shape == images.shape and views.dtype == jnp.float32
    assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0
    np.testing.assert_array_equal(views, augment_batch(jax.random.key(0), images, config))
    other = augment_batch(jax.random.key(1), images, config)
    assert float(jnp.abs(views - other).mean()) > 1e-3
    # Each image of the batch gets its own view.
    same = jnp.broadcast_to(images[:1], images.shape)
    per_image = augment_batch(jax.random.key(2), same, config)
    assert float(jnp.abs(per_image[0] - per_image[1]).mean()) > 1e-3


def test_identity_augmentation_returns_the_image():
    # Full-area crop of aspect 1, no shift, no noise, no jitter: scale_and_translate is the identity.
    config = simclr.AugmentConfig(
        crop_area=(1.0, 1.0),
        crop_aspect=(1.0, 1.0),
        max_translation=0.0,
        noise_std=0.0,
        brightness=0.0,
        contrast=0.0,
    )
    image = jnp.asarray(np.random.default_rng(1).random((12, 12, 1)), jnp.float32)
    np.testing.assert_allclose(simclr.augment(jax.random.key(0), image, config), image, atol=1e-5)
    with pytest.raises(ConfigError):
        simclr.AugmentConfig(crop_area=(0.0, 1.0))


def test_corruptions():
    images = jnp.asarray(np.random.default_rng(0).random((20, 28, 28, 1)), jnp.float32)
    noisy = simclr.corrupt_images(jax.random.key(0), images, "salt_pepper", 0.2)
    changed = np.mean(noisy != np.asarray(images))
    assert abs(changed - 0.2) < 5 * np.sqrt(0.2 * 0.8 / images.size)
    assert set(np.unique(noisy[noisy != np.asarray(images)])) <= {0.0, 1.0}
    for corruption in ("downsample2", "downsample4"):
        blurred = simclr.corrupt_images(jax.random.key(0), images, corruption, 0.0)
        assert blurred.shape == images.shape and blurred.min() >= 0 and blurred.max() <= 1
        assert blurred.std() < np.asarray(images).std()  # low-pass: less pixel variance
    # A constant image survives down- and upsampling.
    flat = jnp.full((1, 28, 28, 1), 0.25)
    np.testing.assert_allclose(simclr.downsample_upsample(flat, 4), 0.25, atol=1e-6)
    np.testing.assert_array_equal(simclr.corrupt_images(jax.random.key(0), images, "clean", 0.1), images)
    with pytest.raises(ConfigError):
        simclr.corrupt_images(jax.random.key(0), images, "blur", 0.1)


def test_linear_probe_separates_separable_features_and_masks_select_rows():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300).astype(np.int32)
    features = rng.standard_normal((300, 4)).astype(np.float32) + 4.0 * np.eye(4)[labels]
    config = simclr.ProbeConfig(steps=200, num_classes=3)
    masks = simclr.labelled_masks(labels, (30, 300), seed=0)
    assert masks[0].sum() == 30 and np.all(masks[1] >= masks[0])  # nested, class-balanced
    assert np.all(np.bincount(labels[masks[0] > 0], minlength=3) == 10)
    accuracy = jax.vmap(simclr.linear_probe_accuracy, in_axes=(None, None, None, 0, None, None))(
        config,
        jnp.asarray(features),
        jnp.asarray(labels),
        jnp.asarray(masks),
        jnp.asarray(features),
        jnp.asarray(labels),
    )
    assert np.all(np.asarray(accuracy) > 0.95)
    # Labels scrambled on the masked-out rows must not matter.
    scrambled = np.where(masks[0] > 0, labels, (labels + 1) % 3)
    only_subset = simclr.linear_probe_accuracy(
        config,
        jnp.asarray(features),
        jnp.asarray(scrambled),
        jnp.asarray(masks[0]),
        jnp.asarray(features),
        jnp.asarray(labels),
    )
    np.testing.assert_allclose(float(only_subset), float(accuracy[0]), atol=1e-6)


def test_coarse_labels_are_unions_of_digits():
    digits = np.arange(10)
    assert simclr.coarse_labels(digits, 2).tolist() == [0] * 5 + [1] * 5
    assert simclr.coarse_labels(digits, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    np.testing.assert_array_equal(simclr.coarse_labels(digits, 10), digits)
    with pytest.raises(ConfigError):
        simclr.coarse_labels(digits, 3)


def test_pretrain_step_runs_and_is_deterministic_under_the_key():
    images = jnp.asarray(np.random.default_rng(0).random((16, 12, 12, 1)), jnp.float32)
    labels = jnp.arange(16, dtype=jnp.int32) % 10
    config = simclr.PretrainConfig(
        steps=2, chunk_steps=2, batch_size=8, channels=(4, 8), features=16, projection_dim=8
    )
    init, chunk = simclr.make_pretrain(config, (12, 12, 1))
    chunk = jax.jit(chunk)
    state = init(jax.random.key(0))
    new_state, metrics = chunk(state, images, labels, jnp.asarray(16))
    assert metrics["pretrain/loss"].shape == (2,) and np.all(np.isfinite(metrics["pretrain/loss"]))
    assert int(new_state.step) == 2
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), state.params, new_state.params)
    assert max(jax.tree_util.tree_leaves(moved)) > 0
    again, _ = chunk(init(jax.random.key(0)), images, labels, jnp.asarray(16))
    jax.tree_util.tree_map(np.testing.assert_array_equal, new_state.params, again.params)
    features = simclr.encode(config, new_state.params, np.asarray(images), block=5)
    assert features.shape == (16, 16)
    with pytest.raises(ConfigError):
        simclr.PretrainConfig(objective="byol")


@pytest.mark.slow
def test_cli_study_tiny_writes_report(tmp_path):
    from brackit.cli import main

    assert main(["extras", "simclr", "study", "--budget", "tiny", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "extras_simclr.md").read_text()
    for section in (
        "Pretraining-set size",
        "Labelled-set size",
        "Corrupted pretraining images",
        "Label granularity",
    ):
        assert section in report
    assert "git commit:" in report and "command: `brackit" in report
    assert (tmp_path / "extras_simclr.png").stat().st_size > 1000


def test_cli_rejects_an_unknown_budget(tmp_path, capsys):
    from brackit.cli import main

    assert main(["extras", "simclr", "study", "--budget", "huge", "--out", str(tmp_path)]) == 2
    assert "budget" in capsys.readouterr().err


def test_slice_and_xla_convolution_encoders_share_parameters_and_function():
    images = jax.random.uniform(jax.random.key(1), (3, 12, 12, 3))
    slices = simclr.Model("simclr", 8, channels=(4, 6), features=16, use_slices=True)
    xla = simclr.Model("simclr", 8, channels=(4, 6), features=16, use_slices=False)
    params = xla.init(jax.random.key(0), images)
    assert jax.tree.structure(slices.init(jax.random.key(0), images)) == jax.tree.structure(params)
    np.testing.assert_allclose(
        np.asarray(slices.apply(params, images)), np.asarray(xla.apply(params, images)), rtol=1e-4, atol=1e-5
    )
    assert simclr.PretrainConfig().use_slices and not simclr.PretrainConfig().unroll
