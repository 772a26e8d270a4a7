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
actor, targets). Remaining differences: flax's default initialisation (LeCun-normal kernels, zero biases)
where the reference uses PyTorch's (U(+-1/sqrt(fan_in)) kernels and biases); the datasets' rows as
``brackit.data`` reads them (timeout rows kept with their real next observation).

Actions are in the unit box [-1, 1]^A, so the paper's ``max_action`` is 1.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.config_checks import check_ranges
from brackit.errors import ConfigError
from brackit.nets import (
    VAE,
    Critic,
    CriticEnsemble,
    Perturbation,
    best_by_q1,
    critic_step,
    ensemble_member,
    sampled_max_target,
    vae_step,
)
from brackit.ops import gradient_step, namespaced, polyak
from brackit.types import Transition

ACT_MODES = ("max_q", "mode")


@dataclasses.dataclass(frozen=True)
class BCQConfig:
    phi: float = 0.05
    """Largest perturbation of a VAE action, per coordinate, in the unit box."""
    ensemble_lam: float = 0.75
    """Target critic reduction ``lam * min + (1 - lam) * max`` (the paper's soft clipped double Q)."""
    num_target_samples: int = 10
    """VAE samples at s' in the critic target (max over them)."""
    num_act_samples: int = 100
    """Perturbed VAE candidates when acting (argmax Q1); the paper's code uses 100."""
    gamma: float = 0.99
    tau: float = 0.005
    """Polyak rate of the target actor and target critics, every step."""
    batch_size: int = 100
    critic_lr: float = 1e-3
    actor_lr: float = 1e-3
    vae_lr: float = 1e-3
    critic_hidden: tuple[int, ...] = (400, 300)
    actor_hidden: tuple[int, ...] = (400, 300)
    vae_hidden: tuple[int, ...] = (750, 750)
    latent_dim: int = 0
    """VAE latent size; 0 means 2|A| (the paper's)."""
    kl_weight: float = 0.5
    """VAE loss = reconstruction + kl_weight * KL."""
    num_critics: int = 2
    normalize_obs: bool = False
    """Train on observations standardised by the dataset's mean and std (``brackit.train``)."""

    RANGES: ClassVar[dict[str, str]] = {  # checked by brackit.config_checks.check_ranges
        "phi": "[0, 2]",  # the unit box is 2 wide
        "ensemble_lam": "[0, 1]",
        "num_target_samples": ">= 1",
        "num_act_samples": ">= 1",
        "latent_dim": ">= 0",
        "kl_weight": ">= 0",
    }

    def __post_init__(self) -> None:
        check_ranges(self)


@struct.dataclass
class BCQState:
    vae_params: dict
    vae_opt: optax.OptState
    actor_params: dict
    actor_target: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_target: dict
    critic_opt: optax.OptState
    step: jax.Array
    key: jax.Array
    action_dim: int = struct.field(pytree_node=False)


# ----------------------------------------------------------------------------------------- networks


def vae_net(hidden: tuple[int, ...], action_dim: int, latent_dim: int) -> VAE:
    return VAE(hidden, action_dim, latent_dim)


def actor_net(config: BCQConfig, action_dim: int) -> Perturbation:
    return Perturbation(config.actor_hidden, action_dim, config.phi)


def critic_net(config: BCQConfig) -> CriticEnsemble:
    return CriticEnsemble(config.critic_hidden, config.num_critics)


def init(config: BCQConfig, key: jax.Array, obs_dim: int, action_dim: int) -> BCQState:
    key, vae_key, vae_noise_key, actor_key, critic_key = jax.random.split(key, 5)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    vae_params = vae_net(config.vae_hidden, action_dim, config.latent_dim).init(
        vae_key, obs, action, vae_noise_key
    )
    actor_params = actor_net(config, action_dim).init(actor_key, obs, action)
    critic_params = critic_net(config).init(critic_key, obs, action)
    return BCQState(
        vae_params=vae_params,
        vae_opt=optax.adam(config.vae_lr).init(vae_params),
        actor_params=actor_params,
        actor_target=actor_params,
        actor_opt=optax.adam(config.actor_lr).init(actor_params),
        critic_params=critic_params,
        critic_target=critic_params,
        critic_opt=optax.adam(config.critic_lr).init(critic_params),
        step=jnp.zeros((), jnp.int32),
        key=key,
        action_dim=action_dim,
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
    vae_actions, _ = vae_net(config.vae_hidden, action_dim, config.latent_dim).apply(
        vae_params, obs, key, num, method=VAE.sample
    )
    return actor_net(config, action_dim).apply(actor_params, obs, vae_actions)  # obs [B, O] broadcasts


def critic_target(config: BCQConfig, state: BCQState, batch: Transition, key: jax.Array) -> jax.Array:
    """y = r + gamma discount max_n Qens'(s', xi'(s', a_n)), a_n ~ VAE(s'), n < num_target_samples: [B]."""
    n = config.num_target_samples
    next_actions = sample_perturbed(
        config, state.vae_params, state.actor_target, batch.next_obs, key, n, state.action_dim
    )  # [N, B, A]
    return sampled_max_target(
        critic_net(config), state.critic_target, batch, next_actions, config.ensemble_lam, config.gamma
    )


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
    vae = vae_net(config.vae_hidden, state.action_dim, config.latent_dim)
    vae_params, vae_opt, vae_metrics = vae_step(
        vae, state.vae_params, state.vae_opt, optax.adam(config.vae_lr), config.kl_weight, batch, vae_key
    )
    state = state.replace(vae_params=vae_params, vae_opt=vae_opt)

    target = critic_target(config, state, batch, target_key)
    critic_params, critic_opt, critic_metrics = critic_step(
        critic_net(config), state.critic_params, state.critic_opt, optax.adam(config.critic_lr), batch, target
    )

    vae_actions, _ = vae.apply(vae_params, batch.obs, actor_key, method=VAE.sample)
    actor_params, actor_opt, actor_metrics = gradient_step(
        actor_loss,
        state.actor_params,
        state.actor_opt,
        optax.adam(config.actor_lr),
        config,
        critic_params,
        batch.obs,
        vae_actions,
        state.action_dim,
    )
    metrics = namespaced({"vae": vae_metrics, "critic": critic_metrics, "actor": actor_metrics})
    state = state.replace(
        actor_params=actor_params,
        actor_target=polyak(state.actor_target, actor_params, config.tau),
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_target=polyak(state.critic_target, critic_params, config.tau),
        critic_opt=critic_opt,
        step=state.step + 1,
        key=key,
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
