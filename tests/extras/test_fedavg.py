"""Tests of brackit.extras.fedavg and its CLI: partitions, masking, averaging, FedSGD as one large-batch step,
chunked runs that stop at a target, u = E n / B, the claims over seeds and the results files."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brackit.errors import ConfigError
from brackit.extras import fedavg, fedavg_cli


def _tiny_data(num_examples: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(num_examples, 4, 4, 1)).astype(np.float32)
    labels = rng.integers(0, 10, size=num_examples).astype(np.int32)
    return images, labels


def _init(images: np.ndarray):
    model = fedavg.make_model(fedavg.FedConfig(model="2nn"))
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
    with pytest.raises(ConfigError, match="FedConfig: model must be one of '2nn', 'cnn'; got model='resnet'"):
        fedavg.FedConfig(model="resnet")
    with pytest.raises(ConfigError):
        fedavg.FedConfig(batch_size=0)


def test_cnn_forward_shape() -> None:
    model = fedavg.CNN(widths=(2, 4, 8))
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    assert model.apply(params, jnp.zeros((3, 28, 28, 1))).shape == (3, 10)


def test_chunks_and_early_stop_give_the_rounds_of_one_long_run() -> None:
    images, labels = _tiny_data(40)
    config = fedavg.FedConfig(num_clients=4, client_fraction=0.5, local_epochs=1, batch_size=5, num_rounds=6)
    rates = [0.05, 0.3]
    whole = fedavg.run_learning_rates(config, images, labels, images, labels, rates, chunk_rounds=6)
    by_one = fedavg.run_learning_rates(config, images, labels, images, labels, rates, chunk_rounds=1)
    assert whole.shape == (2, 6)
    np.testing.assert_array_equal(whole, by_one)
    # A target first reached at round r stops the run after the chunk holding r (chunks of 4: 4 or 6 rounds).
    target = float(whole[:, 1].max())
    first = min(fedavg.rounds_to_target(row, target) or 99 for row in whole)
    stopped = fedavg.run_learning_rates(
        config, images, labels, images, labels, rates, target=target, chunk_rounds=4
    )
    assert stopped.shape == (2, 4 if first <= 4 else 6)
    np.testing.assert_array_equal(stopped, whole[:, : stopped.shape[1]])


def test_best_rate_and_updates_per_round() -> None:
    accuracies = np.array([[0.5, 0.8, 0.95], [0.6, 0.91, 0.99], [0.7, 0.92, 0.3]])
    # Rows 1 and 2 both reach 0.9 at round 2: the lower row wins the tie; row 0 reaches it only at round 3.
    assert fedavg.best_rate(accuracies, 0.9) == 1
    assert fedavg.best_rate(accuracies, 0.96) == 1  # only row 1 reaches 0.96 (round 3)
    assert fedavg.best_rate(accuracies, 0.999) == 1  # none does: the best accuracy, 0.99
    # u = E n / B (the paper's Table 2: E=5, B=10 on 600 images is u = 300; B = inf gives u = E).
    assert fedavg.updates_per_round(5, 10, 600) == 300.0
    assert fedavg.updates_per_round(1, 10, 40) == 4.0
    assert fedavg.updates_per_round(20, None, 600) == 20.0


def _runs(rounds_by_seed: list[int | None], cap: int = 100) -> dict[int, fedavg_cli.Run]:
    return {
        s: fedavg_cli.Run(fedavg_cli.Bound.rounds(r, cap), 0.1, 0.9, np.zeros(1))
        for s, r in enumerate(rounds_by_seed)
    }


def test_bounds_of_missed_targets_and_cells() -> None:
    rounds = fedavg_cli.Bound.rounds
    # Not reached within 100 rounds: at least 101.
    assert rounds(None, 100) == fedavg_cli.Bound(101.0, math.inf)
    assert rounds(20, 100).less(rounds(None, 100)) is True
    assert rounds(100, 100).less(rounds(None, 100)) is True
    assert rounds(None, 100).less(rounds(80, 100)) is False
    assert rounds(None, 100).less(rounds(None, 100)) is None
    assert rounds(50, 100).less(rounds(50, 100)) is False
    # Speedups: 60 / 20 = 3; a missed baseline: >= 101 / 50 = 2.02; a missed FedAvg: <= 80 / 101; both: unknown.
    assert rounds(60, 100) / rounds(20, 100) == fedavg_cli.Bound(3.0, 3.0)
    assert rounds(None, 100) / rounds(50, 100) == fedavg_cli.Bound(2.02, math.inf)
    assert rounds(80, 100) / rounds(None, 100) == fedavg_cli.Bound(0.0, 80 / 101)
    assert rounds(None, 100) / rounds(None, 100) == fedavg_cli.Bound(0.0, math.inf)
    assert fedavg_cli._rounds_cell([rounds(10, 100), rounds(20, 100), rounds(30, 100)]) == "20 (10-30)"
    assert fedavg_cli._rounds_cell([rounds(10, 100), rounds(None, 100), rounds(30, 100)]) == "10, >100, 30"
    speedups = [fedavg_cli.Bound(v, v) for v in (2.0, 3.0, 4.0)]
    assert fedavg_cli._speedup_cell(speedups) == "3.0x (2.0-4.0)"
    bounds = [fedavg_cli.Bound(2.0, 2.0), fedavg_cli.Bound(2.02, math.inf), fedavg_cli.Bound(0.0, 80 / 101)]
    assert fedavg_cli._speedup_cell([*bounds, fedavg_cli.Bound(0.0, math.inf)]) == "2.0x, >=2.0x, <=0.8x, ?"
    assert fedavg_cli._verdict([True, True, True]) == "reproduced (3/3 seeds)"
    assert (
        fedavg_cli._verdict([True, None, False])
        == "held in 1/3 seeds, undecided in 1/3 (a target not reached)"
    )


def test_table_claims_over_seeds() -> None:
    fedsgd, avg = (1, None), (1, 10)
    runs = {
        (fedsgd, True): _runs([60, 60, 60]),
        (avg, True): _runs([20, 30, 70]),  # speedups 3, 2, 60/70
        (fedsgd, False): _runs([80, None, None]),
        (avg, False): _runs([40, 50, None]),  # speedups 2, >= 101/50, unknown
    }
    speedups = {
        (pair, iid): [runs[(fedsgd, iid)][s].rounds / runs[(pair, iid)][s].rounds for s in range(3)]
        for pair in (fedsgd, avg)
        for iid in (True, False)
    }
    names = {fedsgd: "FedSGD", avg: "FedAvg E=1 B=10"}
    lines = fedavg_cli._table_claims((fedsgd, avg), names, runs, speedups, [0, 1, 2])
    undecided = "undecided in 1/3 (a target not reached)"
    assert lines == [
        "| FedAvg E=1 B=10 needs fewer rounds than FedSGD, IID | held in 2/3 seeds | yes yes no |",
        # 40 < 80; 50 < (> 100); both missed in seed 2.
        f"| FedAvg E=1 B=10 needs fewer rounds than FedSGD, non-IID | held in 2/3 seeds, {undecided} | yes yes ? |",
        # IID 3 > 2; IID 2 < 2.02 (non-IID at least); seed 2 unknown.
        f"| FedAvg E=1 B=10: larger speedup IID than non-IID | held in 1/3 seeds, {undecided} | yes no ? |",
    ]


def test_cli_table_tiny_over_seeds(tmp_path) -> None:
    from brackit.cli import main

    args = ["extras", "fedavg", "table", "--budget", "tiny", "--out", str(tmp_path), "--target", "0.05"]
    assert main([*args, "--seeds", "0,1"]) == 0
    report = (tmp_path / "extras_fedavg_2nn.md").read_text()
    assert "| FedSGD | 1 | 1 |" in report and "| FedAvg E=1 B=10 | 4 | 60 |" in report
    assert "seeds 0, 1" in report and "needs fewer rounds than FedSGD, IID" in report
    sidecar = json.loads((tmp_path / "extras_fedavg_2nn.json").read_text())
    assert sidecar["seeds"] == [0, 1] and sidecar["budget"] == "tiny"
    for seed in ("0", "1"):
        metrics = sidecar["per_seed"][seed]
        assert metrics["fedsgd/iid/lr"] == 0.1 and 0.0 <= metrics["fedavg_e1_b10/noniid/best_acc"] <= 1.0
        assert "fedavg_e1_b10/iid/speedup" in metrics and "fedsgd/iid/speedup" not in metrics
    assert (tmp_path / "extras_fedavg_2nn.png").stat().st_size > 1000
    # Bad options: exit status 2 and nothing written.
    bad = tmp_path / "bad"
    for extra in (
        ["--target", "2"],
        ["--seeds", "0,0"],
        ["--seeds", "x"],
        ["--clients", "0"],
        ["--model", "rnn"],
    ):
        assert main([*args[:-4], "--out", str(bad), *extra]) == 2
    assert main([*args, "--seed", "0"]) == 2  # --seed is gone: --seeds
    assert not bad.exists()


def test_cli_csweep_tiny(tmp_path) -> None:
    from brackit.cli import main

    args = ["extras", "fedavg", "csweep", "--budget", "tiny", "--out", str(tmp_path), "--target", "0.05"]
    assert main([*args, "--seeds", "3"]) == 0
    report = (tmp_path / "extras_fedavg_c.md").read_text()
    assert "C=0 (m=1)" in report and "C=0.5 (m=5)" in report
    metrics = json.loads((tmp_path / "extras_fedavg_c.json").read_text())["per_seed"]["3"]
    assert set(metrics) >= {"iid/binf/c0/rounds", "noniid/b10/c0.5/speedup", "iid/b10/c0.5/lr"}
    assert main([*args, "--clients", "201"]) == 2  # 400 images: at most 200 clients (2 shards each)
