"""Online SAC: config validation, one update, the replay buffer, policy files (round trip and corrupted
files), and learning on Pendulum."""

from __future__ import annotations

import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brackit.errors import ConfigError, DatasetError
from brackit.protocol import sac
from brackit.protocol.behavior import flatten_params, load_policy, params_sha256, save_policy
from brackit.types import Transition

SMALL = sac.SACConfig(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=8, random_steps=8)


def batch(key: jax.Array, size: int = 8, obs_dim: int = 3, action_dim: int = 2) -> Transition:
    keys = jax.random.split(key, 4)
    action = jax.random.uniform(keys[1], (size, action_dim), minval=-1, maxval=1)
    return Transition(
        obs=jax.random.normal(keys[0], (size, obs_dim)),
        action=action,
        reward=jax.random.normal(keys[2], (size,)),
        discount=jnp.ones(size).at[0].set(0.0),
        next_obs=jax.random.normal(keys[3], (size, obs_dim)),
        next_action=action,
    )


def test_config_validation():
    with pytest.raises(ConfigError, match="vector_mode"):
        sac.SACConfig(vector_mode="threads")
    with pytest.raises(ConfigError, match="random_steps"):
        sac.SACConfig(random_steps=10)
    with pytest.raises(ConfigError, match="updates_per_step"):
        sac.SACConfig(updates_per_step=0)
    assert sac.SACConfig(num_envs=3).updates_per_vector_step == 3


def test_update_moves_params_and_is_reproducible():
    state = sac.init(SMALL, jax.random.key(0), 3, 2)
    data = batch(jax.random.key(1))
    step = jax.jit(sac.update, static_argnums=0)
    new, metrics = step(SMALL, state, data)
    again, _ = step(SMALL, state, data)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert set(metrics) >= {"critic/loss", "actor/loss", "actor/entropy", "temperature/value"}
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.actor_params, new.actor_params)
    assert max(jax.tree.leaves(moved)) > 0
    assert int(new.step) == 1
    assert jax.tree.all(jax.tree.map(jnp.array_equal, new.critic_params, again.critic_params))
    # the target critics move by tau toward the online ones
    expected = jax.tree.map(lambda t, o: 0.995 * t + 0.005 * o, state.critic_target, new.critic_params)
    assert jax.tree.all(jax.tree.map(lambda a, b: jnp.allclose(a, b, atol=1e-6), new.critic_target, expected))
    # the temperature falls while the entropy is above its target -|A| (a fresh policy's is)
    assert float(metrics["actor/entropy"]) > -2 and float(metrics["temperature/value"]) < 1.0


def test_buffer_ring_and_learn_chunk():
    buffer = sac.init_buffer(10, 3, 2)
    for i in range(3):
        data = batch(jax.random.key(i), size=4)
        buffer = sac.insert(buffer, data)
    assert int(buffer.size) == 10 and int(buffer.position) == 2  # 12 rows into 10: wrapped
    np.testing.assert_array_equal(np.asarray(buffer.obs[:2]), np.asarray(data.obs[2:]))
    state = sac.init(SMALL, jax.random.key(0), 3, 2)
    state, buffer, metrics = sac.learn(SMALL, state, buffer, batch(jax.random.key(9), size=4), 3)
    assert int(state.step) == 3 and np.isfinite(float(metrics["critic/loss"]))


def test_policy_file_round_trip_and_corruption(tmp_path):
    config = sac.SACConfig(actor_hidden=(8, 8))
    params = sac.actor_net(config, 2).init(jax.random.key(0), jnp.zeros((1, 3)))
    card = {
        "card_version": 1,
        "task": "toy",
        "env_id": "Toy-v0",
        "obs_dim": 3,
        "action_dim": 2,
        "actor_hidden": [8, 8],
        "log_std_min": -5.0,
        "log_std_max": 0.0,
        "reached_target": True,
        "target_return": 1.0,
        "eval_return_mean": 2.0,
        "eval_return_std": 0.5,
        "eval_episodes": 20,
        "training_steps": 10,
        "seed": 0,
        "command": "python -m brackit.protocol.behavior train --task toy",
        "device": "cpu",
        "gymnasium_version": "1.4.0",
        "mujoco_version": "4.0.0",
    }
    npz_path, card_path = save_policy(tmp_path / "toy.npz", params, card)
    loaded = load_policy(npz_path)
    assert jax.tree.all(jax.tree.map(np.array_equal, jax.device_get(loaded.params), jax.device_get(params)))
    assert loaded.card["params_sha256"] == params_sha256(flatten_params(params))
    with np.load(npz_path, allow_pickle=False) as npz:
        assert "params/MLP_0/Dense_0/kernel" in npz.files
        assert all(npz[k].dtype == np.float32 for k in npz.files)
    obs = jnp.ones((4, 3))
    np.testing.assert_allclose(
        loaded.distribution(obs).mode(), sac.policy(config, params, obs, 2).mode(), rtol=1e-6
    )

    # a truncated parameter file
    good = npz_path.read_bytes()
    npz_path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"toy\.npz: field 'file'"):
        load_policy(npz_path)
    # changed parameters: the sha in the card no longer matches
    flat = flatten_params(params)
    flat["params/MLP_0/Dense_0/bias"] = flat["params/MLP_0/Dense_0/bias"] + 1.0
    with zipfile.ZipFile(npz_path, "w") as archive:
        for key, value in flat.items():
            with archive.open(key + ".npy", "w") as handle:
                np.lib.format.write_array(handle, value)
    with pytest.raises(DatasetError, match="params_sha256"):
        load_policy(npz_path)
    # a wrong shape
    flat["params/MLP_0/Dense_0/bias"] = np.zeros(7, np.float32)
    np.savez(npz_path, **flat)
    with pytest.raises(DatasetError, match=r"Dense_0/bias.*shape \(8,\)"):
        load_policy(npz_path)
    # a card without a field, and a card that is not JSON
    npz_path.write_bytes(good)
    card_path.write_text(json.dumps({k: v for k, v in loaded.card.items() if k != "env_id"}))
    with pytest.raises(DatasetError, match=r"toy\.card\.json: field 'env_id'"):
        load_policy(npz_path)
    card_path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"toy\.card\.json: field 'file'"):
        load_policy(npz_path)
    card_path.unlink()
    with pytest.raises(DatasetError, match="card"):
        load_policy(npz_path)


def test_sac_learns_pendulum():
    config = sac.SACConfig(
        actor_hidden=(64, 64),
        critic_hidden=(64, 64),
        random_steps=1000,
        num_envs=4,
        learning_rate=1e-3,
    )
    result = sac.train_behavior(
        "Pendulum-v1",
        target_return=-250,
        max_steps=4000,
        seed=0,
        eval_every=1000,
        eval_episodes=5,
        config=config,
    )
    first, best = result.history[0]["return_mean"], max(row["return_mean"] for row in result.history)
    # uniform-random play scores about -1200 to -1700; SAC gets within a few hundred of 0 in a few thousand steps
    assert first < -900
    assert best > first + 500, [row["return_mean"] for row in result.history]
    assert result.steps <= 4000 and result.updates == result.steps - 1000
    assert np.isfinite(result.history[-1]["critic/loss"])
