"""BRAC and BC: one update of every configuration, determinism, vmap over seeds, a behavior test."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algo_helpers import (
    ACT,
    BRAC_SMALL,
    OBS,
    assert_vmap_equals_single_runs,
    batch,
    leaves_equal,
    tiny_dataset,
)

from brackit.algos import bc, brac, make_config
from brackit.data import Episode, arrays_from_episodes, make_dataset
from brackit.errors import ConfigError
from brackit.train import train

SMALL = BRAC_SMALL
FORMS = [("kl", "primal"), ("mmd", "primal"), ("kl", "dual"), ("w", "dual")]


@pytest.mark.parametrize(
    ("penalty", "divergence", "form", "tune_alpha"),
    [(p, d, f, t) for p, (d, f), t in itertools.product(["value", "policy"], FORMS, [False, True])],
)
def test_one_update_every_configuration(penalty, divergence, form, tune_alpha):
    config = brac.BRACConfig(
        penalty=penalty,
        divergence=divergence,
        form=form,
        tune_alpha=tune_alpha,
        target_divergence=0.01,
        **SMALL,
    )
    with jax.disable_jit():  # op-by-op: 16 configurations share compiled primitives
        state = brac.init(config, jax.random.key(0), OBS, ACT)
        new_state, metrics = brac.update(config, state, batch())
        again, _ = brac.update(config, brac.init(config, jax.random.key(0), OBS, ACT), batch())
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    assert leaves_equal(new_state, again)  # same key, same batch: bit-identical state
    for field in ("actor_params", "critic_params", "critic_target"):
        assert not leaves_equal(getattr(state, field), getattr(new_state, field)), field
    if form == "dual":
        assert not leaves_equal(state.dual_params, new_state.dual_params)
        assert "dual/estimate" in metrics
    if penalty == "value":
        assert "critic/next_divergence" in metrics
    else:
        assert "critic/next_divergence" not in metrics
    assert (float(new_state.alpha) != float(state.alpha)) == tune_alpha
    assert int(new_state.step) == 1


@pytest.mark.parametrize(("divergence", "form"), [("kl", "primal"), ("w", "dual")])
def test_vmap_over_seeds_equals_single_runs(divergence, form):
    assert_vmap_equals_single_runs("brac", brac.BRACConfig(divergence=divergence, form=form, **SMALL))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="no primal form"):
        brac.BRACConfig(divergence="w", form="primal")
    with pytest.raises(ConfigError, match="penalty"):
        brac.BRACConfig(penalty="both")
    with pytest.raises(ConfigError, match="tune_alpha needs a divergence"):
        brac.BRACConfig(divergence="none", tune_alpha=True)
    with pytest.raises(ConfigError, match=r"valid fields: .*penalty"):
        make_config("brac", penalty_type="value")
    assert brac.BRACConfig(form="dual").initial_alpha == 10.0
    assert brac.BRACConfig(form="dual").policy_lr == 3e-6
    assert brac.BRACConfig().initial_alpha == 0.1 and brac.BRACConfig().policy_lr == 3e-4


def test_train_end_to_end_with_sweep_and_pendulum_eval():
    """Jitted chunks, vmapped over 2 seeds x 2 alphas, evaluated on Pendulum (a gymnasium task)."""
    rng = np.random.default_rng(0)
    eps = [
        Episode(
            rng.normal(size=(31, 3)).astype(np.float32),
            rng.uniform(-2, 2, size=(30, 1)).astype(np.float32),
            rng.normal(size=30).astype(np.float32),
            np.zeros(30, bool),
            np.r_[np.zeros(29, bool), True],
        )
        for _ in range(3)
    ]
    dataset = make_dataset(arrays_from_episodes(eps), path="<p>", source_format="test", env_id="Pendulum-v1")
    logged = []
    result = train(
        "brac",
        dataset,
        steps=20,
        chunk_steps=10,
        seeds=(0, 1),
        sweep={"alpha": [0.0, 1.0]},
        eval_every=20,
        eval_episodes=2,
        logger=logged.append,
        behavior_steps=10,
        **SMALL,
    )
    assert [run["alpha"] for run in result.runs] == [0.0, 0.0, 1.0, 1.0]
    assert [h["phase"] for h in logged] == ["pretrain", "train", "train"]
    final = result.final_eval()
    assert final["eval/return_mean"].shape == (4,)
    assert np.all(final["eval/return_mean"] < 0)  # Pendulum rewards are negative
    np.testing.assert_allclose(result.states.alpha, [0.0, 0.0, 1.0, 1.0])
    assert final["eval/length_mean"].tolist() == [200.0] * 4


def bandit_dataset(seed: int = 0, size: int = 2000):
    """One-step episodes; actions from N(0, 0.15^2) clipped. True reward: a on [-0.3, 0.3], -1 outside."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(size, 2)).astype(np.float32)
    action = np.clip(rng.normal(0.0, 0.15, size=(size, 1)), -0.3, 0.3).astype(np.float32)
    arrays = {
        "obs": obs,
        "action": action,
        "reward": bandit_reward(action)[:, 0],
        "discount": np.zeros(size, np.float32),
        "next_obs": obs,
        "next_action": action,
        "next_action_valid": np.zeros(size, bool),
        "episode_id": np.arange(size, dtype=np.int32),
        "timeout": np.zeros(size, bool),
    }
    return make_dataset(arrays, path="<bandit>", source_format="test")


def bandit_reward(action: np.ndarray) -> np.ndarray:
    return np.where(np.abs(action) <= 0.3, action, -1.0).astype(np.float32)


def test_brac_stays_in_support_where_unregularized_goes_out():
    """Why BRAC exists: the critic extrapolates the data's trend (reward = a) beyond the data, where the
    true reward is -1. The unregularized actor-critic follows the extrapolation out of the data's support;
    BRAC-v (KL, alpha 1) stays near the behavior policy and scores higher."""
    dataset = bandit_dataset()
    common = {**SMALL, "critic_hidden": (64, 64), "actor_hidden": (64, 64), "batch_size": 128}
    common["behavior"] = bc.BCConfig(hidden=(64, 64))
    contexts = jnp.asarray(np.random.default_rng(1).normal(size=(256, 2)), jnp.float32)
    results = {}
    for name, overrides in {
        "unregularized": {"divergence": "none"},
        "brac_v": {
            "divergence": "kl",
            "form": "primal",
            "penalty": "value",
            "alpha": 1.0,
            "behavior_steps": 1000,
        },
    }.items():
        config = brac.BRACConfig(**common, **overrides)
        result = train("brac", dataset, config, steps=1500, chunk_steps=500, seeds=(0,))
        actions = np.asarray(brac.act(config, result.run_state(0), contexts, jax.random.key(0)))
        results[name] = (float(np.mean(np.abs(actions) > 0.3)), float(np.mean(bandit_reward(actions))))
    out_of_support, unregularized_return = results["unregularized"]
    brac_out, brac_return = results["brac_v"]
    assert out_of_support > 0.9, results
    assert brac_out < 0.1, results
    assert brac_return > unregularized_return + 0.5, results


def test_bc_recovers_behavior_mean():
    dataset = bandit_dataset(size=1000)
    config = bc.BCConfig(hidden=(32, 32), learning_rate=3e-3, batch_size=128)
    result = train("bc", dataset, config, steps=600, chunk_steps=300)
    actions = bc.act(config, result.run_state(0), dataset.transitions.obs[:200], jax.random.key(0))
    assert abs(float(jnp.mean(actions))) < 0.05
    assert result.history[-1]["bc/loss"][0] < result.history[0]["bc/loss"][0]


def test_readme_quickstart_from_a_path(tmp_path):
    """The README's few lines: train BRAC-v on a dataset file by path, several seeds at once."""
    from brackit.data import save_dataset

    save_dataset(tiny_dataset(), tmp_path / "tiny.npz")
    import brackit.train

    result = brackit.train.train(
        "brac",
        tmp_path / "tiny.npz",
        penalty="value",
        divergence="kl",
        form="primal",
        steps=4,
        chunk_steps=2,
        seeds=(0, 1),
        behavior_steps=2,
        **SMALL,
    )
    assert result.config.penalty == "value"
    assert result.history[-1]["critic/loss"].shape == (2,)
    assert np.all(np.isfinite(result.history[-1]["critic/loss"]))


def test_normalized_scores():
    from brackit.scores import normalized_score

    assert normalized_score("Hopper-v5", -20.272305) == pytest.approx(0.0)
    assert normalized_score("Hopper-v5", 3234.3) == pytest.approx(100.0)
    assert normalized_score("HalfCheetah-v5", 12135.0) == pytest.approx(100.0)
    assert normalized_score("Pendulum-v1", -100.0) is None
