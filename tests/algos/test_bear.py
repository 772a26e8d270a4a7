"""BEAR: the Lagrange multiplier's direction and clipping, warm start, the divergence choices (and the
ConfigError for those a VAE cannot serve), one update of each configuration, determinism, vmap over seeds;
the actor loss and the evaluation rule against numpy re-computations of the authors' formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algo_helpers import ACT, OBS, B, assert_vmap_equals_single_runs, batch, leaves_equal

from brackit.algos import bear, common, make_config
from brackit.errors import ConfigError

SMALL = {
    "critic_hidden": (16, 16),
    "actor_hidden": (16, 16),
    "vae_hidden": (16, 16),
    "batch_size": B,
    "warm_start_steps": 0,
}


def one_update(config: bear.BEARConfig, state: bear.BEARState | None = None):
    with jax.disable_jit():
        state = state if state is not None else bear.init(config, jax.random.key(0), OBS, ACT)
        return state, *bear.update(config, state, batch())


@pytest.mark.parametrize(
    ("epsilon", "direction"),
    [(0.0, 1.0), (100.0, -1.0)],  # D > epsilon: the multiplier grows; D < epsilon: it shrinks
)
def test_lagrange_multiplier_moves_toward_the_constraint(epsilon, direction):
    config = bear.BEARConfig(epsilon=epsilon, lagrange_lr=1e-2, **SMALL)
    state, new_state, metrics = one_update(config)
    assert metrics["actor/divergence"] > 0
    # Adam's first step moves the log-multiplier by lr in the descent direction of -exp(l) (D - epsilon)
    np.testing.assert_allclose(
        float(new_state.log_lagrange - state.log_lagrange), direction * 1e-2, rtol=1e-3
    )
    np.testing.assert_allclose(float(metrics["lagrange/value"]), np.exp(direction * 1e-2), rtol=1e-4)


def test_lagrange_multiplier_is_clipped():
    config = bear.BEARConfig(epsilon=0.0, initial_log_lagrange=10.0, **SMALL)
    _, new_state, _ = one_update(config)
    assert float(new_state.log_lagrange) == 10.0
    config = bear.BEARConfig(epsilon=100.0, initial_log_lagrange=-5.0, **SMALL)
    _, new_state, _ = one_update(config)
    assert float(new_state.log_lagrange) == -5.0


def test_warm_start_actor_minimises_only_the_divergence():
    config = bear.BEARConfig(**{**SMALL, "warm_start_steps": 10}, initial_log_lagrange=0.5)
    _, _, metrics = one_update(config)
    np.testing.assert_allclose(
        float(metrics["actor/loss"]), np.exp(0.5) * float(metrics["actor/divergence"]), rtol=1e-5
    )
    after = bear.BEARConfig(**SMALL, initial_log_lagrange=0.5)
    _, _, metrics = one_update(after)
    expected = -float(metrics["actor/q"]) + np.exp(0.5) * float(metrics["actor/divergence"])
    np.testing.assert_allclose(float(metrics["actor/loss"]), expected, rtol=1e-5)


def test_divergences_a_vae_cannot_serve_are_config_errors():
    with pytest.raises(ConfigError, match=r"needs log pi_b.*\['mmd'\]"):
        bear.BEARConfig(divergence="kl")
    with pytest.raises(ConfigError, match="no primal form"):
        bear.BEARConfig(divergence="w")
    with pytest.raises(ConfigError, match="mmd kernel"):
        bear.BEARConfig(mmd_kernel="cauchy")
    with pytest.raises(ConfigError, match="valid fields"):
        make_config("bear", kernel="laplacian")


@pytest.mark.parametrize(
    ("kernel", "on_raw", "use_sqrt"), [("laplacian", False, True), ("gaussian", True, False)]
)
def test_one_update_moves_every_network_and_target(kernel, on_raw, use_sqrt):
    config = bear.BEARConfig(mmd_kernel=kernel, mmd_on_raw=on_raw, mmd_sqrt=use_sqrt, **SMALL)
    state, new_state, metrics = one_update(config)
    _, again, _ = one_update(config)
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    assert {"vae/loss", "critic/loss", "actor/divergence", "lagrange/value"} <= set(metrics)
    assert leaves_equal(new_state, again)  # same key, same batch: bit-identical state
    for field in (
        "vae_params",
        "vae_opt",
        "actor_params",
        "actor_target",
        "actor_opt",
        "critic_params",
        "critic_target",
        "critic_opt",
        "log_lagrange",
    ):
        assert not leaves_equal(getattr(state, field), getattr(new_state, field)), field
    assert int(new_state.step) == 1


def test_critic_target_by_hand():
    config = bear.BEARConfig(**SMALL)
    data = batch()
    state = bear.init(config, jax.random.key(0), OBS, ACT)
    state = state.replace(actor_target=bear.init(config, jax.random.key(1), OBS, ACT).actor_params)
    key = jax.random.key(3)
    with jax.disable_jit():
        target = bear.critic_target(config, state, data, key)
        pi = bear.policy(config, state.actor_target, data.next_obs, ACT)  # the TARGET actor proposes
        actions = jnp.tanh(pi.sample_raw(key, 10))
        q = common.critic_net(config).apply(
            state.critic_target, jnp.broadcast_to(data.next_obs, (10, B, OBS)), actions
        )
    value = jnp.max(0.75 * jnp.min(q, axis=0) + 0.25 * jnp.max(q, axis=0), axis=0)
    np.testing.assert_allclose(target, data.reward + 0.99 * data.discount * value, rtol=1e-5, atol=1e-6)


def test_act_modes():
    config = bear.BEARConfig(**SMALL)
    state = bear.init(config, jax.random.key(0), OBS, ACT)
    obs = batch().obs
    for mode in ("max_q", "mode", "sample"):
        action = bear.act(config, state, obs, jax.random.key(1), mode)
        assert action.shape == (B, ACT) and np.all(np.abs(action) <= 1)
    with pytest.raises(ConfigError, match="act mode"):
        bear.act(config, state, obs, jax.random.key(1), "greedy")


def test_vmap_over_seeds_equals_single_runs():
    assert_vmap_equals_single_runs("bear", bear.BEARConfig(**SMALL))


# ------------------------------------------------------------- numpy re-computations of the authors' formulas


def np_mlp(layers: dict, x: np.ndarray) -> np.ndarray:
    """ReLU MLP from flax Dense params {'Dense_i': {'kernel', 'bias'}}, in numpy (float64)."""
    n = len(layers)
    for i in range(n):
        x = x @ np.asarray(layers[f"Dense_{i}"]["kernel"], np.float64) + np.asarray(
            layers[f"Dense_{i}"]["bias"]
        )
        if i < n - 1:
            x = np.maximum(x, 0.0)
    return x


def np_critic(critic_params: dict, member: int, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Q of ensemble member ``member``: obs [B, O], actions [N, B, A] -> [N, B]."""
    layers = jax.tree.map(lambda x: np.asarray(x)[member], critic_params["params"]["VmapCritic_0"]["MLP_0"])
    inputs = np.concatenate([np.broadcast_to(obs, (*actions.shape[:-1], obs.shape[-1])), actions], axis=-1)
    return np_mlp(layers, inputs)[..., 0]


def np_actor(actor_params: dict, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the pre-tanh Gaussian, log-std clipped to the config's default [-5, 0]."""
    mean, log_std = np.split(np_mlp(actor_params["params"]["MLP_0"], obs), 2, axis=-1)
    return mean, np.exp(np.clip(log_std, -5.0, 0.0))


def np_mmd_laplacian(x: np.ndarray, y: np.ndarray, sigma_authors: float) -> np.ndarray:
    """The authors' MMD: x [N, B, A], y [M, B, A] -> [B]; kernel exp(-|d|_1 / (2 sigma)), sqrt(. + 1e-6)."""

    def k(a, b):
        d = np.abs(a[:, None] - b[None]).sum(-1)  # [N, M, B]
        return np.exp(-d / (2.0 * sigma_authors)).mean(axis=(0, 1))

    return np.sqrt(k(x, x) + k(y, y) - 2.0 * k(x, y) + 1e-6)


def fixed_inputs(config: bear.BEARConfig):
    state = bear.init(config, jax.random.key(0), OBS, ACT)
    obs = batch().obs
    rng = np.random.default_rng(7)
    behavior_raw = rng.normal(size=(config.num_divergence_samples, B, ACT)).astype(np.float32)
    return state, obs, np.tanh(behavior_raw), behavior_raw


def test_actor_loss_matches_the_authors_formula_in_numpy():
    """mean_B(-min_i mean_n Q_i(s, tanh(u_n)) + exp(l) MMD(u, u_b)), u_n = mean + std clip(eps_n, +-0.5),
    the MMD on pre-tanh samples with the authors' Laplacian at their sigma 10 (= mmd_sigma 20)."""
    config = bear.BEARConfig(**SMALL, initial_log_lagrange=0.3)
    assert config.mmd_on_raw and config.actor_noise_clip == 0.5 and config.num_divergence_samples == 5
    state, obs, behavior_actions, behavior_raw = fixed_inputs(config)
    key = jax.random.key(5)
    loss, metrics = bear.actor_loss(
        state.actor_params,
        config,
        state,
        state.critic_params,
        obs,
        jnp.asarray(behavior_actions),
        jnp.asarray(behavior_raw),
        key,
    )

    n = config.num_divergence_samples
    eps = np.asarray(jax.random.normal(key, (n, B, ACT)), np.float64)  # the draw the key gives
    assert np.any(np.abs(eps) > 0.5)  # the clip bites
    mean, std = np_actor(state.actor_params, np.asarray(obs, np.float64))
    raw = mean + std * np.clip(eps, -0.5, 0.5)  # [N, B, A]
    q = np.stack(
        [np_critic(state.critic_params, i, np.asarray(obs), np.tanh(raw)) for i in range(2)]
    )  # [E, N, B]
    q_policy = q.mean(axis=1).min(axis=0)  # each critic averaged over the samples, then the min
    mmd = np_mmd_laplacian(raw, behavior_raw.astype(np.float64), sigma_authors=10.0)
    expected = np.mean(-q_policy + np.exp(0.3) * mmd)

    np.testing.assert_allclose(float(metrics["q"]), q_policy.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["divergence"]), mmd.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    # the single-sample or min-then-mean variants are different numbers on this batch
    assert not np.isclose(q.min(axis=0).mean(axis=0).mean(), q_policy.mean(), rtol=1e-6)
    assert not np.isclose(q[:, 0].min(axis=0).mean(), q_policy.mean(), rtol=1e-6)


def test_actor_noise_clip_none_samples_the_policy():
    config = bear.BEARConfig(**SMALL, actor_noise_clip=None)
    state, obs, _, _ = fixed_inputs(config)
    pi = bear.policy(config, state.actor_params, obs, ACT)
    key = jax.random.key(5)
    actions, raw, _ = bear.clipped_samples(config, pi, key, 5)
    np.testing.assert_array_equal(raw, pi.sample_raw(key, 5))
    np.testing.assert_array_equal(actions, jnp.tanh(raw))
    with pytest.raises(ConfigError, match="actor_noise_clip"):
        bear.BEARConfig(actor_noise_clip=0.0)


def test_max_q_acts_by_the_argmax_of_critic_one_in_numpy():
    """The authors' select_action: of 10 actor samples (noise not clipped), the argmax of critic 1."""
    config = bear.BEARConfig(**SMALL)
    state, obs, _, _ = fixed_inputs(config)
    key = jax.random.key(11)
    action = np.asarray(bear.act(config, state, obs, key, "max_q"))

    eps = np.asarray(jax.random.normal(key, (10, B, ACT)), np.float64)
    mean, std = np_actor(state.actor_params, np.asarray(obs, np.float64))
    candidates = np.tanh(mean + std * eps)  # [10, B, A]
    q = np.stack([np_critic(state.critic_params, i, np.asarray(obs), candidates) for i in range(2)])
    best = np.argmax(q[0], axis=0)
    np.testing.assert_allclose(action, candidates[best, np.arange(B)], rtol=1e-5, atol=1e-6)
    # the test tells critic 1 from the ensemble: on this batch the min over critics picks other candidates
    assert np.any(np.argmax(q.min(axis=0), axis=0) != best)
