"""TD3+BC / ReBRAC: the Q normalisation lam, the critic target by hand (smoothing noise, critic penalty),
delayed actor updates, the presets, one update of each configuration, determinism, vmap over seeds, ReBRAC's
network (LayerNorm after the ReLU) and initialisation, TD3+BC's unchanged networks, the D4RL betas."""

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
        return jax.grad(td3bc.actor_loss, has_aux=True)(
            state.actor_params, config, critic_params, data, ACT, state.beta_actor
        )

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
    assert float(new_state.alpha_entropy) != float(state.alpha_entropy)
    assert not leaves_equal(state.actor_params, new_state.actor_params)


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps) * scale + bias


def test_rebrac_critic_is_dense_relu_layernorm():
    """ReBRAC's critic (its networks.py): Dense -> ReLU -> LayerNorm per hidden layer, then Dense."""
    config = td3bc.ReBRACConfig(**SMALL)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    data = batch()
    q = np.asarray(td3bc.critic_net(config).apply(state.critic_params, data.obs, data.action))
    mlp = jax.tree.map(np.asarray, state.critic_params["params"]["VmapCritic_0"]["MLP_0"])
    for member in range(config.num_critics):
        x = np.concatenate([np.asarray(data.obs), np.asarray(data.action)], axis=-1)
        for index in range(len(config.critic_hidden)):
            dense, norm = mlp[f"Dense_{index}"], mlp[f"LayerNorm_{index}"]
            x = np.maximum(x @ dense["kernel"][member] + dense["bias"][member], 0.0)
            x = layer_norm(x, norm["scale"][member], norm["bias"][member])
        last = mlp[f"Dense_{len(config.critic_hidden)}"]
        expected = (x @ last["kernel"][member] + last["bias"][member])[:, 0]
        np.testing.assert_allclose(q[member], expected, rtol=1e-5, atol=1e-6)


def test_rebrac_initialisation_is_the_references():
    """Hidden kernels U(+-1/sqrt(fan_in)), hidden biases 0.1 (actor and critic), last kernel and bias
    U(+-1e-3) in the actor and U(+-3e-3) in the critic."""
    config = td3bc.ReBRACConfig(critic_hidden=(64, 64), actor_hidden=(64, 64), actor_layer_norm=True)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    actor = jax.tree.map(np.asarray, state.actor_params["params"]["MLP_0"])
    critic = jax.tree.map(np.asarray, state.critic_params["params"]["VmapCritic_0"]["MLP_0"])
    for net, fan_ins, last_bound in ((actor, (OBS, 64), 1e-3), (critic, (OBS + ACT, 64), 3e-3)):
        for index, fan_in in enumerate(fan_ins):
            kernel, bias = net[f"Dense_{index}"]["kernel"], net[f"Dense_{index}"]["bias"]
            bound = 1.0 / np.sqrt(fan_in)
            assert np.max(np.abs(kernel)) <= bound and np.max(np.abs(kernel)) > 0.9 * bound
            np.testing.assert_array_equal(bias, np.full_like(bias, 0.1))
        last = net["Dense_2"]
        for value in (last["kernel"], last["bias"]):
            assert np.max(np.abs(value)) <= last_bound and np.max(np.abs(value)) > 0.2 * last_bound
    assert jax.tree.all(
        jax.tree.map(lambda a, b: np.array_equal(a, b), state.actor_params, state.actor_target)
    )


def test_td3bc_keeps_the_default_networks():
    """TD3+BC's actor and critics are brackit's default MLPs (LeCun kernels, zero biases): unchanged."""
    from brackit.nets import CriticEnsemble, DeterministicActor

    config = td3bc.TD3BCConfig(**SMALL, critic_layer_norm=True)
    obs, action = jnp.zeros((1, OBS)), jnp.zeros((1, ACT))
    key = jax.random.key(3)
    assert leaves_equal(
        td3bc.actor_net(config, ACT).init(key, obs),
        DeterministicActor(config.actor_hidden, ACT).init(key, obs),
    )
    default = CriticEnsemble(config.critic_hidden, config.num_critics, layer_norm=True)
    params = default.init(key, obs, action)
    assert leaves_equal(td3bc.critic_net(config).init(key, obs, action), params)
    data = batch()
    np.testing.assert_array_equal(
        td3bc.critic_net(config).apply(params, data.obs, data.action),
        default.apply(params, data.obs, data.action),
    )


def test_rebrac_d4rl_betas():
    config = td3bc.rebrac_d4rl_config("hopper-medium-replay-v2", batch_size=256)
    assert (config.beta_actor, config.beta_critic, config.batch_size) == (0.05, 0.5, 256)
    assert config.critic_hidden == td3bc.ReBRACConfig().critic_hidden
    assert len(td3bc.REBRAC_D4RL_BETAS) == 18
    for name, (beta_actor, beta_critic) in td3bc.REBRAC_D4RL_BETAS.items():
        assert name.split("-")[0] in ("halfcheetah", "hopper", "walker2d") and name.endswith("-v2")
        assert 0.001 <= beta_actor <= 0.1 and 0.0 <= beta_critic <= 0.5
    with pytest.raises(ConfigError, match="no tuned ReBRAC betas"):
        td3bc.rebrac_d4rl_config("hopper-medium-v0")


def test_betas_are_state_fields_that_a_sweep_can_set():
    """The betas live in the state (a study's beta grid is one vmapped program): init copies them from the
    config, and the losses read the state's values."""
    config = td3bc.ReBRACConfig(beta_actor=0.3, beta_critic=0.2, **SMALL)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    assert float(state.beta_actor) == np.float32(0.3) and float(state.beta_critic) == np.float32(0.2)
    data = batch()

    def loss_of(beta: float) -> dict:
        return td3bc.actor_loss(state.actor_params, config, state.critic_params, data, ACT, beta)[1]

    m0, m1 = loss_of(0.0), loss_of(1.0)
    # loss = mean(beta ||pi(s) - a||^2 - lam Q): the difference of the two losses is the mean penalty
    np.testing.assert_allclose(float(m1["loss"] - m0["loss"]), float(m1["bc_penalty"]), rtol=1e-5)


def test_rebrac_critic_penalty_skips_rows_without_a_next_action():
    """ReBRAC's target subtracts beta_critic ||a~' - a'||^2 only where the dataset has a next action a'."""
    config = td3bc.ReBRACConfig(critic_hidden=(16, 16), actor_hidden=(16, 16), batch_size=B, beta_critic=2.0)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    valid = np.ones(B, np.float32)
    valid[::4] = 0.0
    data = batch(3).replace(discount=jnp.ones(B), next_action_valid=jnp.asarray(valid))
    key = jax.random.key(2)
    penalized, _ = td3bc.critic_target(config, state, data, key)
    free, _ = td3bc.critic_target(config, state.replace(beta_critic=jnp.zeros(())), data, key)
    np.testing.assert_allclose(penalized[valid == 0], free[valid == 0], rtol=1e-6)
    assert np.all(np.asarray(free - penalized)[valid == 1] > 0)


def test_a_checkpoint_written_before_the_betas_were_state_fields_still_loads(tmp_path):
    """Checkpoints of TD3+BC/ReBRAC states without ``beta_actor``/``beta_critic`` leaves (written before they
    became state fields) load, with the betas taken from the template, i.e. from the config."""
    import json

    from brackit.checkpoint import load_states, save_checkpoint

    config = td3bc.TD3BCConfig(**SMALL)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    path = save_checkpoint(tmp_path / "new.npz", state, phase="train", step=0, history=[], metadata={})
    with np.load(path) as npz:  # the same file as the old code wrote it: without the two leaves
        record = json.loads(str(npz["record_json"]))
        keep = [i for i, name in enumerate(record["leaf_names"]) if not name.startswith(".beta_")]
        assert len(keep) == len(record["leaf_names"]) - 2
        arrays = {f"leaf{new:05d}": npz[f"leaf{old:05d}"] for new, old in enumerate(keep)}
    record["leaf_names"] = [record["leaf_names"][i] for i in keep]
    np.savez(tmp_path / "old.npz", record_json=np.array(json.dumps(record)), **arrays)
    template = td3bc.init(td3bc.TD3BCConfig(**SMALL), jax.random.key(5), OBS, ACT)
    loaded = load_states(tmp_path / "old.npz", template)
    assert leaves_equal(loaded.actor_params, state.actor_params)
    assert float(loaded.beta_actor) == 1.0 and float(loaded.beta_critic) == 0.0


def test_a_checkpoint_whose_leaves_are_in_another_order_loads_by_name(tmp_path):
    """Leaves are matched by tree path: a checkpoint written before the states' shared fields moved into a
    base class (``algos.common``; the fields, hence the leaves, came in another order) loads unchanged, and
    one missing a leaf is refused naming it."""
    import json

    from brackit.checkpoint import CheckpointError, load_states, save_checkpoint

    config = td3bc.TD3BCConfig(**SMALL)
    state = td3bc.init(config, jax.random.key(0), OBS, ACT)
    state, _ = td3bc.update(config, state, batch(1))
    path = save_checkpoint(tmp_path / "new.npz", state, phase="train", step=1, history=[], metadata={})
    with np.load(path) as npz:
        record = json.loads(str(npz["record_json"]))
        order = list(reversed(range(len(record["leaf_names"]))))
        arrays = {f"leaf{new:05d}": npz[f"leaf{old:05d}"] for new, old in enumerate(order)}
    names = record["leaf_names"]
    record["leaf_names"] = [names[i] for i in order]
    np.savez(tmp_path / "reversed.npz", record_json=np.array(json.dumps(record)), **arrays)
    template = td3bc.init(config, jax.random.key(5), OBS, ACT)
    loaded = load_states(tmp_path / "reversed.npz", template)
    assert leaves_equal(loaded, state)

    assert record["leaf_names"][-1] == names[0] == ".step"
    record["leaf_names"] = record["leaf_names"][:-1]  # without the step counter
    arrays.pop(f"leaf{len(order) - 1:05d}")
    np.savez(tmp_path / "short.npz", record_json=np.array(json.dumps(record)), **arrays)
    with pytest.raises(CheckpointError, match=r"first missing leaf: \.step"):
        load_states(tmp_path / "short.npz", template)
