"""BEAR: the Lagrange multiplier's direction and clipping, warm start, the divergence choices (and the
ConfigError for those a VAE cannot serve), one update of each configuration, determinism, vmap over seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algo_helpers import ACT, OBS, B, assert_vmap_equals_single_runs, batch, leaves_equal

from brackit.algos import bear, make_config
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
        q = bear.critic_net(config).apply(
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
