"""BRAC and its behavior policy against the reference implementation (google-research
behavior_regularized_offline_rl/brac), each formula recomputed in float64 numpy from the parameters: the
smooth log-std, the behavior policy's entropy term, the temperature that can grow from 0, the clipped primal
KL, the update's order, the dual critics' penalty and fresh batches, the timeout mask, max-Q acting by Q1."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from algo_helpers import ACT, BRAC_SMALL, OBS, B, batch, tiny_dataset

from brackit.algos import bc, brac, get_algorithm
from brackit.data import OfflineDataset
from brackit.ops import entropy_temperature_loss, gradient_step
from brackit.train import make_train

SMALL = BRAC_SMALL


def np_mlp(params: dict, x: np.ndarray) -> np.ndarray:
    """A ReLU MLP ``{'Dense_i': {'kernel', 'bias'}}`` in float64."""
    layers = sorted(params, key=lambda name: int(name.split("_")[1]))
    h = np.asarray(x, np.float64)
    for index, name in enumerate(layers):
        h = h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"], np.float64)
        if index < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def np_gaussian_head(params: dict, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, log_std) of the reference ActorNetwork: log_std = -5 + 2.5 (tanh(x) + 1)."""
    out = np_mlp(params["params"]["MLP_0"], obs)
    mean, raw = np.split(out, 2, axis=-1)
    return mean, -5.0 + 2.5 * (np.tanh(raw) + 1.0)


def np_log_prob(mean: np.ndarray, log_std: np.ndarray, action: np.ndarray) -> np.ndarray:
    """log-density of a = tanh(u), u ~ N(mean, std^2), at unit-box actions: [..., B]."""
    u = np.arctanh(action)
    gaussian = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.sum(gaussian - np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def test_log_std_is_mapped_smoothly_into_its_range():
    config = bc.BCConfig(hidden=(8,))
    state = bc.init(config, jax.random.key(0), OBS, ACT)
    params = jax.tree.map(lambda x: 4.0 * x, state.params)  # raw outputs well outside [-5, 0]
    obs = np.asarray(batch().obs)
    dist = bc.distribution(config, params, jnp.asarray(obs), ACT)
    mean, log_std = np_gaussian_head(params, obs)
    np.testing.assert_allclose(dist.log_std, log_std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.mean, mean, rtol=1e-5, atol=1e-4)
    assert np.all((log_std >= -5.0) & (log_std <= 0.0)) and np.ptp(log_std) > 1.0
    # no zero-gradient region: every log-std output moves with the parameters (a hard clip would not)
    grads = jax.grad(lambda p: jnp.sum(bc.distribution(config, p, jnp.asarray(obs), ACT).log_std))(params)
    assert float(jnp.min(jnp.abs(grads["params"]["MLP_0"]["Dense_1"]["bias"][ACT:]))) > 0.0


def test_behavior_policy_loss_is_likelihood_plus_entropy_term():
    """bc_agent.py: mean(alpha_ent log pi(a_p|s) - log pi(a_b|s)), a_b clipped 1e-3 inside the bounds."""
    config = bc.BCConfig(hidden=(8, 8), alpha_entropy=0.7)
    state = bc.init(config, jax.random.key(1), OBS, ACT)
    data = batch(3)
    data = data.replace(action=data.action.at[0, 0].set(1.0))  # on the bound: clipped before log pi
    key = jax.random.key(7)
    value, metrics = bc.loss(state.params, config, data, state.alpha_entropy, key)
    mean, log_std = np_gaussian_head(state.params, np.asarray(data.obs))
    noise = np.asarray(jax.random.normal(key, mean.shape), np.float64)  # the draws sample_and_log_prob makes
    a_p = np.tanh(mean + np.exp(log_std) * noise)
    a_b = np.clip(np.asarray(data.action, np.float64), -1 + 1e-3, 1 - 1e-3)
    expected = np.mean(0.7 * np_log_prob(mean, log_std, a_p) - np_log_prob(mean, log_std, a_b))
    assert float(value) == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert float(metrics["nll"]) == pytest.approx(-np.mean(np_log_prob(mean, log_std, a_b)), rel=1e-4)
    pure = dataclasses.replace(config, alpha_entropy=0.0, tune_entropy=False)
    value, _ = bc.loss(state.params, pure, data, state.alpha_entropy, key)
    assert float(value) == pytest.approx(-np.mean(np_log_prob(mean, log_std, a_b)), rel=1e-4)


@pytest.mark.parametrize(
    ("raw", "entropy_gap", "passes"), [(0.0, -1.0, True), (0.0, 1.0, False), (0.3, 1.0, True)]
)
def test_temperature_gradient_lets_it_grow_from_zero(raw, entropy_gap, passes):
    """relu_v2: d/dv mean(relu(v) (H - target)) = mean(H - target), except that a push downward stops at 0."""
    target = -2.0
    log_prob = -np.full(5, target + entropy_gap, np.float32)  # entropy = target + gap
    grad = float(jax.grad(entropy_temperature_loss)(jnp.float32(raw), jnp.asarray(log_prob), target))
    assert grad == pytest.approx(entropy_gap if passes else 0.0)


def test_tuned_entropy_temperature_grows_from_zero():
    """With alpha_entropy 0 and the entropy below its target, a tuned temperature becomes positive (the old
    log-parametrised temperature started at log(1e-30) and stayed there)."""
    config = brac.BRACConfig(alpha_entropy=0.0, tune_entropy=True, target_entropy=50.0, **SMALL)
    state = brac.init(config, jax.random.key(0), OBS, ACT)
    for step in range(3):
        state, metrics = brac.update(config, state, batch(step))
    assert float(metrics["alpha_entropy/value"]) > 0.0
    above = dataclasses.replace(config, target_entropy=-50.0)  # entropy above target: stays at 0, not below
    state = brac.init(above, jax.random.key(0), OBS, ACT)
    for step in range(3):
        state, metrics = brac.update(above, state, batch(step))
    assert float(metrics["alpha_entropy/value"]) == 0.0


def test_primal_kl_clips_policy_samples_before_log_pi_b():
    """divergences.py KL.primal_estimate: mean_n(log pi(a_n) - log pi_b(clip(a_n, 1e-3))), a_n ~ pi."""
    config = brac.BRACConfig(divergence="kl", form="primal", num_divergence_samples=3, **SMALL)
    state = brac.init(config, jax.random.key(2), OBS, ACT)
    # a wide policy: many samples saturate past the clip
    actor = jax.tree.map(lambda x: 4.0 * x, state.actor_params)
    obs = batch(4).obs
    key = jax.random.key(9)
    value = brac.divergence_at(config, state, actor, None, obs, batch(4).action, key)
    mean, log_std = np_gaussian_head(actor, np.asarray(obs))
    b_mean, b_log_std = np_gaussian_head(state.behavior.params, np.asarray(obs))
    policy_key, _ = jax.random.split(key)
    noise = np.asarray(jax.random.normal(policy_key, (3, *mean.shape)), np.float64)
    raw = mean + np.exp(log_std) * noise
    log_pi = np.sum(
        -0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi) - np.log(4.0) + 2 * np.logaddexp(raw, -raw),
        axis=-1,
    )
    clipped = np.clip(np.tanh(raw), -1 + 1e-3, 1 - 1e-3)
    assert np.mean(np.abs(np.tanh(raw)) > 1 - 1e-3) > 0.05
    expected = np.mean(log_pi - np_log_prob(b_mean, b_log_std, clipped), axis=0)
    np.testing.assert_allclose(value, expected, rtol=2e-3, atol=2e-3)


def test_actor_steps_against_the_updated_critics():
    config = brac.BRACConfig(divergence="kl", form="primal", **SMALL)
    state = brac.init(config, jax.random.key(0), OBS, ACT)
    state = state.replace(step=jnp.int32(5))
    data = batch(1)
    new, metrics = brac.update(config, state, data)
    _, _, _, actor_key, _, _ = jax.random.split(state.key, 6)
    moved = state.replace(
        critic_target=jax.tree.map(
            lambda t, o: 0.995 * t + 0.005 * o, state.critic_target, state.critic_params
        )
    )
    _, after = brac.actor_loss(state.actor_params, config, moved, new.critic_params, data, actor_key)
    _, before = brac.actor_loss(state.actor_params, config, moved, state.critic_params, data, actor_key)
    assert float(metrics["actor/q"]) == pytest.approx(float(after["q"]), rel=1e-5)
    assert float(after["q"]) != pytest.approx(float(before["q"]), rel=1e-5)
    # the targets moved toward the pre-update critics (the reference's order), not the updated ones
    expected_target = jax.tree.map(
        lambda t, o: 0.995 * t + 0.005 * o, state.critic_target, state.critic_params
    )
    for got, want in zip(jax.tree.leaves(new.critic_target), jax.tree.leaves(expected_target), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_q_term_enters_after_warm_start():
    """brac_primal_agent: q_start = global_step > warm_start (with alpha 0 and no entropy the warm-start
    loss is exactly 0)."""
    config = brac.BRACConfig(divergence="kl", form="primal", alpha=0.0, **{**SMALL, "warm_start_steps": 4})
    state = brac.init(config, jax.random.key(0), OBS, ACT)
    key = jax.random.key(3)
    at = state.replace(step=jnp.int32(4))
    loss_at, _ = brac.actor_loss(state.actor_params, config, at, state.critic_params, batch(), key)
    after = state.replace(step=jnp.int32(5))
    loss_after, metrics = brac.actor_loss(
        state.actor_params, config, after, state.critic_params, batch(), key
    )
    assert float(loss_at) == 0.0
    assert float(loss_after) == pytest.approx(-float(metrics["q"]), rel=1e-6)


def test_dual_critic_steps_after_the_actor_on_fresh_batches():
    """brac_dual_agent.train_step: Q, policy, one c step on the same batch, then c_iter - 1 c steps on new
    batches, each against the updated policy; the KL dual critic's loss carries the gradient penalty."""
    config = brac.BRACConfig(divergence="kl", form="dual", dual_steps=2, **SMALL)
    assert config.make_divergence().penalty_weight == 5.0
    state = brac.init(config, jax.random.key(0), OBS, ACT)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), batch(1), batch(2))
    new, metrics = brac.update(config, state, stacked)
    assert float(metrics["dual/penalty"]) >= 0.0
    _, dual_key, *_ = jax.random.split(state.key, 6)
    keys = jax.random.split(dual_key, 2)
    after_actor = state.replace(actor_params=new.actor_params)
    params, opt = state.dual_params, state.dual_opt
    import optax

    for index, data in enumerate((batch(1), batch(2))):
        params, opt, step_metrics = gradient_step(
            brac.dual_loss, params, opt, optax.adam(config.dual_lr), config, after_actor, data, keys[index]
        )
        if index == 0:
            # the loss is -mean(dual estimate) + 5 * gradient penalty
            assert float(step_metrics["loss"]) == pytest.approx(
                -float(step_metrics["estimate"]) + float(step_metrics["penalty"]), rel=1e-5
            )
    for got, want in zip(jax.tree.leaves(new.dual_params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert get_algorithm("brac").batches_per_update(config) == 2


def test_dual_value_penalty_skips_rows_without_a_next_action():
    config = brac.BRACConfig(divergence="kl", form="dual", alpha=3.0, **SMALL)
    state = brac.init(config, jax.random.key(0), OBS, ACT)
    valid = np.ones(B, np.float32)
    valid[::3] = 0.0
    data = batch(5).replace(next_action_valid=jnp.asarray(valid))
    key = jax.random.key(1)
    penalized, _ = brac.critic_target(config, state, data, key)
    free, _ = brac.critic_target(config, state.replace(alpha=jnp.float32(0.0)), data, key)
    np.testing.assert_allclose(penalized[valid == 0], free[valid == 0], rtol=1e-6)
    continuing = (valid == 1) & (np.asarray(data.discount) == 1)  # terminal rows have no next value at all
    assert continuing.sum() >= 3 and np.all(np.abs(np.asarray(penalized - free))[continuing] > 0)


def test_max_q_acting_ranks_candidates_by_q1():
    """MaxQSoftPolicy: n policy samples, the one with the largest value under the first critic."""
    config = brac.BRACConfig(divergence="kl", form="dual", eval_samples=7, **SMALL)
    state = brac.init(config, jax.random.key(0), OBS, ACT)
    obs = batch().obs
    chosen = brac.act(config, state, obs, jax.random.key(5), mode="max_q")
    mean, log_std = np_gaussian_head(state.actor_params, np.asarray(obs))
    noise = np.asarray(jax.random.normal(jax.random.key(5), (7, *mean.shape)), np.float64)
    candidates = np.tanh(mean + np.exp(log_std) * noise)  # [N, B, A]
    critics = state.critic_params["params"]["VmapCritic_0"]["MLP_0"]
    first = jax.tree.map(lambda x: x[0], critics)
    second = jax.tree.map(lambda x: x[1], critics)
    obs_n = np.broadcast_to(np.asarray(obs), (7, *obs.shape))
    q1 = np_mlp(first, np.concatenate([obs_n, candidates], -1))[..., 0]
    q2 = np_mlp(second, np.concatenate([obs_n, candidates], -1))[..., 0]
    best = candidates[np.argmax(q1, axis=0), np.arange(B)]
    np.testing.assert_allclose(chosen, best, rtol=1e-5, atol=1e-6)
    assert np.any(np.argmax(q1, axis=0) != np.argmax(np.minimum(q1, q2), axis=0))  # the rule matters here


def test_pretraining_uses_the_behavior_batch_size(monkeypatch):
    config = brac.BRACConfig(**{**SMALL, "behavior": bc.BCConfig(hidden=(8,), batch_size=5)})
    sizes = []
    original = OfflineDataset.sample

    def spy(self, key, batch_size):
        sizes.append(batch_size)
        return original(self, key, batch_size)

    monkeypatch.setattr(OfflineDataset, "sample", spy)
    fns = make_train(get_algorithm("brac"), config, OBS, ACT, chunk_steps=2)
    with jax.disable_jit():
        state = fns.init(jax.random.key(0))
        fns.pretrain_chunk(state, tiny_dataset())
    assert set(sizes) == {5}


def test_short_runs_warn_about_warm_start_and_show_a_progress_bar(capsys):
    """A run shorter than its warm start says so; ``progress=True`` draws the bar (pretraining included),
    and None draws none when standard error is not a terminal (as under pytest)."""
    from brackit.train import train

    config = brac.BRACConfig(**{**SMALL, "warm_start_steps": 10, "behavior_steps": 2})
    with pytest.warns(UserWarning, match="never leaves its warm start"):
        train("brac", tiny_dataset(), config, steps=4, chunk_steps=2, progress=True)
    assert "pretrain" in capsys.readouterr().out
    train("brac", tiny_dataset(), dataclasses.replace(config, warm_start_steps=0), steps=2, chunk_steps=2)
    assert "pretrain" not in capsys.readouterr().out
