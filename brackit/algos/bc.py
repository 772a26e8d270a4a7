"""Behavior cloning: a tanh-Gaussian policy fitted by maximum likelihood to the dataset's actions.

Serves as the BC baseline and as the behavior-policy estimate pi_b that BRAC's primal divergences need
(Wu et al. 2019, section 4: 200-200 network, Adam 5e-4, actions clipped 1e-3 inside the bounds).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.errors import ConfigError
from brackit.nets import GaussianHead, TanhGaussian
from brackit.ops import gradient_step
from brackit.types import Transition


@dataclasses.dataclass(frozen=True)
class BCConfig:
    hidden: tuple[int, ...] = (200, 200)
    """Hidden widths of the policy network."""
    learning_rate: float = 5e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per update."""
    action_clip: float = 1e-3
    """Dataset actions are clipped to within this of the bounds before taking log-probs."""
    log_std_min: float = -5.0
    log_std_max: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.action_clip < 0.5:
            raise ConfigError(f"action_clip must be in (0, 0.5), got {self.action_clip}")
        if self.learning_rate <= 0 or self.batch_size <= 0:
            raise ConfigError("learning_rate and batch_size must be positive")


@struct.dataclass
class BCState:
    params: dict
    opt_state: optax.OptState
    step: jax.Array
    key: jax.Array
    action_dim: int = struct.field(pytree_node=False)


def network(config: BCConfig, action_dim: int) -> GaussianHead:
    return GaussianHead(config.hidden, action_dim, config.log_std_min, config.log_std_max)


def optimizer(config: BCConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def init(config: BCConfig, key: jax.Array, obs_dim: int, action_dim: int) -> BCState:
    key, init_key = jax.random.split(key)
    params = network(config, action_dim).init(init_key, jnp.zeros((1, obs_dim)))
    return BCState(params, optimizer(config).init(params), jnp.zeros((), jnp.int32), key, action_dim)


def distribution(config: BCConfig, params: dict, obs: jax.Array, action_dim: int) -> TanhGaussian:
    return network(config, action_dim).apply(params, obs)


def loss(params: dict, config: BCConfig, batch: Transition) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative log-likelihood of the (clipped) dataset actions: scalar, metrics."""
    dist = distribution(config, params, batch.obs, batch.action.shape[-1])
    log_prob = dist.log_prob(batch.action, config.action_clip)
    nll = -jnp.mean(log_prob)
    return nll, {"loss": nll, "log_std": jnp.mean(dist.log_std)}


def update(config: BCConfig, state: BCState, batch: Transition) -> tuple[BCState, dict[str, jax.Array]]:
    params, opt_state, metrics = gradient_step(
        loss, state.params, state.opt_state, optimizer(config), config, batch
    )
    metrics = {f"bc/{k}": v for k, v in metrics.items()}
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), metrics


def act(config: BCConfig, state: BCState, obs: jax.Array, key: jax.Array, mode: str = "mode") -> jax.Array:
    """Unit-box actions [B, A]: the distribution's mode, or a sample (``mode="sample"``)."""
    dist = distribution(config, state.params, obs, state.action_dim)
    if mode == "sample":
        return jnp.tanh(dist.sample_raw(key))
    return dist.mode()
