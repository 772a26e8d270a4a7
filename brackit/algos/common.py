"""What the actor-critic algorithms share: config fields, state fields and the bookkeeping of networks trained
by Adam and tracked by Polyak targets. Each algorithm's own math stays in its module.

- ``ActorCriticConfig``: the fields of every actor-critic config (BRAC, BEAR, BCQ, TD3+BC, ReBRAC); each
  algorithm redeclares the ones whose defaults its reference sets differently.
- ``VAEConfig``/``vae_net``: the behavior VAE's fields and network (BCQ and BEAR, ``nets.VAE``), and the
  initialisation of those algorithms' networks (``initial_params``).
- ``ActorCriticState``: an actor and a critic ensemble, each with its Polyak target and Adam state, and the
  step counter, key and action size every state carries; ``actor_critic_fields`` fills it at ``init``.
- ``actor_step``, ``actor_critic_updates``/``polyak_targets``, ``advance``: one Adam step of the actor, the
  new networks and their Polyak targets, and the step counter and key at the end of every update.
- ``entropy_temperature_fields``: the tuned entropy temperature's step (BC, BRAC) as fields for ``advance``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.config_checks import Rule, choice
from brackit.nets import (
    NET_INITS,
    VAE,
    CriticEnsemble,
    TanhGaussian,
    critic_step,
    entropy_temperature_step,
    sampled_max_target,
    torch_linear_init,
)
from brackit.ops import gradient_step, polyak
from brackit.types import Transition


@dataclasses.dataclass(frozen=True)
class ActorCriticConfig:
    num_critics: int = 2
    """Size of the critic ensemble."""
    gamma: float = 0.99
    tau: float = 0.005
    """Polyak rate of the target networks, every step they are updated."""
    batch_size: int = 256
    critic_lr: float = 1e-3
    actor_lr: float = 1e-3
    critic_hidden: tuple[int, ...] = (256, 256)
    actor_hidden: tuple[int, ...] = (256, 256)
    normalize_obs: bool = False
    """Train on observations standardised by the dataset's mean and std (``brackit.train``)."""

    @property
    def policy_lr(self) -> float:
        """The actor's Adam learning rate (BRAC derives it from its form when ``actor_lr`` is None)."""
        return self.actor_lr


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    vae_lr: float = 1e-3
    vae_hidden: tuple[int, ...] = (750, 750)
    latent_dim: Annotated[int, ">= 0"] = 0
    """VAE latent size; 0 means 2|A| (BCQ's)."""
    kl_weight: Annotated[float, ">= 0"] = 0.5
    """VAE loss = reconstruction + kl_weight * KL."""
    net_init: str = "torch"
    """Initialisation of every network (VAE, actor, critics): 'torch' (PyTorch's ``nn.Linear`` default,
    kernels and biases U(+-1/sqrt(fan_in)), as BCQ's and BEAR's reference code) or 'flax' (flax's
    defaults: LeCun-normal kernels, zero biases; brackit's MLP draws the last kernel Glorot uniform)."""

    RULES: ClassVar[tuple[Rule, ...]] = (choice("net_init", NET_INITS),)


def vae_net(config: VAEConfig, action_dim: int) -> VAE:
    return VAE(config.vae_hidden, action_dim, config.latent_dim)


def initial_params(config: VAEConfig, module: Any, key: jax.Array, *inputs: Any) -> dict:
    """``module.init(key, *inputs)``, redrawn by ``nets.torch_linear_init`` when ``config.net_init`` is
    'torch' (from a key folded out of ``key``)."""
    params = module.init(key, *inputs)
    return torch_linear_init(params, jax.random.fold_in(key, 1)) if config.net_init == "torch" else params


@struct.dataclass
class StepState:
    """What every training state carries besides its parameters."""

    step: jax.Array
    key: jax.Array
    action_dim: int = struct.field(pytree_node=False)


def initial_step_fields(key: jax.Array, action_dim: int) -> dict[str, Any]:
    """``StepState``'s fields at ``init``: step 0, the state's key and the action size."""
    return {"step": jnp.zeros((), jnp.int32), "key": key, "action_dim": action_dim}


def entropy_temperature_fields(
    state: Any,
    tune: bool,
    pi: Callable[[], TanhGaussian],
    optimizer: optax.GradientTransformation,
    key: jax.Array,
    target_entropy: float | None,
) -> dict[str, Any]:
    """``alpha_entropy`` and ``alpha_entropy_opt`` for ``advance``: the state's, after one step toward
    ``target_entropy`` on a fresh sample of the policy ``pi()`` when ``tune`` (``nets.entropy_temperature_step``;
    BC and BRAC tune it after their policy step, on the updated policy, as the BRAC reference does)."""
    alpha_entropy, alpha_entropy_opt = state.alpha_entropy, state.alpha_entropy_opt
    if tune:
        alpha_entropy, alpha_entropy_opt = entropy_temperature_step(
            alpha_entropy, alpha_entropy_opt, optimizer, pi(), key, target_entropy
        )
    return {"alpha_entropy": alpha_entropy, "alpha_entropy_opt": alpha_entropy_opt}


def advance(state: Any, key: jax.Array, **fields: Any) -> Any:
    """``state`` with ``fields`` replaced, the step counter advanced and the key for the next update."""
    return state.replace(**fields, step=state.step + 1, key=key)


@struct.dataclass
class ActorCriticState(StepState):
    actor_params: dict
    actor_target: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_target: dict
    critic_opt: optax.OptState


def critic_net(config: ActorCriticConfig) -> CriticEnsemble:
    """The plain critic ensemble (TD3+BC/ReBRAC build theirs with their own layer options)."""
    return CriticEnsemble(config.critic_hidden, config.num_critics)


def critic_update(
    config: ActorCriticConfig, state: Any, batch: Transition, target: jax.Array
) -> tuple[dict, optax.OptState, dict[str, jax.Array]]:
    """One Adam step of ``critic_net``'s ensemble (``state.critic_params``) toward ``target`` [B]
    (``nets.critic_step``): (params, opt state, metrics)."""
    optimizer = optax.adam(config.critic_lr)
    return critic_step(critic_net(config), state.critic_params, state.critic_opt, optimizer, batch, target)


def sampled_critic_target(
    config: ActorCriticConfig, state: Any, batch: Transition, next_actions: jax.Array, lam: float
) -> jax.Array:
    """``nets.sampled_max_target`` of ``critic_net``'s target ensemble (``state.critic_target``) over the
    candidate next actions [N, B, A]: [B]."""
    return sampled_max_target(critic_net(config), state.critic_target, batch, next_actions, lam, config.gamma)


def actor_critic_fields(
    config: ActorCriticConfig, key: jax.Array, action_dim: int, actor_params: dict, critic_params: dict
) -> dict[str, Any]:
    """``ActorCriticState``'s fields at ``init``: targets equal to the networks, fresh Adam states."""
    return {
        "actor_params": actor_params,
        "actor_target": actor_params,
        "actor_opt": optax.adam(config.policy_lr).init(actor_params),
        "critic_params": critic_params,
        "critic_target": critic_params,
        "critic_opt": optax.adam(config.critic_lr).init(critic_params),
        **initial_step_fields(key, action_dim),
    }


def actor_step(
    loss_fn: Callable[..., tuple[jax.Array, dict[str, jax.Array]]],
    config: ActorCriticConfig,
    state: Any,
    *args: Any,
) -> tuple[dict, optax.OptState, dict[str, jax.Array]]:
    """One Adam step (on ``state.actor_params`` and ``state.actor_opt``) of the actor on ``loss_fn(actor_params, config, *args)``: (params, opt state, metrics)."""
    optimizer = optax.adam(config.policy_lr)
    return gradient_step(loss_fn, state.actor_params, state.actor_opt, optimizer, config, *args)


def actor_critic_updates(
    config: ActorCriticConfig,
    state: ActorCriticState,
    actor_params: dict,
    actor_opt: optax.OptState,
    critic_params: dict,
    critic_opt: optax.OptState,
) -> dict[str, Any]:
    """``ActorCriticState``'s fields after an actor and a critic step: the new networks and Adam states, and
    the targets moved toward the new networks (``polyak_targets``)."""
    return {
        "actor_params": actor_params,
        "actor_opt": actor_opt,
        "critic_params": critic_params,
        "critic_opt": critic_opt,
        **polyak_targets(config, state, actor_params, critic_params),
    }


def polyak_targets(
    config: ActorCriticConfig, state: ActorCriticState, actor_params: dict, critic_params: dict
) -> dict[str, dict]:
    """The targets moved toward the new networks at rate ``config.tau``."""
    return {
        "actor_target": polyak(state.actor_target, actor_params, config.tau),
        "critic_target": polyak(state.critic_target, critic_params, config.tau),
    }
