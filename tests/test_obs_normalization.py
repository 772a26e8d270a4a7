"""Observation normalisation (``normalize_obs``): statistics as TD3+BC computes them, invariance of a trained
policy to an affine change of the observations, and the statistics' way through checkpoints and resume."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import random_episode_arrays

from brackit.algos import get_algorithm, make_config
from brackit.checkpoint import load_obs_stats
from brackit.data import make_dataset
from brackit.run import load_run, run_training
from brackit.train import batched_act, dataset_obs_stats, train

TINY = {"critic_hidden": (16, 16), "actor_hidden": (16, 16), "batch_size": 16}


def dataset(scale: float = 1.0, shift: float = 0.0, obs_dim: int = 3):
    """Random episodes whose observations are ``scale * obs + shift`` (obs ~ 1000 N(0, 1) + 5)."""
    arrays = random_episode_arrays(seed=0, episodes=4, steps=25, obs_dim=obs_dim)
    for name in ("obs", "next_obs"):
        arrays[name] = (scale * (1000.0 * arrays[name] + 5.0) + shift).astype(np.float32)
    return make_dataset(arrays, path="<affine>", source_format="test")


def test_defaults_td3bc_normalises_and_the_others_do_not():
    assert make_config("td3bc").normalize_obs
    for name in ("rebrac", "bc", "brac", "sac_offline", "bcq", "bear"):
        assert make_config(name).normalize_obs is False, name


def test_stats_are_mean_and_std_plus_eps_of_the_obs():
    data = dataset()
    stats = dataset_obs_stats(data)
    obs = np.asarray(data.transitions.obs, np.float64)  # the obs only, not next_obs (TD3+BC's utils.py)
    np.testing.assert_allclose(stats.mean, obs.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, obs.std(axis=0) + 1e-3, rtol=1e-6)
    assert stats.mean.dtype == stats.std.dtype == np.float32 and stats.mean.shape == (3,)


def test_td3bc_acts_the_same_on_affinely_transformed_observations():
    """Trained on obs and on 10 obs + 3 from the same key, the policies agree on correspondingly transformed
    observations (the observations' std ~1000 makes the 1e-3 epsilon negligible)."""
    algo = get_algorithm("td3bc")
    obs = np.asarray(dataset().transitions.obs[:12])[None]  # [R=1, E=12, O]
    keys = jax.random.split(jax.random.key(0), 1)
    actions = {}
    for normalize in (True, False):
        for scale, shift in ((1.0, 0.0), (10.0, 3.0)):
            config = make_config("td3bc", normalize_obs=normalize, **TINY)
            result = train("td3bc", dataset(scale, shift), config, steps=40, chunk_steps=20, seeds=(0,))
            assert (result.obs_stats is not None) == normalize
            act = batched_act(algo, config, result.obs_stats)
            actions[normalize, scale] = np.asarray(act(result.states, scale * obs + shift, keys, "mode"))
    np.testing.assert_allclose(actions[True, 1.0], actions[True, 10.0], atol=1e-4)
    assert np.max(np.abs(actions[False, 1.0] - actions[False, 10.0])) > 1e-2  # the test has teeth


@pytest.mark.parametrize("algorithm", ["td3bc", "bc"])
def test_stats_survive_checkpoint_and_resume(tmp_path, algorithm):
    data = dataset()
    overrides = TINY if algorithm == "td3bc" else {"hidden": (16, 16), "batch_size": 16}
    args = {"steps": 4, "chunk_steps": 2, "checkpoint_every": 2, "overrides": overrides, "tensorboard": False}
    reference = run_training(algorithm, data, logdir=tmp_path / "ref", **args)
    checkpoint = tmp_path / "ref" / "checkpoint.npz"
    stats = load_obs_stats(checkpoint)
    if algorithm == "bc":  # a run on raw observations (and every checkpoint from before the statistics)
        assert stats is None and reference.obs_stats is None
        return
    expected = dataset_obs_stats(data)
    np.testing.assert_array_equal(stats.mean, expected.mean)
    np.testing.assert_array_equal(stats.std, expected.std)
    np.testing.assert_array_equal(reference.obs_stats.mean, expected.mean)

    # a run stopped after its step-2 checkpoint, then resumed, ends where the uninterrupted one did
    class Stop(Exception):
        pass

    def stop_at_step_4(entry):
        if entry["step"] == 4:
            raise Stop

    with pytest.raises(Stop):
        run_training(algorithm, data, logdir=tmp_path / "cut", logger=stop_at_step_4, **args)
    resumed = run_training(algorithm, data, logdir=tmp_path / "cut", resume=True, **args)
    np.testing.assert_array_equal(resumed.obs_stats.std, expected.std)
    _, _, reference_states = load_run(checkpoint)
    _, _, resumed_states = load_run(tmp_path / "cut" / "checkpoint.npz")
    for x, y in zip(jax.tree.leaves(reference_states), jax.tree.leaves(resumed_states), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
