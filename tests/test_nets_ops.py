"""Networks and pure ops on hand-written arrays."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brackit.nets import CriticEnsemble, TanhGaussian, scale_action, torch_linear_init, unscale_action
from brackit.ops import bellman_target, ensemble_reduce, lagrange_loss, polyak


def test_tanh_gaussian_density_integrates_to_one():
    dist = TanhGaussian(jnp.array([[0.4]]), jnp.log(jnp.array([[0.8]])))
    grid = np.linspace(-1 + 1e-6, 1 - 1e-6, 200_001, dtype=np.float64)
    density = np.exp(np.asarray(dist.log_prob(jnp.asarray(grid[:, None, None], jnp.float32), eps=1e-7)))
    assert np.trapezoid(density[:, 0], grid) == pytest.approx(1.0, abs=2e-3)


def test_tanh_gaussian_log_prob_stable_and_consistent():
    dist = TanhGaussian(jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    raw = jnp.array([[25.0, -30.0]])  # tanh(raw) rounds to +-1 in float32
    assert np.isfinite(float(dist.log_prob_raw(raw)[0]))
    # at moderate values the raw and action forms agree (log|det| = sum log(1 - tanh^2))
    raw = jnp.array([[0.3, -1.2]])
    direct = jax.scipy.stats.norm.logpdf(raw).sum() - jnp.log(1 - jnp.tanh(raw) ** 2).sum()
    np.testing.assert_allclose(dist.log_prob_raw(raw)[0], direct, rtol=1e-5)
    np.testing.assert_allclose(dist.log_prob(jnp.tanh(raw))[0], direct, rtol=1e-4)
    actions, raw_samples, log_prob = dist.sample_and_log_prob(jax.random.key(0), 3)
    assert actions.shape == (3, 1, 2) and log_prob.shape == (3, 1)
    np.testing.assert_allclose(actions, jnp.tanh(raw_samples))


def test_critic_ensemble_members_differ():
    net = CriticEnsemble((16,), num_critics=3)
    params = net.init(jax.random.key(0), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    q = net.apply(params, jnp.ones((5, 4)), jnp.ones((5, 2)))
    assert q.shape == (3, 5)
    assert len(np.unique(np.asarray(q[:, 0]))) == 3


def test_ensemble_reduce_by_hand():
    q = jnp.array([[1.0, 5.0], [3.0, 2.0]])  # [E=2, B=2]
    np.testing.assert_allclose(ensemble_reduce(q, 1.0), [1.0, 2.0])
    np.testing.assert_allclose(ensemble_reduce(q, 0.0), [3.0, 5.0])
    np.testing.assert_allclose(ensemble_reduce(q, 0.75), [0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * 5])


def test_bellman_target_uses_the_continuation_mask():
    # y = r + gamma * discount * v: the terminal row (discount 0) keeps only its reward
    y = bellman_target(jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]), 0.9, jnp.array([10.0, 10.0]))
    np.testing.assert_allclose(y, [1.0 + 0.9 * 10.0, 2.0])


def test_polyak_and_lagrange_direction():
    target = {"w": jnp.array([0.0, 10.0])}
    online = {"w": jnp.array([1.0, 0.0])}
    np.testing.assert_allclose(polyak(target, online, 0.1)["w"], [0.1, 9.0])
    # divergence above target -> gradient descent raises alpha; below -> lowers it
    assert float(jax.grad(lagrange_loss)(jnp.array(1.0), jnp.array([2.0, 2.0]), 1.0)) < 0
    assert float(jax.grad(lagrange_loss)(jnp.array(1.0), jnp.array([0.5]), 1.0)) > 0


def test_action_scaling_round_trip():
    low, high = jnp.array([-2.0, 0.0]), jnp.array([2.0, 1.0])
    a = jnp.array([[1.5, 0.25]])
    np.testing.assert_allclose(scale_action(unscale_action(a, low, high), low, high), a, rtol=1e-6)
    np.testing.assert_allclose(scale_action(jnp.array([[-1.0, 1.0]]), low, high), [[-2.0, 1.0]])


def test_ensemble_td_loss_by_hand():
    from brackit.ops import ensemble_td_loss

    q = jnp.array([[1.0, 2.0], [3.0, 0.0]])  # [E=2, B=2]
    loss, metrics = ensemble_td_loss(q, jnp.array([1.0, 1.0]))
    # critic 0: mean(0, 1) = 0.5; critic 1: mean(4, 1) = 2.5
    assert float(loss) == pytest.approx(3.0)
    assert float(metrics["q_mean"]) == pytest.approx(1.5)


def test_parts_dense_broadcasts_obs_as_if_repeated_and_keeps_dense_parameters():
    obs = jax.random.normal(jax.random.key(1), (8, 5))
    actions = jax.random.normal(jax.random.key(2), (4, 8, 3))  # N = 4 samples per state
    critic = CriticEnsemble((16, 16), num_critics=2)
    params = critic.init(jax.random.key(0), obs[:1], actions[0, :1])
    # nn.Dense's parameters on the concatenated input: the first kernel has |O| + |A| rows
    first = params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]
    assert first["kernel"].shape == (2, 8, 16) and first["bias"].shape == (2, 16)
    repeated = critic.apply(params, jnp.broadcast_to(obs, (4, 8, 5)), actions)  # one concatenated matmul
    shared = critic.apply(params, obs, actions)  # obs rows once per state
    assert shared.shape == repeated.shape == (2, 4, 8)
    np.testing.assert_allclose(shared, repeated, rtol=1e-5, atol=1e-6)
    # equal leading shapes take the concatenated path: bit-identical to the repeated call's slices
    np.testing.assert_array_equal(critic.apply(params, obs, actions[1]), repeated[:, 1])
    # fewer FLOPs: the obs part of the first layer is computed once, not N times
    flops = [
        jax.jit(lambda o, a: critic.apply(params, o, a)).lower(o, actions).compile().cost_analysis()["flops"]
        for o in (jnp.broadcast_to(obs, (4, 8, 5)), obs)
    ]
    assert flops[1] < flops[0]


def test_torch_linear_init_draws_pytorch_linear_bounds_per_layer():
    """PyTorch's nn.Linear: kernel and bias U(+-1/sqrt(fan_in)), fan_in the kernel's input rows; a vmapped
    ensemble's members are drawn independently; parameters that are not a dense layer are kept."""
    params = {
        "params": {
            "Dense_0": {"kernel": np.zeros((750, 600), np.float32), "bias": np.zeros(600, np.float32)},
            "VmapCritic_0": {
                "Dense_0": {"kernel": np.zeros((2, 17, 40), np.float32), "bias": np.zeros((2, 40))}
            },
            "LayerNorm_0": {"scale": np.ones(5, np.float32), "bias": np.zeros(5, np.float32)},
        }
    }
    drawn = torch_linear_init(params, jax.random.key(3))
    layer = {k: np.asarray(v) for k, v in drawn["params"]["Dense_0"].items()}
    bound = 1.0 / np.sqrt(750.0)
    for value in layer.values():
        assert np.all(np.abs(value) <= bound) and np.abs(value).max() > 0.99 * bound
    assert np.std(layer["kernel"]) == pytest.approx(bound / np.sqrt(3.0), rel=0.01)  # U(-b, b): std b/sqrt(3)
    assert np.mean(layer["kernel"]) == pytest.approx(0.0, abs=0.01 * bound)
    member = {k: np.asarray(v) for k, v in drawn["params"]["VmapCritic_0"]["Dense_0"].items()}
    assert np.all(np.abs(member["kernel"]) <= 1.0 / np.sqrt(17.0)) and np.all(
        np.abs(member["bias"]) <= 1 / np.sqrt(17)
    )
    assert np.abs(member["kernel"]).max() > 0.9 / np.sqrt(
        17.0
    )  # bounded by fan_in 17, not by the member axis
    assert not np.allclose(member["kernel"][0], member["kernel"][1])
    np.testing.assert_array_equal(drawn["params"]["LayerNorm_0"]["scale"], np.ones(5))
    np.testing.assert_array_equal(drawn["params"]["LayerNorm_0"]["bias"], np.zeros(5))
    again = torch_linear_init(params, jax.random.key(3))
    np.testing.assert_array_equal(again["params"]["Dense_0"]["kernel"], layer["kernel"])
