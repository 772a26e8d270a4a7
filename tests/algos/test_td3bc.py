"""TD3+BC / ReBRAC: the Q normalisation lam, the critic target by hand (smoothing noise, critic penalty),
delayed actor updates, the presets, one update of each configuration, determinism, vmap over seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algo_helpers import ACT, OBS, B, assert_vmap_equals_single_runs, batch, leaves_equal

from brackit.algos import get_algorithm, td3bc
from brackit.errors import ConfigError

SMALL = {"critic_hidden": (16, 16), "actor_hidden": (16, 16), "batch_size": B}


def scale_critic(params: dict, scale: float) -> dict:
    """Multiplies the last layer (kernel and bias) of every critic: Q -> scale * Q."""
    params = jax.tree.map(lambda x: x, params)
    last = params["params"]["VmapCritic_0"]["MLP_0"]["Dense_2"]
    params["params"]["VmapCritic_0"]["MLP_0"]["Dense_2"] = jax.tree.map(lambda x: scale * x, last)
    return params


@pytest.mark.parametrize("preset", [td3bc.ReBRACConfig, td3bc.TD3BCConfig])
def test_actor_gradient_is_invariant_to_the_scale_of_q(preset):
    config = preset(**SMALL)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    data = batch()

    def grads(critic_params):
        return jax.grad(td3bc.actor_loss, has_aux=True)(state.actor_params, config, critic_params, data, ACT)

    g1, m1 = grads(state.critic_params)
    g100, m100 = grads(scale_critic(state.critic_params, 100.0))
    for x, y in zip(jax.tree.leaves(g1), jax.tree.leaves(g100), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(float(m100["lam"]), float(m1["lam"]) / 100.0, rtol=1e-4)
    # lam = q_scale / mean|Q| with Q the min over critics (ReBRAC) or critic 1 (TD3+BC)
    action = td3bc.actor_net(config, ACT).apply(state.actor_params, data.obs)
    q = td3bc.critic_net(config).apply(state.critic_params, data.obs, action)
    q = jnp.min(q, axis=0) if config.actor_q == "min" else q[0]
    np.testing.assert_allclose(float(m1["lam"]), config.q_scale / float(jnp.mean(jnp.abs(q))), rtol=1e-5)
    np.testing.assert_allclose(float(m1["q"]), float(jnp.mean(q)), rtol=1e-5)


def test_presets():
    rebrac, td3 = td3bc.ReBRACConfig(), td3bc.TD3BCConfig()
    assert rebrac.critic_hidden == (256, 256, 256) and rebrac.critic_layer_norm and rebrac.batch_size == 1024
    assert rebrac.actor_lr == rebrac.critic_lr == 1e-3 and rebrac.policy_freq == 2 and rebrac.q_scale == 1.0
    assert td3.q_scale == 2.5 and td3.beta_actor == 1.0 and td3.beta_critic == 0.0
    assert not td3.critic_layer_norm and td3.bc_reduction == "mean" and td3.actor_q == "first"
    assert get_algorithm("rebrac").config_cls is td3bc.ReBRACConfig
    assert get_algorithm("td3bc").config_cls is td3bc.TD3BCConfig
    with pytest.raises(ConfigError, match="bc_reduction"):
        td3bc.ReBRACConfig(bc_reduction="max")


def test_critic_target_by_hand():
    config = td3bc.ReBRACConfig(beta_critic=0.3, policy_noise=0.0, **SMALL)
    data = batch()
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    other = td3bc.init(config, jax.random.key(1), OBS, ACT)
    state = state.replace(actor_target=other.actor_params, critic_target=other.critic_params)
    target, metrics = td3bc.critic_target(config, state, data, jax.random.key(2))
    next_action = np.asarray(td3bc.actor_net(config, ACT).apply(other.actor_params, data.next_obs))
    next_q = np.min(
        np.asarray(td3bc.critic_net(config).apply(other.critic_params, data.next_obs, next_action)), 0
    )
    penalty = np.sum((next_action - np.asarray(data.next_action)) ** 2, axis=-1)
    expected = np.asarray(data.reward) + 0.99 * np.asarray(data.discount) * (next_q - 0.3 * penalty)
    np.testing.assert_allclose(target, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(metrics["next_penalty"]), penalty.mean(), rtol=1e-5)


def test_target_smoothing_noise_is_clipped():
    config = td3bc.ReBRACConfig(beta_critic=1.0, policy_noise=10.0, noise_clip=0.5, **SMALL)
    data = batch()
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    # with beta_critic 1 and next_action = pi'(s'), the penalty is the squared (clipped) noise
    clean = td3bc.actor_net(config, ACT).apply(state.actor_target, data.next_obs)
    _, metrics = td3bc.critic_target(config, state, data.replace(next_action=clean), jax.random.key(2))
    assert 0.0 < float(metrics["next_penalty"]) <= ACT * 0.5**2 + 1e-6


def test_actor_and_targets_update_every_policy_freq_steps():
    config = td3bc.ReBRACConfig(policy_freq=2, **SMALL)
    with jax.disable_jit():
        state0 = td3bc.init(config, jax.random.key(0), OBS, ACT)
        state1, metrics1 = td3bc.update(config, state0, batch(0))
        state2, metrics2 = td3bc.update(config, state1, batch(1))
    assert float(metrics1["actor/updated"]) == 1.0 and float(metrics2["actor/updated"]) == 0.0
    for field in ("actor_params", "actor_target", "actor_opt", "critic_target"):
        assert not leaves_equal(getattr(state0, field), getattr(state1, field)), field
        assert leaves_equal(getattr(state1, field), getattr(state2, field)), field
    assert not leaves_equal(state1.critic_params, state2.critic_params)  # the critic steps every time


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        (td3bc.ReBRACConfig, {}),
        (td3bc.TD3BCConfig, {}),
        (td3bc.ReBRACConfig, {"critic_layer_norm": False, "actor_layer_norm": True}),
    ],
)
def test_one_update_moves_every_network_and_target(preset, overrides):
    config = preset(**SMALL, **overrides)
    with jax.disable_jit():
        state = td3bc.init(config, jax.random.key(0), OBS, ACT)
        new_state, metrics = td3bc.update(config, state, batch())
        again, _ = td3bc.update(config, td3bc.init(config, jax.random.key(0), OBS, ACT), batch())
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    assert leaves_equal(new_state, again)
    for field in (
        "actor_params",
        "actor_target",
        "actor_opt",
        "critic_params",
        "critic_target",
        "critic_opt",
    ):
        assert not leaves_equal(getattr(state, field), getattr(new_state, field)), field
    action = td3bc.act(config, new_state, batch().obs, jax.random.key(0))
    assert action.shape == (B, ACT) and np.all(np.abs(action) <= 1)


def test_vmap_over_seeds_equals_single_runs():
    assert_vmap_equals_single_runs("rebrac", td3bc.ReBRACConfig(**SMALL))


def test_sac_offline_is_brac_without_a_divergence():
    from algo_helpers import tiny_dataset

    from brackit.algos import make_config
    from brackit.train import make_train

    config = make_config("sac_offline", critic_hidden=(16, 16), actor_hidden=(16, 16), batch_size=B)
    assert config.divergence == "none" and config.tune_entropy and config.warm_start_steps == 0
    algorithm = get_algorithm("sac_offline")
    assert algorithm.pretrain_steps(config) == 0
    fns = make_train(algorithm, config, OBS, ACT, chunk_steps=2)
    with jax.disable_jit():
        state = fns.init(jax.random.key(0))
        new_state, metrics = fns.chunk(state, tiny_dataset())
    assert np.isfinite(float(metrics["critic/loss"])) and float(metrics["actor/divergence"]) == 0.0
    assert float(new_state.log_alpha_entropy) != float(state.log_alpha_entropy)
    assert not leaves_equal(state.actor_params, new_state.actor_params)
