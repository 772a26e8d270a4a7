"""BEAR: bootstrapping error accumulation reduction (Kumar, Fu, Tucker & Levine 2019, Algorithm 1).

Follows the authors' code, aviralkumar2907/BEAR, ``algos.py`` (class ``BEAR``: ``train`` and
``select_action``), with the settings their readme recommends (``mode=auto``, ``version=0``, no ensemble
variance term, ``num_samples_match=5``, Laplacian kernel with their sigma 10).

- A conditional VAE models the behavior policy (as in BCQ; ``nets.vae_loss``); its samples decode latents
  drawn from N(0, 1) clipped to [-0.5, 0.5].
- Tanh-Gaussian actor; an ensemble of critics with Polyak targets; the actor also has a Polyak target,
  which proposes the actions of the critic target.
- Critic target: ``num_target_samples`` target-actor samples at s' (unclipped noise, as the authors' actor
  ``forward``), critics reduced by ``lam min + (1 - lam) max``, max over the samples.
- Actor (eq. 1 as a Lagrangian): ``-min_i mean_n Q_i(s, a_n) + exp(log_lagrange) D(pi(.|s), pi_b(.|s))``
  with the same ``num_divergence_samples`` actor samples a_n in both terms: each critic is averaged over
  the samples, then the min is taken over critics. These samples use standard-normal noise clipped to
  [-actor_noise_clip, actor_noise_clip] (the authors' ``sample_multiple``). For the first
  ``warm_start_steps`` only the divergence term.
- The log-multiplier descends ``-exp(log_lagrange) (D - epsilon)`` (``ops.lagrange_loss``): it grows while
  D exceeds epsilon; clipped to [log_lagrange_min, log_lagrange_max].
- Evaluation (``act`` mode 'max_q', the authors' ``select_action``): of ``num_act_samples`` actor samples
  (unclipped noise), the one with the largest Q of critic 1.
- Every network starts from PyTorch's default initialisation, kernels and biases U(+-1/sqrt(fan_in))
  (``net_init='torch'``, as the authors' ``nn.Linear`` layers); ``net_init='flax'`` gives flax's (LeCun-normal
  kernels, zero biases), brackit's default before 2026-12-03.

Divergence: any primal divergence of ``brackit.divergences`` that needs only samples of pi_b, since a VAE
gives samples but no log-density. The default is BEAR's MMD, Laplacian kernel, ``sqrt(mmd2 + 1e-6)``, on
pre-tanh samples of both policies (the actor's pre-tanh sample and the VAE decoder's pre-tanh output), as
the authors compute it. ``mmd_on_raw=False`` compares squashed actions instead. Kernel widths: the authors'
kernels are exp(-|x - y|_1 / (2 sigma)) (Laplacian) and exp(-|x - y|_2^2 / (2 sigma)) (Gaussian);
``brackit.divergences`` uses exp(-|x - y|_1 / sigma) and exp(-|x - y|_2^2 / (2 sigma)). So ``mmd_sigma`` is
twice the authors' sigma with the Laplacian kernel (default 20 = their 10) and equal to it with the Gaussian
kernel (their recommended Gaussian setting, sigma 20, is ``mmd_sigma=20``).

Deliberate differences from the authors' code, each a config value:

- ``actor_lr`` 1e-4 (theirs: Adam's default 1e-3 for every network); ``batch_size`` 256 (theirs: 100).
- ``log_std_min``/``log_std_max`` clip the actor's log-std to [-5, 0] (theirs: unclipped).
- ``initial_log_lagrange`` 0 (theirs: a draw from N(0, 1)).
- ``warm_start_steps`` 20,000 counts gradient steps (theirs: 20 calls of ``train``, i.e. 20 x ``eval_freq``
  steps: 20,000 with the readme's ``eval_freq=1000``, 100,000 with main.py's default 5,000).
- ``num_divergence_samples`` 5 (the readme's recommendation; the argparse and class default is 10).

Actions are in the unit box [-1, 1]^A.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.algos import common
from brackit.config_checks import Rule, check_ranges, comparison
from brackit.divergences import DIVERGENCES, Divergence, PrimalInputs, make_divergence
from brackit.errors import ConfigError
from brackit.nets import (
    VAE,
    GaussianHead,
    TanhGaussian,
    tanh_gaussian_act,
    vae_step,
)
from brackit.ops import lagrange_loss, multiplier_step, namespaced
from brackit.types import Transition

ACT_MODES = ("max_q", "mode", "sample")


def _reads_behavior_log_prob(divergence: Divergence) -> bool:
    """Whether a primal divergence uses log pi_b: evaluated once on tiny inputs with log pi_b = NaN."""
    with jax.ensure_compile_time_eval():  # eager even if a config is built under a trace
        ones = jnp.zeros((2, 1, 1))
        inputs = PrimalInputs(
            policy_actions=ones,
            policy_raw=ones,
            policy_log_prob=jnp.zeros((2, 1)),
            behavior_log_prob=jnp.full((2, 1), jnp.nan),
            behavior_actions=ones,
            behavior_raw=ones,
        )
        return bool(jnp.any(jnp.isnan(divergence.primal(inputs))))


@dataclasses.dataclass(frozen=True)
class BEARConfig(common.VAEConfig, common.ActorCriticConfig):
    divergence: str = "mmd"
    """A primal divergence from ``brackit.divergences`` that needs only samples of pi_b (the VAE has no
    log-density): 'mmd'."""
    mmd_kernel: str = "laplacian"
    """'laplacian' (BEAR's choice for Hopper and Walker2d) or 'gaussian' (HalfCheetah)."""
    mmd_sigma: Annotated[float, "> 0"] = 20.0
    """Kernel width in ``brackit.divergences`` units: with 'laplacian' twice the authors' sigma (20 = their
    10), with 'gaussian' equal to it (see the module docstring)."""
    mmd_sqrt: bool = True
    """Use sqrt(mmd2 + 1e-6), as BEAR does."""
    mmd_on_raw: bool = True
    """Compare pre-tanh samples (the authors' code); False compares squashed actions."""
    num_divergence_samples: Annotated[int, ">= 1"] = 5
    """Samples of pi and of the VAE per state, for the divergence and the actor's Q term."""
    actor_noise_clip: Annotated[float | None, "> 0 or None"] = 0.5
    """The actor's samples in the actor loss draw standard-normal noise clipped to +-this (the authors'
    ``sample_multiple``); None: unclipped. The critic target and ``act`` never clip (as the authors)."""
    epsilon: Annotated[float, ">= 0"] = 0.05
    """Divergence threshold the Lagrange multiplier enforces."""
    initial_log_lagrange: Annotated[float, "finite"] = 0.0
    log_lagrange_min: Annotated[float, "finite"] = -5.0
    log_lagrange_max: Annotated[float, "finite"] = 10.0
    lagrange_lr: float = 1e-3
    warm_start_steps: Annotated[int, ">= 0"] = 20_000
    """Steps during which the actor minimises only the divergence term."""
    ensemble_lam: Annotated[float, "[0, 1]"] = 0.75
    """Target critic reduction ``lam * min + (1 - lam) * max``."""
    num_target_samples: Annotated[int, ">= 1"] = 10
    """Target-actor samples at s' in the critic target (max over them)."""
    num_act_samples: Annotated[int, ">= 1"] = 10
    """Actor samples when acting with mode 'max_q' (argmax Q1)."""
    actor_lr: float = 1e-4
    critic_hidden: tuple[int, ...] = (400, 300)
    actor_hidden: tuple[int, ...] = (400, 300)
    log_std_min: Annotated[float, "finite"] = -5.0
    log_std_max: Annotated[float, "finite"] = 0.0

    RULES: ClassVar[tuple[Rule, ...]] = (
        *common.VAEConfig.RULES,
        comparison("log_lagrange_min <= initial_log_lagrange <= log_lagrange_max"),
        comparison("log_std_min <= log_std_max"),
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        self.check_divergence()

    def make_divergence(self) -> Divergence:
        """The divergence object (unknown names or parameters are ConfigErrors)."""
        if self.divergence not in DIVERGENCES:
            raise ConfigError(f"divergence must be one of {list(DIVERGENCES)}, got {self.divergence!r}")
        params: dict[str, object] = {}
        if self.divergence == "mmd":
            params = {
                "kernel": self.mmd_kernel,
                "sigma": self.mmd_sigma,
                "use_sqrt": self.mmd_sqrt,
                "on_raw": self.mmd_on_raw,
            }
        return make_divergence(self.divergence, "primal", **params)

    def check_divergence(self) -> None:
        """A ConfigError naming the usable divergences if this one needs log-densities of pi_b."""
        if _reads_behavior_log_prob(self.make_divergence()):
            usable = [
                name
                for name, cls in DIVERGENCES.items()
                if "primal" in cls.forms and not _reads_behavior_log_prob(make_divergence(name, "primal"))
            ]
            raise ConfigError(
                f"divergence {self.divergence!r} needs log pi_b(a|s), but BEAR's behavior model is a VAE, "
                f"which gives samples and no log-density; set divergence to one of {usable}, or use BRAC "
                f"(algorithm 'brac'), whose behavior model is a tanh-Gaussian"
            )


@struct.dataclass
class BEARState(common.ActorCriticState):
    vae_params: dict
    vae_opt: optax.OptState
    log_lagrange: jax.Array
    lagrange_opt: optax.OptState


# ----------------------------------------------------------------------------------------- networks


def actor_net(config: BEARConfig, action_dim: int) -> GaussianHead:
    return GaussianHead(config.actor_hidden, action_dim, config.log_std_min, config.log_std_max)


def policy(config: BEARConfig, actor_params: dict, obs: jax.Array, action_dim: int) -> TanhGaussian:
    return actor_net(config, action_dim).apply(actor_params, obs)


def init(config: BEARConfig, key: jax.Array, obs_dim: int, action_dim: int) -> BEARState:
    key, vae_key, vae_noise_key, actor_key, critic_key = jax.random.split(key, 5)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    vae_params = common.initial_params(
        config, common.vae_net(config, action_dim), vae_key, obs, action, vae_noise_key
    )
    actor_params = common.initial_params(config, actor_net(config, action_dim), actor_key, obs)
    critic_params = common.initial_params(config, common.critic_net(config), critic_key, obs, action)
    log_lagrange = jnp.asarray(config.initial_log_lagrange, jnp.float32)
    return BEARState(
        vae_params=vae_params,
        vae_opt=optax.adam(config.vae_lr).init(vae_params),
        log_lagrange=log_lagrange,
        lagrange_opt=optax.adam(config.lagrange_lr).init(log_lagrange),
        **common.actor_critic_fields(config, key, action_dim, actor_params, critic_params),
    )


def clipped_samples(
    config: BEARConfig, pi: TanhGaussian, key: jax.Array, num: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(actions, pre-tanh samples, unclipped noise) [N, B, A]: ``mean + std clip(eps)``, eps ~ N(0, 1)
    clipped to +-``actor_noise_clip`` (not clipped when None). The noise is ``pi.sample_raw``'s for the key."""
    noise = jax.random.normal(key, (num, *pi.mean.shape), pi.mean.dtype)
    clip = config.actor_noise_clip
    clipped = noise if clip is None else jnp.clip(noise, -clip, clip)
    raw = pi.mean + jnp.exp(pi.log_std) * clipped
    return jnp.tanh(raw), raw, noise


# ----------------------------------------------------------------------------------------- losses


def critic_target(config: BEARConfig, state: BEARState, batch: Transition, key: jax.Array) -> jax.Array:
    """y = r + gamma discount max_n Qens'(s', a_n), a_n ~ pi'(.|s') (target actor, noise not clipped, as the
    authors' actor ``forward``), n < num_target_samples."""
    n = config.num_target_samples
    pi = policy(config, state.actor_target, batch.next_obs, state.action_dim)
    next_actions = jnp.tanh(pi.sample_raw(key, n))  # [N, B, A]
    return common.sampled_critic_target(config, state, batch, next_actions, config.ensemble_lam)


def actor_loss(
    actor_params: dict,
    config: BEARConfig,
    state: BEARState,
    critic_params: dict,
    obs: jax.Array,
    behavior_actions: jax.Array,
    behavior_raw: jax.Array,
    key: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean_B(-q_weight min_i mean_n Q_i(s, a_n) + exp(log_lagrange) D(s)), a_1..a_N ~ pi(.|s) with clipped
    noise (``clipped_samples``), N = ``num_divergence_samples``; D uses the same N samples.

    behavior_actions / behavior_raw: VAE samples at s [M, B, A] (constants). q_weight is 0 in warm start.
    """
    pi = policy(config, actor_params, obs, state.action_dim)
    actions, raw, noise = clipped_samples(config, pi, key, config.num_divergence_samples)
    log_prob = pi.log_prob_raw(raw)  # never read by a divergence a VAE can serve
    divergence = config.make_divergence().primal(
        PrimalInputs(
            policy_actions=actions,
            policy_raw=raw,
            policy_log_prob=log_prob,
            behavior_log_prob=jnp.zeros_like(log_prob),  # never read (checked by the config)
            behavior_actions=behavior_actions,
            behavior_raw=behavior_raw,
        )
    )  # [B]
    q_all = common.critic_net(config).apply(critic_params, obs, actions)  # [E, N, B]
    q = jnp.min(jnp.mean(q_all, axis=1), axis=0)  # each critic averaged over the samples, then min: [B]
    q_weight = jnp.where(state.step < config.warm_start_steps, 0.0, 1.0)
    lagrange = jnp.exp(state.log_lagrange)
    loss = jnp.mean(-q_weight * q + lagrange * divergence)
    return loss, {
        "loss": loss,
        "q": jnp.mean(q),
        "divergence": jnp.mean(divergence),
        # the untruncated policy's entropy, estimated from the same noise before clipping
        "entropy": -jnp.mean(pi.log_prob_raw(pi.mean + jnp.exp(pi.log_std) * noise)),
    }


# ----------------------------------------------------------------------------------------- update


def update(config: BEARConfig, state: BEARState, batch: Transition) -> tuple[BEARState, dict[str, jax.Array]]:
    """One BEAR step: VAE, critics, actor, Lagrange multiplier, then the Polyak targets."""
    key, vae_key, target_key, behavior_key, actor_key = jax.random.split(state.key, 5)
    vae = common.vae_net(config, state.action_dim)
    vae_params, vae_opt, vae_metrics = vae_step(
        vae, state.vae_params, state.vae_opt, optax.adam(config.vae_lr), config.kl_weight, batch, vae_key
    )

    target = critic_target(config, state, batch, target_key)
    critic_params, critic_opt, critic_metrics = common.critic_update(config, state, batch, target)

    behavior_actions, behavior_raw = vae.apply(
        vae_params, batch.obs, behavior_key, config.num_divergence_samples, method=VAE.sample
    )
    actor_params, actor_opt, actor_metrics = common.actor_step(
        actor_loss, config, state, state, critic_params, batch.obs, behavior_actions, behavior_raw, actor_key
    )

    # raise the multiplier while the divergence exceeds epsilon
    log_lagrange, lagrange_opt = multiplier_step(
        lambda log_l: lagrange_loss(jnp.exp(log_l), actor_metrics["divergence"], config.epsilon),
        state.log_lagrange,
        state.lagrange_opt,
        optax.adam(config.lagrange_lr),
    )
    log_lagrange = jnp.clip(log_lagrange, config.log_lagrange_min, config.log_lagrange_max)

    metrics = namespaced({"vae": vae_metrics, "critic": critic_metrics, "actor": actor_metrics})
    metrics["lagrange/value"] = jnp.exp(log_lagrange)
    state = common.advance(
        state,
        key,
        vae_params=vae_params,
        vae_opt=vae_opt,
        log_lagrange=log_lagrange,
        lagrange_opt=lagrange_opt,
        **common.actor_critic_updates(config, state, actor_params, actor_opt, critic_params, critic_opt),
    )
    return state, metrics


def act(
    config: BEARConfig, state: BEARState, obs: jax.Array, key: jax.Array, mode: str = "max_q"
) -> jax.Array:
    """Unit-box actions [B, A]. 'max_q' (the authors' evaluation rule, ``select_action``): of
    ``num_act_samples`` actor samples (unclipped noise) the one with the largest Q of critic 1 alone, not an
    ensemble reduction; 'mode': tanh of the actor's mean; 'sample': one actor sample."""
    if mode not in ACT_MODES:
        raise ConfigError(f"BEAR act mode must be one of {ACT_MODES}, got {mode!r}")
    pi = policy(config, state.actor_params, obs, state.action_dim)
    return tanh_gaussian_act(
        pi, mode, key, obs, config.num_act_samples, config.critic_hidden, state.critic_params
    )
