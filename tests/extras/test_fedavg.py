"""Tests of brackit.extras.fedavg: partitions, masking, averaging, FedSGD as one large-batch step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brackit.errors import ConfigError
from brackit.extras import fedavg


def _tiny_data(num_examples: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(num_examples, 4, 4, 1)).astype(np.float32)
    labels = rng.integers(0, 10, size=num_examples).astype(np.int32)
    return images, labels


def _init(images: np.ndarray):
    model = fedavg.TwoNN()
    return model, model.init(jax.random.key(0), jnp.asarray(images[:1]))


def test_partitions() -> None:
    labels = np.repeat(np.arange(8), 10)
    iid = fedavg.partition_iid(labels.size, 8, seed=0)
    assert sorted(np.concatenate(iid).tolist()) == list(range(80))
    assert [len(part) for part in iid] == [10] * 8
    non_iid = fedavg.partition_pathological(labels, 8, seed=0)
    assert sorted(np.concatenate(non_iid).tolist()) == list(range(80))
    # 16 shards of 5 sorted labels (10 per digit): every shard holds one digit, so a client sees at most 2 digits.
    assert all(len(np.unique(labels[part])) <= 2 for part in non_iid)
    assert fedavg.partition_iid(80, 8, seed=1)[0].tolist() != iid[0].tolist()


def test_weighted_average_matches_hand_computation() -> None:
    client_params = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "b": jnp.array([0.0, 3.0, 6.0])}
    averaged = fedavg.weighted_average(client_params, jnp.array([1.0, 2.0, 3.0]))
    # (1 * [1, 2] + 2 * [3, 4] + 3 * [5, 6]) / 6 = [22 / 6, 28 / 6]; (0 + 6 + 18) / 6 = 4.
    np.testing.assert_allclose(averaged["w"], [22 / 6, 28 / 6], rtol=1e-6)
    np.testing.assert_allclose(averaged["b"], 4.0, rtol=1e-6)


def test_fedsgd_with_all_clients_is_one_large_batch_step() -> None:
    images, labels = _tiny_data(24)
    model, params = _init(images)
    # Unequal clients (5, 7, 12 examples) so that the n_k weighting matters.
    partition = [np.arange(0, 5), np.arange(5, 12), np.arange(12, 24)]
    clients = fedavg.stack_clients(images, labels, partition)
    config = fedavg.FedConfig(num_clients=3, client_fraction=1.0, local_epochs=1, batch_size=None)
    learning_rate = jnp.float32(0.5)

    def full_loss(params):
        logits = model.apply(params, jnp.asarray(images))
        return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(24), labels])

    # Two different programs for the same number (in float32: tests/conftest.py rules out TF32 on a GPU).
    new_params = fedavg.server_round(model.apply, config, params, clients, jax.random.key(3), learning_rate)
    grads = jax.grad(full_loss)(params)
    expected = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    for got, want in zip(jax.tree.leaves(new_params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(jax.tree.leaves(new_params)[0], jax.tree.leaves(params)[0])


@pytest.mark.parametrize("batch_size", [None, 4])
def test_padding_does_not_change_a_client_update(batch_size: int | None) -> None:
    images, labels = _tiny_data(10)
    model, params = _init(images)
    padded_images = np.concatenate([images, np.ones((7, 4, 4, 1), np.float32)])
    padded_labels = np.concatenate([labels, np.full(7, 3, np.int32)])

    def update(images, labels):
        return fedavg.local_update(
            model.apply, params, jnp.asarray(images), jnp.asarray(labels), jnp.int32(10),
            jax.random.key(5), jnp.float32(0.1), local_epochs=3, batch_size=batch_size,
        )  # fmt: skip

    unpadded, padded = update(images, labels), update(padded_images, padded_labels)
    for a, b in zip(jax.tree.leaves(unpadded), jax.tree.leaves(padded), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(jax.tree.leaves(unpadded)[0], jax.tree.leaves(params)[0])


def test_run_is_deterministic_under_key_and_tunes_learning_rates_at_once() -> None:
    images, labels = _tiny_data(40)
    config = fedavg.FedConfig(
        num_clients=4, client_fraction=0.5, local_epochs=2, batch_size=5, num_rounds=3, iid=False
    )
    first = fedavg.run_learning_rates(config, images, labels, images, labels, [0.05, 0.2])
    again = fedavg.run_learning_rates(config, images, labels, images, labels, [0.05, 0.2])
    assert first.shape == (2, 3)
    np.testing.assert_array_equal(first, again)
    assert np.all((first >= 0.0) & (first <= 1.0))
    assert fedavg.rounds_to_target(np.array([0.1, 0.5, 0.7, 0.6]), 0.6) == 3
    assert fedavg.rounds_to_target(np.array([0.1, 0.5]), 0.9) is None


def test_config_validation_and_names() -> None:
    assert fedavg.FedConfig(local_epochs=1, batch_size=None).name == "FedSGD"
    assert fedavg.FedConfig(local_epochs=5, batch_size=10).name == "FedAvg E=5 B=10"
    assert fedavg.FedConfig(num_clients=100, client_fraction=0.0).clients_per_round == 1
    assert fedavg.FedConfig(num_clients=100, client_fraction=0.1).clients_per_round == 10
    with pytest.raises(ConfigError, match="model"):
        fedavg.FedConfig(model="resnet")
    with pytest.raises(ConfigError):
        fedavg.FedConfig(batch_size=0)


def test_cnn_forward_shape() -> None:
    model = fedavg.CNN(widths=(2, 4, 8))
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    assert model.apply(params, jnp.zeros((3, 28, 28, 1))).shape == (3, 10)


def test_cli_table_tiny(tmp_path) -> None:
    from brackit.cli import main

    args = ["extras", "fedavg", "table", "--budget", "tiny", "--out", str(tmp_path), "--target", "0.05"]
    assert main(args) == 0
    report = (tmp_path / "extras_fedavg_2nn.md").read_text()
    assert "| FedSGD | 1 |" in report and "FedAvg E=1 B=10" in report
    assert (tmp_path / "extras_fedavg_2nn.png").stat().st_size > 1000
    assert (
        main(["extras", "fedavg", "table", "--budget", "tiny", "--target", "2", "--out", str(tmp_path)]) == 2
    )
