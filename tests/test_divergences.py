"""Divergences against closed forms and independent references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from brackit.divergences import (
    KL,
    MMD,
    PrimalInputs,
    Wasserstein,
    make_divergence,
    mmd_squared,
)
from brackit.errors import ConfigError
from brackit.nets import DualCritic, TanhGaussian


def gaussian_kl(m1, s1, m2, s2):
    """KL(N(m1, s1^2) || N(m2, s2^2)), summed over dims."""
    return float(np.sum(np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5))


def test_kl_primal_matches_gaussian_closed_form():
    # tanh is a bijection, so KL between tanh-Gaussians equals KL between the underlying Gaussians.
    m1, s1 = np.array([0.3, -0.5]), np.array([0.4, 0.7])
    m2, s2 = np.array([0.0, -0.2]), np.array([0.6, 0.5])
    pi = TanhGaussian(jnp.asarray(m1[None], jnp.float32), jnp.log(jnp.asarray(s1[None], jnp.float32)))
    pi_b = TanhGaussian(jnp.asarray(m2[None], jnp.float32), jnp.log(jnp.asarray(s2[None], jnp.float32)))
    actions, raw, log_prob = pi.sample_and_log_prob(jax.random.key(0), 200_000)  # [N, 1, A]
    inputs = PrimalInputs(actions, raw, log_prob, pi_b.log_prob_raw(raw), actions, raw)
    estimate = float(KL().primal(inputs)[0])
    assert estimate == pytest.approx(gaussian_kl(m1, s1, m2, s2), abs=0.01)


def mmd_reference(x, y, kernel, sigma):
    """float64 double loop over samples, one state."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def k(a, b):
        if kernel == "laplacian":
            return np.exp(-np.sum(np.abs(a - b)) / sigma)
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma))

    kxx = np.mean([[k(a, b) for b in x] for a in x])
    kyy = np.mean([[k(a, b) for b in y] for a in y])
    kxy = np.mean([[k(a, b) for b in y] for a in x])
    return kxx + kyy - 2 * kxy


@pytest.mark.parametrize("kernel", ["laplacian", "gaussian"])
def test_mmd_zero_symmetric_and_matches_reference(kernel):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, 2)).astype(np.float32)  # [N, B, A]
    y = rng.normal(loc=0.5, size=(4, 3, 2)).astype(np.float32)
    sigma = 0.7
    np.testing.assert_allclose(mmd_squared(x, x, kernel, sigma), 0.0, atol=1e-6)
    np.testing.assert_allclose(mmd_squared(x, y, kernel, sigma), mmd_squared(y, x, kernel, sigma), rtol=1e-6)
    ours = np.asarray(jax.jit(mmd_squared, static_argnums=(2, 3))(x, y, kernel, sigma))
    reference = [mmd_reference(x[:, b], y[:, b], kernel, sigma) for b in range(3)]
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    assert np.all(ours > 0)


def test_mmd_options():
    rng = np.random.default_rng(1)
    raw = jnp.asarray(rng.normal(size=(4, 2, 3)), jnp.float32)
    raw_b = jnp.asarray(rng.normal(size=(4, 2, 3)), jnp.float32)
    inputs = PrimalInputs(jnp.tanh(raw), raw, jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.tanh(raw_b), raw_b)
    squashed = MMD(sigma=1.0).primal(inputs)
    pre_tanh = MMD(sigma=1.0, on_raw=True).primal(inputs)
    rooted = MMD(sigma=1.0, use_sqrt=True).primal(inputs)
    np.testing.assert_allclose(
        squashed, mmd_squared(jnp.tanh(raw), jnp.tanh(raw_b), "laplacian", 1.0), rtol=1e-6
    )
    np.testing.assert_allclose(pre_tanh, mmd_squared(raw, raw_b, "laplacian", 1.0), rtol=1e-6)
    np.testing.assert_allclose(rooted, np.sqrt(np.asarray(squashed) + 1e-6), rtol=1e-6)


def train_dual_critic(divergence, mu_p: float, mu_b: float, steps: int = 1500, batch: int = 512):
    """Trains c(s, a) (state ignored) on 1-D Gaussians pi = N(mu_p, 0.3^2), pi_b = N(mu_b, 0.3^2)."""
    critic = DualCritic((64, 64))
    obs = jnp.zeros((batch, 1))
    params = critic.init(jax.random.key(0), obs, jnp.zeros((batch, 1)))
    optimizer = optax.adam(1e-3)

    def sample(key):
        key_p, key_b = jax.random.split(key)
        a_p = mu_p + 0.3 * jax.random.normal(key_p, (batch, 1))
        a_b = mu_b + 0.3 * jax.random.normal(key_b, (batch, 1))
        return a_p, a_b

    def loss(params, key):
        sample_key, penalty_key = jax.random.split(key)
        a_p, a_b = sample(sample_key)
        c = lambda o, a: critic.apply(params, o, a)  # noqa: E731
        estimate = jnp.mean(divergence.dual(c(obs, a_p), c(obs, a_b)))
        return -estimate + divergence.critic_penalty(c, penalty_key, obs, a_p, a_b)

    @jax.jit
    def run(params, key):
        def step(carry, key):
            params, opt_state = carry
            grads = jax.grad(loss)(params, key)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, steps))
        a_p, a_b = sample(jax.random.key(99))
        big = (
            jnp.concatenate([a_p, sample(jax.random.key(98))[0]]),
            jnp.concatenate([a_b, sample(jax.random.key(97))[1]]),
        )
        obs2 = jnp.zeros((2 * batch, 1))
        return jnp.mean(
            divergence.dual(critic.apply(params, obs2, big[0]), critic.apply(params, obs2, big[1]))
        )

    return float(run(params, jax.random.key(1)))


def test_kl_dual_approaches_kl():
    # KL(N(0.3, 0.3^2) || N(0, 0.3^2)) = 0.3^2 / (2 * 0.3^2) = 0.5; the dual is a lower bound when trained.
    # Without the gradient penalty: the estimator alone (the penalty keeps the critic Lipschitz, loosening it).
    estimate = train_dual_critic(KL(form="dual", penalty_weight=0.0), 0.3, 0.0)
    assert estimate == pytest.approx(0.5, abs=0.12)


@pytest.mark.parametrize("divergence", [KL(form="dual"), Wasserstein()])
def test_every_dual_critic_carries_the_gradient_penalty(divergence):
    """The reference adds 5 * mean(max(||grad_a c|| - 1, 0)^2) at a_p + u (a_b - a_p) to every dual critic's
    loss, KL included: checked against a numpy computation for a linear critic c(s, a) = w . a, whose
    gradient is w everywhere (so the penalty is 5 * max(||w|| - 1, 0)^2 whatever the interpolates)."""
    w = np.array([1.5, -2.0], np.float32)
    critic = lambda o, a: a @ jnp.asarray(w)  # noqa: E731
    a_p, a_b = jnp.zeros((8, 2)), jnp.ones((8, 2))
    penalty = divergence.critic_penalty(critic, jax.random.key(0), jnp.zeros((8, 1)), a_p, a_b)
    expected = 5.0 * max(np.sqrt(np.sum(w.astype(np.float64) ** 2) + 1e-8) - 1.0, 0.0) ** 2
    assert float(penalty) == pytest.approx(expected, rel=1e-5)
    assert divergence.penalty_weight == 5.0


def test_wasserstein_dual_approaches_w1():
    # W1 between 1-D Gaussians of equal variance is |mu1 - mu2| = 0.8.
    estimate = train_dual_critic(Wasserstein(), 0.8, 0.0)
    assert estimate == pytest.approx(0.8, abs=0.1)


def test_registry_and_form_validation():
    assert isinstance(make_divergence("mmd", "primal", sigma=10.0), MMD)
    assert make_divergence("kl", "dual").form == "dual"
    with pytest.raises(ConfigError, match="no primal form"):
        make_divergence("w", "primal")
    with pytest.raises(ConfigError, match="no dual form"):
        make_divergence("mmd", "dual")
    with pytest.raises(ConfigError, match="unknown divergence"):
        make_divergence("js", "primal")
    with pytest.raises(ConfigError, match="no parameter 'bandwidth'"):
        make_divergence("mmd", "primal", bandwidth=3.0)
    with pytest.raises(ConfigError, match="kernel"):
        make_divergence("mmd", "primal", kernel="cosine")
