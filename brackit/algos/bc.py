"""Behavior cloning: a tanh-Gaussian policy fitted to the dataset's actions.

Serves as the BC baseline and as the behavior-policy estimate pi_b that BRAC's primal divergences need.
Follows the BRAC reference, google-research ``behavior_regularized_offline_rl/brac/bc_agent.py`` (trained
by ``run_bc.sh``: 200-200 network, Adam 5e-4, batch 256, actions clipped 1e-3 inside the bounds):

    loss = mean(alpha_ent * log pi(a_p|s) - log pi(a_b|s)),  a_p ~ pi(.|s) (reparameterised), a_b the data's

maximum likelihood plus an entropy term whose temperature starts at 1 and is trained toward the target
entropy -|A| (``ops.entropy_temperature_loss``: it grows while the entropy is below the target, shrinks
above it, never below 0). The entropy term keeps pi_b from collapsing onto the data's actions, which keeps
the KL penalty of BRAC's primal forms finite and its gradient moderate. ``alpha_entropy=0,
tune_entropy=False`` is pure maximum likelihood. The log-std is mapped smoothly into [-5, 0]
(``log_std_transform='tanh'``, the reference ActorNetwork's). Remaining differences: flax's default
initialisation (LeCun normal kernels) where the reference uses Keras's (Glorot uniform).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.algos.common import StepState, advance, entropy_temperature_fields, initial_step_fields
from brackit.config_checks import Rule, check_ranges, choice, comparison
from brackit.nets import LOG_STD_TRANSFORMS, GaussianHead, TanhGaussian
from brackit.ops import gradient_step, namespaced, nonnegative
from brackit.types import Transition


@dataclasses.dataclass(frozen=True)
class BCConfig:
    hidden: tuple[int, ...] = (200, 200)
    """Hidden widths of the policy network."""
    learning_rate: Annotated[float, "> 0"] = 5e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per update."""
    action_clip: Annotated[float, "(0, 0.5)"] = 1e-3
    """Dataset actions are clipped to within this of the bounds before taking log-probs."""
    log_std_min: Annotated[float, "finite"] = -5.0
    log_std_max: Annotated[float, "finite"] = 0.0
    log_std_transform: str = "tanh"
    """How the raw log-std output maps into [log_std_min, log_std_max]: 'tanh' (smooth, the reference's) or
    'clip'."""
    alpha_entropy: Annotated[float, ">= 0"] = 1.0
    """Weight of the entropy term (its initial value when tuned); 0 with ``tune_entropy`` False: pure MLE."""
    tune_entropy: bool = True
    """Train the entropy weight toward ``target_entropy`` (the reference does)."""
    target_entropy: Annotated[float | None, "finite or None"] = None
    """None: -|A|."""
    entropy_lr: float | None = None
    """Adam learning rate of the entropy weight; None: ``learning_rate`` (the reference's one setting)."""
    normalize_obs: bool = False
    """Train on observations standardised by the dataset's mean and std (``brackit.train``)."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        comparison("log_std_min <= log_std_max"),
        choice("log_std_transform", LOG_STD_TRANSFORMS),
    )

    def __post_init__(self) -> None:
        check_ranges(self)


@struct.dataclass
class BCState(StepState):
    params: dict
    opt_state: optax.OptState
    alpha_entropy: jax.Array
    """The entropy weight as stored (scalar); its value is ``ops.nonnegative`` of it."""
    alpha_entropy_opt: optax.OptState


def network(config: BCConfig, action_dim: int) -> GaussianHead:
    return GaussianHead(
        config.hidden, action_dim, config.log_std_min, config.log_std_max, config.log_std_transform
    )


def optimizer(config: BCConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def entropy_optimizer(config: BCConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate if config.entropy_lr is None else config.entropy_lr)


def init(config: BCConfig, key: jax.Array, obs_dim: int, action_dim: int) -> BCState:
    key, init_key = jax.random.split(key)
    params = network(config, action_dim).init(init_key, jnp.zeros((1, obs_dim)))
    alpha_entropy = jnp.asarray(config.alpha_entropy, jnp.float32)
    return BCState(
        params=params,
        opt_state=optimizer(config).init(params),
        alpha_entropy=alpha_entropy,
        alpha_entropy_opt=entropy_optimizer(config).init(alpha_entropy),
        **initial_step_fields(key, action_dim),
    )


def distribution(config: BCConfig, params: dict, obs: jax.Array, action_dim: int) -> TanhGaussian:
    return network(config, action_dim).apply(params, obs)


def uses_entropy(config: BCConfig) -> bool:
    return config.tune_entropy or config.alpha_entropy > 0


def loss(
    params: dict, config: BCConfig, batch: Transition, alpha_entropy: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``mean(alpha_ent log pi(a_p|s) - log pi(a_b|s))``, a_p ~ pi reparameterised, a_b the (clipped)
    dataset actions; without the entropy term (``uses_entropy`` False) the negative log-likelihood."""
    dist = distribution(config, params, batch.obs, batch.action.shape[-1])
    nll = -jnp.mean(dist.log_prob(batch.action, config.action_clip))
    metrics = {"nll": nll, "log_std": jnp.mean(dist.log_std)}
    if not uses_entropy(config):
        return nll, {"loss": nll, **metrics}
    _, _, log_prob = dist.sample_and_log_prob(key)
    value = jnp.mean(jax.lax.stop_gradient(nonnegative(alpha_entropy)) * log_prob) + nll
    return value, {"loss": value, "entropy": -jnp.mean(log_prob), **metrics}


def update(config: BCConfig, state: BCState, batch: Transition) -> tuple[BCState, dict[str, jax.Array]]:
    """A policy step, then (``tune_entropy``) an entropy-weight step on a fresh sample of the updated policy,
    in the reference's order."""
    key, policy_key, entropy_key = jax.random.split(state.key, 3)
    params, opt_state, metrics = gradient_step(
        loss, state.params, state.opt_state, optimizer(config), config, batch, state.alpha_entropy, policy_key
    )
    entropy = entropy_temperature_fields(
        state,
        config.tune_entropy,
        lambda: distribution(config, params, batch.obs, state.action_dim),
        entropy_optimizer(config),
        entropy_key,
        config.target_entropy,
    )
    metrics = namespaced({"bc": metrics})
    metrics["bc/alpha_entropy"] = nonnegative(entropy["alpha_entropy"])
    return advance(state, key, params=params, opt_state=opt_state, **entropy), metrics


def act(config: BCConfig, state: BCState, obs: jax.Array, key: jax.Array, mode: str = "mode") -> jax.Array:
    """Unit-box actions [B, A]: the distribution's mode, or a sample (``mode="sample"``)."""
    dist = distribution(config, state.params, obs, state.action_dim)
    if mode == "sample":
        return jnp.tanh(dist.sample_raw(key))
    return dist.mode()
