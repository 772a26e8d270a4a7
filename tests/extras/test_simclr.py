"""Tests of brackit.extras.simclr: NT-Xent against a float64 reference, augmentations, corruptions, probe,
fine-tuning from a pretrained encoder, the findings' tests, and the study command."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brackit.errors import ConfigError
from brackit.extras import simclr
from brackit.extras.data import ImageDataset


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


def _tiny_config(**changes) -> simclr.PretrainConfig:
    return simclr.PretrainConfig(
        **{
            "steps": 2,
            "chunk_steps": 2,
            "batch_size": 8,
            "channels": (4, 8),
            "features": 16,
            "projection_dim": 8,
        }
        | changes
    )


def test_nested_order_puts_each_labelled_subset_first():
    labels = np.random.default_rng(3).integers(0, 4, 60)
    masks = simclr.labelled_masks(labels, (8, 20, 40), seed=1)
    order = simclr.nested_order(masks)
    assert sorted(order.tolist()) == list(range(60))  # a permutation
    for mask in masks:
        count = int(mask.sum())
        assert set(order[:count].tolist()) == set(np.flatnonzero(mask).tolist())
    with pytest.raises(ConfigError, match="nested"):
        simclr.nested_order(masks[::-1])


def test_init_from_a_pretrained_encoder_keeps_it_and_a_new_head():
    simclr_init, _ = simclr.make_pretrain(_tiny_config(), (12, 12, 1))
    encoder = simclr_init(jax.random.key(5)).params["params"]["encoder"]
    init, _ = simclr.make_pretrain(_tiny_config(objective="supervised"), (12, 12, 1))
    # Fine-tuning starts from the SimCLR encoder and the same new head as the from-scratch run (same key).
    tuned, scratch = init(jax.random.key(1), encoder), init(jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, tuned.params["params"]["encoder"], encoder)
    jax.tree.map(
        np.testing.assert_array_equal, tuned.params["params"]["head"], scratch.params["params"]["head"]
    )
    kernel = scratch.params["params"]["encoder"]["Dense_0"]["kernel"]
    assert np.abs(kernel - encoder["Dense_0"]["kernel"]).max() > 1e-3  # scratch: a random encoder
    # Adam's moments start at zero whatever the parameters.
    assert all(float(jnp.abs(leaf).max()) == 0 for leaf in jax.tree.leaves(tuned.opt_state) if leaf.ndim)
    narrow, _ = simclr.make_pretrain(_tiny_config(objective="supervised", features=8), (12, 12, 1))
    with pytest.raises(ConfigError, match="encoder"):
        narrow(jax.random.key(0), encoder)


def test_classifier_accuracy_of_a_constant_network():
    # Zero kernels make the encoder's output relu(dense bias) = b for every image, so every logit row is
    # b @ W + c: one predicted class for all images, and the accuracy is that class's share of the labels.
    config = _tiny_config(objective="supervised")
    params = config.model().init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)))
    params = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(2)
    b, w, c = rng.random(16), rng.standard_normal((16, 10)), rng.standard_normal(10)
    params["params"]["encoder"]["Dense_0"]["bias"] = jnp.asarray(b, jnp.float32)
    params["params"]["head"]["kernel"] = jnp.asarray(w, jnp.float32)
    params["params"]["head"]["bias"] = jnp.asarray(c, jnp.float32)
    predicted = int(np.argmax(b @ w + c))
    labels = rng.integers(0, 10, 23)
    labels[:5] = predicted
    images = rng.random((23, 12, 12, 1)).astype(np.float32)
    expected = np.mean(labels == predicted)
    assert simclr.classifier_accuracy(config, params, images, labels, block=7) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="supervised"):
        simclr.classifier_accuracy(_tiny_config(), params, images, labels)


def _result(**changes) -> simclr.StudyResult:
    """A hand-made result in which every finding holds."""
    fields = {
        "pretrain_size": {250: 0.90, 1000: 0.94, 4000: 0.945},
        "label_size": {
            20: {"simclr_probe": 0.6, "simclr_finetune": 0.55, "supervised_scratch": 0.4},
            4000: {"simclr_probe": 0.9, "simclr_finetune": 0.97, "supervised_scratch": 0.96},
        },
        "label_count": {20: 20, 4000: 4000},
        "corruption": {
            "clean": {"simclr": 0.95, "supervised": 0.97},
            "salt_pepper": {"simclr": 0.94, "supervised": 0.97},
            "downsample4": {"simclr": 0.90, "supervised": 0.96},
        },
        "granularity": {2: {"simclr": 0.95, "supervised": 0.96}, 10: {"simclr": 0.90, "supervised": 0.97}},
        "domain": {
            "a": {"in_domain": 0.95, "cross_domain": 0.90, "pooled": 0.955},
            "b": {"in_domain": 0.90, "cross_domain": 0.85, "pooled": 0.89},
        },
        "final_loss": {"simclr/clean": 4.0},
        "seconds": {"simclr": 3.0},
    }
    return simclr.StudyResult(**(fields | changes))


def test_check_claims_on_hand_made_results():
    claims = simclr.check_claims(_result())
    assert set(claims) == {
        "pretrain_size/saturates",
        "label_size/few_labels_finetune",
        "label_size/few_labels_probe",
        "label_size/advantage_shrinks",
        "corruption/disparate_impact/salt_pepper",
        "corruption/disparate_impact/downsample4",
        "corruption/resolution_worst",
        "granularity/gap_grows",
        "domain/in_domain_beats_cross/a",
        "domain/pool_adds_little/a",
        "domain/in_domain_beats_cross/b",
        "domain/pool_adds_little/b",
    }
    assert all(claim.holds for claim in claims.values())
    # Each finding fails when its numbers turn: 1000 -> 4000 images gain 2 points (not < 1); with 20 labels
    # fine-tuning (0.35) and the probe (0.30) lose to scratch (0.40), and fine-tuning's lead grows from -5
    # points to +6 with all labels; 4x downsampling costs supervised 6 points, SimCLR 5; the supervised -
    # SimCLR gap falls from +1 point (2 groups) to -1 (10); in-domain ties cross-domain, and the pool adds 2.
    turned = simclr.check_claims(
        _result(
            pretrain_size={1000: 0.90, 4000: 0.92},
            label_size={
                20: {"simclr_probe": 0.3, "simclr_finetune": 0.35, "supervised_scratch": 0.4},
                4000: {"simclr_probe": 0.9, "simclr_finetune": 0.97, "supervised_scratch": 0.91},
            },
            corruption={
                "clean": {"simclr": 0.95, "supervised": 0.97},
                "downsample4": {"simclr": 0.90, "supervised": 0.91},
            },
            granularity={2: {"simclr": 0.90, "supervised": 0.91}, 10: {"simclr": 0.97, "supervised": 0.96}},
            domain={"a": {"in_domain": 0.90, "cross_domain": 0.90, "pooled": 0.92}},
        )
    )
    assert not any(claim.holds for claim in turned.values())
    assert "corruption/resolution_worst" not in turned  # no other corruption to compare with
    # The margin: a 0.5-point gain is "little" at one point, not at a quarter point.
    half = _result(pretrain_size={1000: 0.90, 4000: 0.905})
    assert simclr.check_claims(half)["pretrain_size/saturates"].holds
    assert not simclr.check_claims(half, margin=0.0025)["pretrain_size/saturates"].holds
    assert "pretrain_size/saturates" not in simclr.check_claims(_result(pretrain_size={4000: 0.9}))
    assert not any(name.startswith("domain/") for name in simclr.check_claims(_result(domain={})))


def test_result_metrics_are_flat_and_named():
    metrics = _result().metrics()
    assert metrics["pretrain_size/1000/simclr_probe"] == 0.94
    assert metrics["label_size/20/count"] == 20.0
    assert metrics["label_size/4000/supervised_scratch"] == 0.96
    assert metrics["corruption/downsample4/supervised"] == 0.96
    assert metrics["granularity/10/simclr"] == 0.90
    assert metrics["domain/b/pooled"] == 0.89
    assert metrics["loss/simclr/clean"] == 4.0
    assert not any("second" in name or name.startswith("seconds") for name in metrics)
    assert all(isinstance(value, float) for value in metrics.values())


def test_study_config_rules():
    with pytest.raises(ConfigError, match="StudyConfig: corruptions must include 'clean'"):
        simclr.StudyConfig(corruptions=("salt_pepper",))
    with pytest.raises(ConfigError, match="corruptions=\\('clean', 'blur'\\)"):
        simclr.StudyConfig(corruptions=("clean", "blur"))
    with pytest.raises(ConfigError, match="granularities must be from"):
        simclr.StudyConfig(granularities=(3,))
    with pytest.raises(ConfigError, match=r"need pretrain\.objective 'simclr'"):
        simclr.StudyConfig(pretrain=simclr.PretrainConfig(objective="supervised"))
    with pytest.raises(ConfigError, match="PretrainConfig: objective must be one of 'simclr', 'supervised'"):
        simclr.PretrainConfig(objective="byol")
    with pytest.raises(ConfigError, match="label_sizes"):
        simclr.StudyConfig(label_sizes=(100, 50))
    with pytest.raises(ConfigError, match="finetune_steps"):
        simclr.StudyConfig(pretrain=simclr.PretrainConfig(chunk_steps=100), finetune_steps=150)
    config = simclr.StudyConfig(pretrain=simclr.PretrainConfig(steps=200, chunk_steps=10), finetune_steps=30)
    assert config.supervised(30).objective == "supervised" and config.supervised(30).steps == 30
    assert config.supervised().steps == 200


def _tiny_study_data(seed: int, size: int = 12, train: int = 40, name: str = "a") -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10, dtype=np.int32), train // 10 + 3)
    images = rng.random((len(labels), size, size, 1)).astype(np.float32)
    images[np.arange(len(labels)), labels, labels] = 1.0  # a class-dependent bright pixel
    return ImageDataset(name, images[:train], labels[:train], images[train:], labels[train:], 10)


@pytest.mark.slow
def test_run_study_is_deterministic_and_covers_every_axis():
    config = simclr.StudyConfig(
        pretrain=_tiny_config(),
        pretrain_sizes=(20, 40),
        label_sizes=(10, 40),
        finetune_steps=2,
        corruptions=("clean", "downsample2"),
        probe=simclr.ProbeConfig(steps=5),
        seed=3,
    )
    data, other = _tiny_study_data(0), _tiny_study_data(1, train=20, name="b")
    first = simclr.run_study(config, data, other)
    again = simclr.run_study(config, data, other)
    assert first.metrics() == again.metrics()
    assert set(first.domain) == {"a", "b"} and set(first.domain["a"]) == set(simclr.DOMAIN_POOLS)
    assert first.label_count == {10: 10, 40: 40}
    assert set(first.label_size[10]) == set(simclr.LABEL_METHODS)
    # The in-domain run of the main domain is the clean SimCLR run.
    assert first.domain["a"]["in_domain"] == first.corruption["clean"]["simclr"]
    values = np.array(list(first.metrics().values()))
    assert np.all(np.isfinite(values))
    with pytest.raises(ConfigError, match="second domain"):
        simclr.run_study(config, data, _tiny_study_data(1, size=10))


@pytest.mark.slow
def test_cli_study_tiny_writes_report_and_sidecar(tmp_path):
    from brackit.cli import main

    args = ["extras", "simclr", "study", "--budget", "tiny", "--seeds", "0,1", "--out", str(tmp_path)]
    assert main(args) == 0
    report = (tmp_path / "extras_simclr.md").read_text()
    for section in (
        "Findings of the paper",
        "Pretraining-set size",
        "Labelled-set size",
        "SimCLR fine-tuned",
        "supervised from scratch",
        "Data domain",
        "Corrupted pretraining images",
        "Label granularity",
    ):
        assert section in report
    assert "git commit:" in report and "command: `brackit" in report
    assert "/2 seeds" in report  # verdicts over the two seeds
    sidecar = json.loads((tmp_path / "extras_simclr.json").read_text())
    assert sidecar["budget"] == "tiny" and sidecar["seeds"] == [0, 1]
    assert set(sidecar["per_seed"]) == {"0", "1"}
    seed0 = sidecar["per_seed"]["0"]
    assert "label_size/20/simclr_finetune" in seed0 and "domain/mnist5k/pooled" in seed0
    assert seed0["claim/label_size/few_labels_probe"] in (0.0, 1.0)
    assert (tmp_path / "extras_simclr.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--budget", "huge", "--budget"),
        ("--seeds", "0,x", "--seeds"),
        ("--seeds", "1,1", "--seeds"),
        ("--temperature", "0", "--temperature"),
        ("--salt-pepper", "1.5", "--salt-pepper"),
    ],
)
def test_cli_rejects_bad_options_before_writing(tmp_path, capsys, option, value, message):
    from brackit.cli import main

    out = tmp_path / "out"
    assert main(["extras", "simclr", "study", option, value, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


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


def test_cli_budgets_name_the_study_corruptions():
    from brackit.extras import simclr_cli

    assert simclr_cli.EVERY_CORRUPTION == simclr.CORRUPTIONS
    for sizes in simclr_cli.BUDGET_SIZES.values():
        assert set(sizes.corruptions) <= set(simclr.CORRUPTIONS)
        assert sizes.pretrain_sizes[-1] == sizes.train_size  # the largest pretraining set is every image
