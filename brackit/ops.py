"""Pure math shared by the offline algorithms: ensemble reduction, Bellman targets, penalties,
Lagrange multipliers, Polyak averaging, one optimizer step and the namespacing of metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax


def ensemble_reduce(q: jax.Array, lam: float) -> jax.Array:
    """``lam * min_i q_i + (1 - lam) * max_i q_i`` over the ensemble axis 0: q [E, ...] -> [...].

    lam = 1 is the pure min (BRAC); 0.75 is the soft clipped double-Q of BCQ and BEAR.
    """
    if lam == 1.0:
        return jnp.min(q, axis=0)
    return lam * jnp.min(q, axis=0) + (1.0 - lam) * jnp.max(q, axis=0)


def bellman_target(reward: jax.Array, discount: jax.Array, gamma: float, next_value: jax.Array) -> jax.Array:
    """y = r + gamma * discount * V(s'), with ``discount`` the continuation mask [B]; no gradient."""
    return jax.lax.stop_gradient(reward + gamma * discount * next_value)


def ensemble_td_loss(q: jax.Array, target: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Sum over critics of mean_B (Q_i(s, a) - y)^2: q [E, B], target [B] -> (loss, metrics)."""
    loss = jnp.sum(jnp.mean((q - target[None]) ** 2, axis=1))
    return loss, {"loss": loss, "q_mean": jnp.mean(q), "target_mean": jnp.mean(target)}


def value_penalty(next_value: jax.Array, alpha: jax.Array, divergence: jax.Array) -> jax.Array:
    """BRAC-v: the target's next value loses ``alpha * D(pi(.|s'), pi_b(.|s'))`` [B]."""
    return next_value - alpha * divergence


def lagrange_loss(multiplier: jax.Array, constraint_value: jax.Array, target: float) -> jax.Array:
    """Loss whose descent raises the multiplier while the constraint ``value <= target`` is violated:
    ``-multiplier * mean(value - target)`` (the constraint value is not differentiated)."""
    return -multiplier * jnp.mean(jax.lax.stop_gradient(constraint_value) - target)


@jax.custom_vjp
def nonnegative(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` for a trained multiplier stored unconstrained (BRAC's entropy temperature).

    Its gradient lets descent raise ``x`` from 0 or below, which ReLU's zero gradient would not: a cotangent
    that would push ``x`` up (negative) always passes; one that would push it down passes only while x > 0
    (``relu_v2`` of the BRAC reference code, google-research behavior_regularized_offline_rl/brac/utils.py).
    """
    return jnp.maximum(x, 0.0)


def _nonnegative_fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.maximum(x, 0.0), x


def _nonnegative_bwd(x: jax.Array, cotangent: jax.Array) -> tuple[jax.Array]:
    return (jnp.where((cotangent > 0) & (x <= 0), 0.0, cotangent),)


nonnegative.defvjp(_nonnegative_fwd, _nonnegative_bwd)


def entropy_temperature_loss(
    raw_temperature: jax.Array, log_prob: jax.Array, target_entropy: float
) -> jax.Array:
    """``mean(alpha (-log pi(a|s) - target_entropy))`` with ``alpha = nonnegative(raw)``: descent raises the
    temperature while the entropy estimate ``-log_prob`` [B] is below its target (the log-probs are not
    differentiated)."""
    entropy = -jax.lax.stop_gradient(log_prob)
    return jnp.mean(nonnegative(raw_temperature) * (entropy - target_entropy))


def polyak(target: Any, online: Any, tau: float) -> Any:
    """target <- (1 - tau) target + tau online, leaf by leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def global_norm(tree: Any) -> jax.Array:
    return optax.global_norm(tree)


def multiplier_step(
    loss_fn: Callable[..., jax.Array],
    value: jax.Array,
    opt_state: Any,
    optimizer: optax.GradientTransformation,
    *args: Any,
) -> tuple[jax.Array, Any]:
    """One optimizer step on a scalar multiplier (alpha, a temperature, a Lagrange multiplier):
    ``loss_fn(value, *args) -> loss``; returns the new value and optimizer state."""
    updates, opt_state = optimizer.update(jax.grad(loss_fn)(value, *args), opt_state, value)
    return optax.apply_updates(value, updates), opt_state


def gradient_step(
    loss_fn: Callable[..., tuple[jax.Array, dict[str, jax.Array]]],
    params: Any,
    opt_state: Any,
    optimizer: optax.GradientTransformation,
    *args: Any,
) -> tuple[Any, Any, dict[str, jax.Array]]:
    """One optimizer step on ``loss_fn(params, *args) -> (loss, metrics)``; returns new params, state and
    the metrics (with the gradient norm under ``grad_norm``)."""
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {**metrics, "grad_norm": global_norm(grads)}


def namespaced(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"critic": {"loss": l}, "actor": {"q": q}}`` -> ``{"critic/loss": l, "actor/q": q}``: the flat,
    namespaced metrics an update returns."""
    return {f"{name}/{key}": value for name, metrics in groups.items() for key, value in metrics.items()}
