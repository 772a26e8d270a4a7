"""Tests of brackit.extras.randomization (Zhang et al. 2017): transforms, Theorem 1, min-norm SGD, CLI."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from brackit.errors import BrackitError, ConfigError
from brackit.extras import randomization as rz
from brackit.extras import randomization_cli as rzcli


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
    with pytest.raises(ConfigError, match="FitConfig: architecture must be one of 'mlp1x512'"):
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


def test_two_layer_relu_rounding_bound_is_two_gamma_n_times_abs_a_abs_w():
    rng = np.random.default_rng(2)
    n, d = 5, 3
    x = rng.random((n, d))
    net = rz.fit_two_layer_relu(x, rng.integers(0, 10, n).astype(np.float64), seed=0)
    # Hand-built: A_ij = max(<a, x_i> - b_j, 0), u = 2^-53, gamma_5 = 5u / (1 - 5u).
    hidden = np.array([[max(float(xi @ net.direction) - b, 0.0) for b in net.thresholds] for xi in x])
    u = 2.0**-53
    gamma = 5 * u / (1 - 5 * u)
    expected = (
        2
        * gamma
        * np.array([sum(abs(h) * abs(w) for h, w in zip(row, net.weights, strict=True)) for row in hidden])
    )
    np.testing.assert_allclose(net.rounding_bound(x), expected, rtol=1e-12)
    np.testing.assert_allclose(net.hidden(x), hidden, rtol=0, atol=1e-15)
    # Nearly equal points, so nearly equal projections: large weights, and errors within the bound.
    x = np.concatenate([x, x + 1e-6 * rng.random((n, d))])
    y = rng.integers(0, 10, 2 * n).astype(np.float64)
    net = rz.fit_two_layer_relu(x, y, seed=0)
    assert np.abs(net.weights).max() > 1e6 and np.abs(net(x) - y).max() > 1e-10
    assert np.all(np.abs(net(x) - y) <= net.rounding_bound(x))


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


def _run_cli(monkeypatch, args: list[str]) -> int:
    from brackit.cli import main

    # The sidecar keeps sys.argv (what the installed `brackit` script receives) as the rerun command.
    monkeypatch.setattr("sys.argv", ["brackit", *args])
    return main(args)


def test_cli_run_tiny_writes_report_sidecar_and_plots(tmp_path, monkeypatch):
    args = ["extras", "randomization", "run", "--budget", "tiny", "--seeds", "0,1", "--out", str(tmp_path)]
    assert _run_cli(monkeypatch, args) == 0
    report = (tmp_path / "extras_randomization.md").read_text()
    assert report.startswith("# brackit.extras.randomization")
    for section in ("The paper's claims", "Figure 1a", "Figure 1b and 1c", "Theorem 1", "Section 5"):
        assert section in report
    assert "| 60 | 784 | 904 | 904 |" in report  # n, d, parameters (both seeds: one value), 2n + d
    assert "| max \\|c(x_i) - y_i\\| |" in report  # a cell's own bars escaped: the table keeps its columns
    sidecar = json.loads((tmp_path / "extras_randomization.json").read_text())
    assert sidecar["argv"] == args and sidecar["budget"] == "tiny" and sidecar["seeds"] == [0, 1]
    assert set(sidecar["per_seed"]) == {"0", "1"}
    metrics = sidecar["per_seed"]["0"]
    assert all(isinstance(v, float) for v in metrics.values())
    names = set(rzcli.run_names(rzcli.BUDGET_SIZES["tiny"].networks[0]))
    assert names == {"p=0.00", "p=1.00", "shuffled_pixels", "random_pixels", "gaussian"}
    for name in names:
        assert metrics[f"mlp1x512/{name}/steps_to_fit"] in (-1.0, 25.0, 50.0)  # chunk ends, or not fitted
    # Theorem 1 holds in every seed, at any budget: its verdict line says so, and each seed records it.
    assert metrics["theorem_1/parameters"] == 2 * 60 + 784 and metrics["claim/theorem_1"] == 1.0
    assert "| reproduced (2/2 seeds) |" in report
    # Each claim's verdict agrees with the per-seed claims recorded in the sidecar.
    for claim in rzcli.CLAIMS:
        row = next(line for line in report.splitlines() if line.startswith(f"| {claim.statement} |"))
        if claim.over_seeds:  # decided by an interval over the two seeds: no per-seed entry
            assert row.endswith(" (95% interval over 2 seeds) |")
            assert f"claim/{claim.name}" not in metrics
            continue
        held = [sidecar["per_seed"][s][f"claim/{claim.name}"] == 1.0 for s in ("0", "1")]
        expected = {2: "reproduced (2/2 seeds)", 1: "held in 1/2 seeds", 0: "not reproduced (0/2 seeds)"}
        assert row.endswith(f"| {expected[sum(held)]} |")
    for plot in ("extras_randomization_fig1a.png", "extras_randomization_fig1bc.png"):
        assert (tmp_path / plot).stat().st_size > 1000
    # A seed's numbers do not depend on the seeds run beside it (what benchmarks/check_extras.py reruns).
    alone = tmp_path / "alone"
    args = ["extras", "randomization", "run", "--budget", "tiny", "--seeds", "1", "--out", str(alone)]
    assert _run_cli(monkeypatch, args) == 0
    again = json.loads((alone / "extras_randomization.json").read_text())
    assert again["per_seed"]["1"] == sidecar["per_seed"]["1"]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--budget", "huge"], "--budget: expected one of"),
        (["--seeds", "0,0"], "--seeds: expected distinct seeds"),
        (["--seeds", "zero"], "--seeds: expected comma-separated integers"),
        (["--seeds", "-1"], "--seeds must be in"),
    ],
)
def test_cli_rejects_bad_options_before_writing(tmp_path, capsys, option, expected):
    from brackit.cli import main

    out = tmp_path / "out"
    assert main(["extras", "randomization", "run", *option, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert expected in error and len(error.strip().splitlines()) == 1
    assert not out.exists()


def test_budgets_give_every_claim_its_runs():
    for name, sizes in rzcli.BUDGET_SIZES.items():
        assert sizes.networks[0].architecture == rzcli.FIGURE_1A_NETWORK, name
        for network in sizes.networks:
            assert network.corruptions[0] == 0.0 and network.corruptions[-1] == 1.0, name
            assert list(network.corruptions) == sorted(network.corruptions), name
            assert network.architecture in rz.ARCHITECTURES
            assert network.train_size <= 4000 and sizes.test_size <= 1000  # MNIST 5k's 80/20 split
            assert sizes.max_steps % network.chunk_steps == 0


def test_chance_interval_is_students_t_interval_over_seeds():
    # mean 0.91; s = sqrt((0.03^2 + 0.01^2 + 0.04^2) / 2) = 0.0360555; t(0.975, 2 dof) = 4.3026527;
    # half width 4.3026527 * 0.0360555 / sqrt(3) = 0.0895662
    low, high = rzcli.chance_interval([0.88, 0.90, 0.95])
    np.testing.assert_allclose([low, high], [0.8204338, 0.9995662], atol=1e-6)
    assert rzcli.chance_interval([0.9]) is None


def test_interval_claims_and_verdicts():
    def seed(mlp: float, cnn: float) -> dict[str, float]:
        return {"mlp1x512/p=1.00/test_error_at_fit": mlp, "cnn/p=1.00/test_error_at_fit": cnn}

    # cnn 0.80, 0.81, 0.82: interval 0.785-0.835 misses 0.9; the MLP's contains it
    over = rzcli.interval_claims([seed(0.88, 0.80), seed(0.90, 0.81), seed(0.95, 0.82)], SIZES, 10)
    assert over["chance_at_random_labels"] is False
    np.testing.assert_allclose(over["intervals"]["cnn"], [0.81 - 0.0248414, 0.81 + 0.0248414], atol=1e-6)
    assert rzcli.interval_verdict(False, 3) == "not reproduced (95% interval over 3 seeds)"
    over = rzcli.interval_claims([seed(0.88, 0.85), seed(0.90, 0.90), seed(0.95, 0.93)], SIZES, 10)
    assert over["chance_at_random_labels"] is True
    assert rzcli.interval_verdict(True, 3) == "reproduced (95% interval over 3 seeds)"
    assert rzcli.interval_claims([seed(0.9, 0.9)], SIZES, 10)["chance_at_random_labels"] is None
    assert rzcli.interval_verdict(None, 1) == "undecided (one seed gives no interval)"


def _claims_metrics(**changes: float) -> dict[str, float]:
    """Metrics of a seed in which every claim holds, for SIZES below; ``changes`` overrides some."""
    metrics = {
        # mlp1x512: steps 300, 450, 600 at p = 0, 0.5, 1 (2x slower), test error 0.1, 0.5, 0.9
        "mlp1x512/p=0.00/steps_to_fit": 300.0,
        "mlp1x512/p=0.50/steps_to_fit": 450.0,
        "mlp1x512/p=1.00/steps_to_fit": 600.0,
        "mlp1x512/p=0.00/test_error_at_fit": 0.1,
        "mlp1x512/p=0.50/test_error_at_fit": 0.5,
        "mlp1x512/p=1.00/test_error_at_fit": 0.9,
        "mlp1x512/shuffled_pixels/steps_to_fit": 300.0,
        "mlp1x512/random_pixels/steps_to_fit": 200.0,
        "mlp1x512/gaussian/steps_to_fit": 200.0,
        "cnn/p=0.00/steps_to_fit": 100.0,
        "cnn/p=1.00/steps_to_fit": 400.0,
        "cnn/p=0.00/test_error_at_fit": 0.12,
        "cnn/p=1.00/test_error_at_fit": 0.88,
        "theorem_1/n": 10.0,
        "theorem_1/d": 4.0,
        "theorem_1/parameters": 24.0,
        "theorem_1/max_abs_error": 1e-9,
        "theorem_1/max_error_over_bound": 1e-3,
        "theorem_1/rounded_accuracy": 1.0,
        "min_norm/zero/relative_residual": 1e-7,
        "min_norm/zero/relative_distance": 1e-6,
        "min_norm/random/relative_distance": 0.08,
    }
    metrics.update({key.replace("__", "/"): value for key, value in changes.items()})
    return metrics


SIZES = rzcli.Budget(
    test_size=1000,  # chance band 0.8715-0.9285
    networks=(
        rzcli.Network("mlp1x512", 100, (0.0, 0.5, 1.0), 0.05, 100),
        rzcli.Network("cnn", 100, (0.0, 1.0), 0.02, 20),
    ),
    max_steps=1000,
    theorem_points=10,
    min_norm_steps=10,
)


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        ({}, set()),
        (
            {"cnn__p=1.00__steps_to_fit": -1.0},
            {"fit_random_labels", "constant_slowdown", "slowdown_grows"},
        ),
        ({"mlp1x512__gaussian__steps_to_fit": -1.0}, {"fit_random_inputs", "inputs_faster"}),
        ({"cnn__p=1.00__steps_to_fit": 500.0}, set()),  # 5x: still small
        ({"cnn__p=1.00__steps_to_fit": 600.0}, {"constant_slowdown"}),  # 6x: not small
        ({"cnn__p=1.00__steps_to_fit": 100.0}, {"constant_slowdown"}),  # 1x: not slower
        ({"mlp1x512__p=0.50__steps_to_fit": 700.0}, {"slowdown_grows"}),  # 300, 700, 600
        ({"mlp1x512__random_pixels__steps_to_fit": 600.0}, {"inputs_faster"}),  # not faster: equal
        ({"mlp1x512__p=0.50__test_error_at_fit": 0.95}, {"test_error_grows"}),  # 0.1, 0.95, 0.9
        ({"cnn__p=1.00__test_error_at_fit": 0.11}, {"test_error_grows"}),  # 0.12, 0.11
        ({"cnn__p=1.00__test_error_at_fit": 0.5}, set()),  # far from chance: decided over seeds, not here
        ({"theorem_1__parameters": 25.0}, {"theorem_1"}),
        ({"theorem_1__max_abs_error": 2e-5, "theorem_1__max_error_over_bound": 0.01}, set()),  # within
        ({"theorem_1__max_error_over_bound": 1.5}, {"theorem_1"}),
        ({"theorem_1__rounded_accuracy": 0.9}, {"theorem_1"}),
        ({"min_norm__zero__relative_distance": 2e-3}, {"min_norm"}),
        ({"min_norm__random__relative_distance": 5e-3}, {"min_norm"}),
    ],
)
def test_seed_claims_follow_their_criteria(change, broken):
    holds = rzcli.seed_claims(_claims_metrics(**change), SIZES, num_classes=10)
    assert set(holds) == {claim.name for claim in rzcli.CLAIMS if not claim.over_seeds}
    assert {name for name, held in holds.items() if not held} == broken


def test_formatting_over_seeds():
    assert rzcli.format_steps([1000.0, 1200.0, 1100.0]) == "1100 (1000-1200)"
    assert rzcli.format_steps([-1.0, 1000.0, 1200.0]) == "1100 (1000-1200), fitted in 2/3"
    assert rzcli.format_steps([-1.0, -1.0]) == "not fitted (0/2)"
    # ratios 2.0 and 3.0 (the seed where p = 0 did not fit is left out)
    assert rzcli.format_ratio([600.0, 900.0, 500.0], [300.0, 300.0, -1.0]) == "2.50 (2.00-3.00) (2/3 seeds)"
    assert rzcli.format_exact([904.0, 904.0]) == "904"
    assert rzcli.format_exact([904.0, 906.0]) == "905 (904-906)"
    assert rzcli.format_scientific([1e-9, 3e-9]) == "2.0e-09 (1.0e-09-3.0e-09)"
