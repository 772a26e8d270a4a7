"""Tests of brackit.extras.randomization (Zhang et al. 2017): transforms, Theorem 1, min-norm SGD, CLI."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from brackit.errors import BrackitError, ConfigError
from brackit.extras import randomization as rz


def _images(n: int = 64, size: int = 6, seed: int = 0) -> np.ndarray:
    # Distinct pixel values in every image so that permutations can be recovered exactly.
    rng = np.random.default_rng(seed)
    return rng.permutation(n * size * size).reshape(n, size, size, 1).astype(np.float32) / (n * size * size)


def test_corrupt_labels_fraction_within_binomial_tolerance():
    n, classes, p = 20_000, 10, 0.3
    labels = np.arange(n, dtype=np.int32) % classes
    corrupted = rz.corrupt_labels(jax.random.key(0), labels, classes, p)
    assert corrupted.dtype == np.int32 and corrupted.shape == labels.shape
    assert corrupted.min() >= 0 and corrupted.max() < classes
    # A replaced label keeps its class with probability 1/K, so P(changed) = p (K - 1) / K.
    expected = p * (classes - 1) / classes
    tolerance = 5 * np.sqrt(expected * (1 - expected) / n)
    assert abs(np.mean(corrupted != labels) - expected) < tolerance
    # p = 0 keeps every label; p = 1 gives roughly uniform classes.
    np.testing.assert_array_equal(rz.corrupt_labels(jax.random.key(1), labels, classes, 0.0), labels)
    counts = np.bincount(rz.random_labels(jax.random.key(2), labels, classes), minlength=classes)
    assert np.all(np.abs(counts - n / classes) < 5 * np.sqrt(n / classes))


def test_corrupt_labels_is_a_function_of_the_key():
    labels = np.arange(100, dtype=np.int32) % 10
    first = rz.corrupt_labels(jax.random.key(3), labels, 10, 0.5)
    np.testing.assert_array_equal(first, rz.corrupt_labels(jax.random.key(3), labels, 10, 0.5))
    assert np.any(first != rz.corrupt_labels(jax.random.key(4), labels, 10, 0.5))
    with pytest.raises(ConfigError):
        rz.corrupt_labels(jax.random.key(0), labels, 10, 1.5)


def test_shuffled_pixels_use_one_permutation_for_all_images():
    train, test = _images(32), _images(8, seed=1)
    data = rz.apply_setting(jax.random.key(0), "shuffled_pixels", train, np.zeros(32), test, np.zeros(8), 10)
    flat_in = train.reshape(32, -1)
    flat_out = data.x_train.reshape(32, -1)
    # Recover each image's permutation from its distinct values: all equal, and a true permutation.
    # out[j] = in[perm[j]]  =>  perm = argsort(in)[rank of out[j] among the sorted inputs].
    permutations = np.stack(
        [
            np.argsort(row)[np.searchsorted(np.sort(row), out)]
            for row, out in zip(flat_in, flat_out, strict=True)
        ]
    )
    assert np.all(permutations == permutations[0])
    np.testing.assert_array_equal(np.sort(permutations[0]), np.arange(36))
    assert not np.array_equal(permutations[0], np.arange(36))
    # The test images get the same permutation.
    np.testing.assert_array_equal(data.x_test.reshape(8, -1), test.reshape(8, -1)[:, permutations[0]])


def test_random_pixels_permute_each_image_differently():
    images = _images(16)
    out = rz.random_pixels(jax.random.key(0), images)
    assert out.shape == images.shape
    flat_in, flat_out = images.reshape(16, -1), out.reshape(16, -1)
    permutations = []
    for row, shuffled in zip(flat_in, flat_out, strict=True):
        np.testing.assert_array_equal(np.sort(row), np.sort(shuffled))  # same multiset of pixels
        permutations.append(tuple(np.argsort(row)[np.searchsorted(np.sort(row), shuffled)]))
    assert len(set(permutations)) == 16


def test_gaussian_images_match_mean_and_variance():
    images = _images(200, size=8)
    data = rz.apply_setting(
        jax.random.key(0), "gaussian", images, np.zeros(200), images[:50], np.zeros(50), 10
    )
    mean, std = images.mean(), images.std()
    sample = data.x_train
    n = sample.size
    assert sample.shape == images.shape and sample.dtype == np.float32
    assert abs(sample.mean() - mean) < 5 * std / np.sqrt(n)
    assert abs(sample.var() / images.var() - 1) < 5 * np.sqrt(2 / n)
    assert data.x_test.shape == (50, 8, 8, 1)


def test_apply_setting_rejects_unknown_names():
    with pytest.raises(BrackitError):
        rz.apply_setting(jax.random.key(0), "noise", _images(4), np.zeros(4), _images(2), np.zeros(2), 10)
    with pytest.raises(ConfigError):
        rz.FitConfig(architecture="resnet")


def test_two_layer_relu_fits_random_labels_exactly_with_2n_plus_d_weights():
    rng = np.random.default_rng(0)
    n, d = 300, 64
    x = rng.random((n, d))
    y = rng.integers(0, 10, n).astype(np.float64)
    net = rz.fit_two_layer_relu(x, y, seed=1)
    assert net.num_parameters == 2 * n + d
    predictions = net(x)
    np.testing.assert_allclose(predictions, y, atol=1e-6)
    np.testing.assert_array_equal(np.rint(predictions), y)
    assert np.all(np.diff(net.thresholds) > 0)
    with pytest.raises(ConfigError):
        rz.fit_two_layer_relu(np.ones((3, 2)), np.zeros(3))


def test_sgd_from_zero_finds_the_minimum_norm_interpolant():
    from_zero = rz.sgd_min_norm(seed=0, num_samples=20, dim=80, steps=3000)
    assert from_zero.relative_residual < 1e-4
    assert from_zero.relative_distance < 1e-3
    # From a random start SGD still interpolates but keeps a null-space component: not minimum norm.
    from_random = rz.sgd_min_norm(seed=0, num_samples=20, dim=80, steps=3000, init_scale=1.0)
    assert from_random.relative_residual < 1e-4
    assert from_random.relative_distance > 0.05
    assert from_random.sgd_norm > from_zero.sgd_norm


def test_fit_to_zero_vmaps_runs_and_fits_a_tiny_problem():
    rng = np.random.default_rng(0)
    x = rng.random((2, 64, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 4, (2, 64)).astype(np.int32)
    config = rz.FitConfig(
        architecture="mlp1x512", learning_rate=0.05, batch_size=32, chunk_steps=50, max_steps=1000
    )
    result = rz.fit_to_zero(config, x, y, x[:, :16], y[:, :16], jax.random.split(jax.random.key(0), 2), 4)
    assert result.loss.shape == (2, result.chunk_steps[-1])
    assert np.all(result.steps_to_fit > 0)
    assert np.all(result.train_error[:, -1] == 0)
    assert np.all(np.isfinite(result.loss))
    # The test subset is part of the train set here, so it is fitted too.
    np.testing.assert_array_equal(result.test_error_at_fit, 0.0)


def test_fit_to_zero_run_by_run_matches_the_vmapped_curves_shape():
    rng = np.random.default_rng(1)
    x = rng.random((2, 32, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, (2, 32)).astype(np.int32)
    config = rz.FitConfig(
        architecture="cnn",
        learning_rate=0.05,
        batch_size=16,
        chunk_steps=5,
        max_steps=400,
        unroll=False,
        vmap_runs=False,
    )
    result = rz.fit_to_zero(config, x, y, x, y, jax.random.split(jax.random.key(0), 2), 3)
    assert result.train_error.shape == (2, len(result.chunk_steps))
    assert result.loss.shape == (2, result.chunk_steps[-1])
    assert np.all(result.steps_to_fit > 0) and np.all(result.steps_to_fit <= result.chunk_steps[-1])
    np.testing.assert_array_equal(result.train_error[np.arange(2), result.steps_to_fit // 5 - 1], 0.0)


def test_cli_run_tiny_writes_report_and_plots(tmp_path):
    from brackit.cli import main

    assert main(["extras", "randomization", "run", "--budget", "tiny", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "extras_randomization.md").read_text()
    for section in ("Figure 1a", "Figure 1b and 1c", "Theorem 1", "Implicit regularization"):
        assert section in report
    assert "| 60 | 784 | 904 | 904 |" in report  # n, d, parameters, 2n + d
    for plot in ("extras_randomization_fig1a.png", "extras_randomization_fig1bc.png"):
        assert (tmp_path / plot).stat().st_size > 1000


def test_cli_rejects_an_unknown_budget(tmp_path, capsys):
    from brackit.cli import main

    assert main(["extras", "randomization", "run", "--budget", "huge", "--out", str(tmp_path)]) == 2
    assert "budget" in capsys.readouterr().err
