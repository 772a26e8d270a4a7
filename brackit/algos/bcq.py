"""BCQ: batch-constrained deep Q-learning, continuous actions (Fujimoto, Meger & Precup 2019, Algorithm 1).

- A conditional VAE models the behavior policy (loss = reconstruction + 0.5 KL, section 4).
- A perturbation actor xi(s, a) = clip(a + phi tanh(f(s, a)), -1, 1) moves VAE samples by at most phi
  (eq. 11); it maximises Q1(s, xi(s, a)), a ~ VAE(s) (eq. 12).
- Twin critics; the target takes ``num_target_samples`` VAE samples at s', perturbed by the TARGET actor,
  reduces the critics by ``lam min + (1 - lam) max`` and takes the max over the samples (eq. 13).
- Every network has its own Adam optimizer; the actor and the critics have Polyak-averaged targets (the VAE
  has none). The BRAC repository's BCQ never updated its target perturbation net and trained its VAE with
  the actor's optimizer; both are separate here and the one-update tests check that every target moves.
- Acting: ``num_act_samples`` perturbed VAE candidates, the one with the largest Q1; this is also the
  evaluation rule during training (``Algorithm.eval_mode`` 'max_q').

Reference followed: sfujim/BCQ ``continuous_BCQ/BCQ.py`` (networks 400-300 and VAE 750-750 with latent 2|A|,
log-std clamped to [-4, 15], decoding z ~ N(0, 1) clipped to +-0.5; Adam 1e-3 for every network, batch 100,
tau 0.005, lambda 0.75, phi 0.05; 10 target samples, 100 acting samples; the update order VAE, critics,
actor, targets; PyTorch's default initialisation, kernels and biases U(+-1/sqrt(fan_in)), ``net_init``
'torch'). Remaining difference: the datasets' rows as ``brackit.data`` reads them (timeout rows kept with
their real next observation). ``net_init='flax'`` gives flax's initialisation (LeCun-normal kernels, zero
biases), brackit's default before 2026-12-03.

Actions are in the unit box [-1, 1]^A, so the paper's ``max_action`` is 1.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.algos import common
from brackit.config_checks import check_ranges
from brackit.errors import ConfigError
from brackit.nets import (
    VAE,
    Critic,
    Perturbation,
    best_by_q1,
    ensemble_member,
    vae_step,
)
from brackit.ops import namespaced
from brackit.types import Transition

ACT_MODES = ("max_q", "mode")


@dataclasses.dataclass(frozen=True)
class BCQConfig(common.VAEConfig, common.ActorCriticConfig):
    phi: Annotated[float, "[0, 2]"] = 0.05  # the unit box is 2 wide
    """Largest perturbation of a VAE action, per coordinate, in the unit box."""
    ensemble_lam: Annotated[float, "[0, 1]"] = 0.75
    """Target critic reduction ``lam * min + (1 - lam) * max`` (the paper's soft clipped double Q)."""
    num_target_samples: Annotated[int, ">= 1"] = 10
    """VAE samples at s' in the critic target (max over them)."""
    num_act_samples: Annotated[int, ">= 1"] = 100
    """Perturbed VAE candidates when acting (argmax Q1); the paper's code uses 100."""
    batch_size: int = 100
    critic_hidden: tuple[int, ...] = (400, 300)
    actor_hidden: tuple[int, ...] = (400, 300)

    def __post_init__(self) -> None:
        check_ranges(self)


@struct.dataclass
class BCQState(common.ActorCriticState):
    vae_params: dict
    vae_opt: optax.OptState


# ----------------------------------------------------------------------------------------- networks


def actor_net(config: BCQConfig, action_dim: int) -> Perturbation:
    return Perturbation(config.actor_hidden, action_dim, config.phi)


def init(config: BCQConfig, key: jax.Array, obs_dim: int, action_dim: int) -> BCQState:
    key, vae_key, vae_noise_key, actor_key, critic_key = jax.random.split(key, 5)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    vae_params = common.initial_params(
        config, common.vae_net(config, action_dim), vae_key, obs, action, vae_noise_key
    )
    actor_params = common.initial_params(config, actor_net(config, action_dim), actor_key, obs, action)
    critic_params = common.initial_params(config, common.critic_net(config), critic_key, obs, action)
    return BCQState(
        vae_params=vae_params,
        vae_opt=optax.adam(config.vae_lr).init(vae_params),
        **common.actor_critic_fields(config, key, action_dim, actor_params, critic_params),
    )


# ----------------------------------------------------------------------------------------- losses


def sample_perturbed(
    config: BCQConfig,
    vae_params: dict,
    actor_params: dict,
    obs: jax.Array,
    key: jax.Array,
    num: int,
    action_dim: int,
) -> jax.Array:
    """``num`` VAE samples at obs [B, O], each perturbed by the actor: [N, B, A]."""
    vae_actions, _ = common.vae_net(config, action_dim).apply(vae_params, obs, key, num, method=VAE.sample)
    return actor_net(config, action_dim).apply(actor_params, obs, vae_actions)  # obs [B, O] broadcasts


def critic_target(config: BCQConfig, state: BCQState, batch: Transition, key: jax.Array) -> jax.Array:
    """y = r + gamma discount max_n Qens'(s', xi'(s', a_n)), a_n ~ VAE(s'), n < num_target_samples: [B]."""
    n = config.num_target_samples
    next_actions = sample_perturbed(
        config, state.vae_params, state.actor_target, batch.next_obs, key, n, state.action_dim
    )  # [N, B, A]
    return common.sampled_critic_target(config, state, batch, next_actions, config.ensemble_lam)


def actor_loss(
    actor_params: dict,
    config: BCQConfig,
    critic_params: dict,
    obs: jax.Array,
    vae_actions: jax.Array,
    action_dim: int,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-mean Q1(s, xi(s, a)), a ~ VAE(s) given [B, A] (no gradient into the VAE); only critic 1 is run."""
    perturbed = actor_net(config, action_dim).apply(actor_params, obs, vae_actions)
    q1 = Critic(config.critic_hidden).apply(ensemble_member(critic_params, 0), obs, perturbed)
    loss = -jnp.mean(q1)
    return loss, {"loss": loss, "q": jnp.mean(q1), "perturbation": jnp.mean(jnp.abs(perturbed - vae_actions))}


# ----------------------------------------------------------------------------------------- update


def update(config: BCQConfig, state: BCQState, batch: Transition) -> tuple[BCQState, dict[str, jax.Array]]:
    """One BCQ step (Algorithm 1): VAE, critics, actor, then the Polyak targets of actor and critics."""
    key, vae_key, target_key, actor_key = jax.random.split(state.key, 4)
    vae = common.vae_net(config, state.action_dim)
    vae_params, vae_opt, vae_metrics = vae_step(
        vae, state.vae_params, state.vae_opt, optax.adam(config.vae_lr), config.kl_weight, batch, vae_key
    )
    state = state.replace(vae_params=vae_params, vae_opt=vae_opt)

    target = critic_target(config, state, batch, target_key)
    critic_params, critic_opt, critic_metrics = common.critic_update(config, state, batch, target)

    vae_actions, _ = vae.apply(vae_params, batch.obs, actor_key, method=VAE.sample)
    actor_params, actor_opt, actor_metrics = common.actor_step(
        actor_loss, config, state, critic_params, batch.obs, vae_actions, state.action_dim
    )
    metrics = namespaced({"vae": vae_metrics, "critic": critic_metrics, "actor": actor_metrics})
    state = common.advance(
        state,
        key,
        **common.actor_critic_updates(config, state, actor_params, actor_opt, critic_params, critic_opt),
    )
    return state, metrics


def act(config: BCQConfig, state: BCQState, obs: jax.Array, key: jax.Array, mode: str = "max_q") -> jax.Array:
    """Unit-box actions [B, A]: of ``num_act_samples`` perturbed VAE candidates, the one with the largest
    Q1. BCQ has a single acting rule; ``mode`` 'mode' is accepted as a synonym so the default evaluation
    mode of ``brackit.train.train`` works."""
    if mode not in ACT_MODES:
        raise ConfigError(f"BCQ act mode must be one of {ACT_MODES}, got {mode!r}")
    n = config.num_act_samples
    candidates = sample_perturbed(config, state.vae_params, state.actor_params, obs, key, n, state.action_dim)
    return best_by_q1(config.critic_hidden, state.critic_params, obs, candidates)
