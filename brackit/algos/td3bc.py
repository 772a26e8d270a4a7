"""The TD3+BC family: TD3+BC (Fujimoto & Gu 2021) and ReBRAC (Tarasov et al. 2023), one module.

- Deterministic actor pi(s) = tanh(f(s)) in the unit box; twin critics with Polyak targets for both.
- Actor (ReBRAC eq. 3; TD3+BC eq. 3): ``mean(beta_actor * ||pi(s) - a||^2 - lam * Q(s, pi(s)))`` with
  ``lam = stop_grad(q_scale / mean|Q|)``, so the loss does not depend on the scale of the rewards.
  Q is the min over the critics (ReBRAC) or the first critic (TD3+BC); the behavior-cloning term sums over
  the action dimensions (ReBRAC) or averages over them (TD3+BC's mean squared error).
- Critic target (TD3, target policy smoothing): ``a~' = clip(pi'(s') + clip(N(0, noise^2), +-noise_clip),
  -1, 1)``, ``y = r + gamma discount (min_i Q'_i(s', a~') - beta_critic ||a~' - a'||^2)`` with a' the
  dataset's next action (ReBRAC's critic penalty; beta_critic = 0 is TD3+BC).
- The actor and both targets are updated every ``policy_freq`` steps (``lax.cond`` on the step counter).

``ReBRACConfig`` holds ReBRAC's defaults (3x256, LayerNorm in the critic after the ReLU, batch 1024, lr 1e-3,
its initialisation) except its betas: its code's ``Config`` has 1.0/1.0, which no published MuJoCo config
uses; brackit's defaults, 0.001/0.01, are for the BRAC protocol's mixes (``brackit data build TASK-eps1``):
the best actor beta of the learning study's ``rebrac-beta`` sweep (0.001/0.01/0.1 at critic beta 0.01, the
critic's most common tuned value), ``benchmarks/results/learning/summary.md``. ``REBRAC_D4RL_BETAS`` and
``rebrac_d4rl_config`` give the tuned per-dataset betas for D4RL's datasets; ``--set beta_actor=1 --set
beta_critic=1`` the reference code's. ``TD3BCConfig`` is the same
config with TD3+BC's defaults (alpha 2.5, 2x256, lr 3e-4, batch 256, no critic penalty, no LayerNorm, brackit's
default initialisation) and ``normalize_obs=True``: the training loop (``brackit.train``) standardises the
dataset's obs and next_obs by the mean and std (+1e-3) of its obs, stores the statistics with the states and
the checkpoint, and applies them to the raw observations the policy acts on.

References followed: sfujim/TD3_BC ``TD3_BC.py`` (losses, delayed updates), ``main.py`` (hyperparameters,
``--normalize`` on by default, normalised evaluation states) and ``utils.py`` (``normalize_states``: statistics
of the states only, eps 1e-3); tinkoff-ai/ReBRAC ``src/algorithms/rebrac.py`` (losses, ``Config`` defaults,
``normalize_states`` off), ``src/networks.py`` and ``src/nn.py`` (Dense -> ReLU -> LayerNorm; hidden kernels
U(+-1/sqrt(fan_in)) and biases 0.1 in every hidden layer of actor and critic; last layer's kernel and bias
U(+-1e-3) in the actor, U(+-3e-3) in the critic); corl-team/CORL (formerly tinkoff-ai/CORL)
``algorithms/offline/rebrac.py`` (the same algorithm) and ``configs/offline/rebrac/<env>/<dataset>_v2.yaml``
(the per-dataset betas).

Remaining differences from the references:
- TD3+BC's networks keep brackit's initialisation (LeCun-normal hidden kernels, zero biases, Glorot-uniform
  last kernel), kept unchanged, rather than PyTorch's default Linear init (kernel and bias U(+-1/sqrt(fan_in)));
  ``hidden_init='fan_in_uniform'`` gives the reference's kernels, not its biases.
- TD3+BC's reference increments its counter before testing it, so its actor updates on the 2nd, 4th, ...
  critic step; here (as in ReBRAC's reference) on the 1st, 3rd, ...
- ReBRAC's reference moves the actor target toward the actor's parameters from before that step's actor
  update; here toward the updated ones (as TD3+BC does).
- ``lam`` divides by ``mean|Q| + 1e-8`` (the references have no epsilon).
- The datasets are read by ``brackit.data`` (``brackit.data.formats`` lists how its rows differ from D4RL's
  ``qlearning_dataset``: e.g. timeout rows are kept when the file has ``next_observations``), so the rows,
  and the observation statistics over them, can differ slightly from the references'.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.algos.common import (
    ActorCriticConfig,
    ActorCriticState,
    actor_critic_fields,
    actor_step,
    advance,
    polyak_targets,
)
from brackit.config_checks import check_ranges
from brackit.errors import ConfigError
from brackit.nets import HIDDEN_INITS, Critic, CriticEnsemble, DeterministicActor, MLPStyle, ensemble_member
from brackit.ops import bellman_target, ensemble_td_loss, gradient_step
from brackit.types import Transition

ACTOR_Q = ("min", "first")
BC_REDUCTIONS = ("sum", "mean")


@dataclasses.dataclass(frozen=True)
class ReBRACConfig(ActorCriticConfig):
    beta_actor: Annotated[float, ">= 0"] = 0.001
    """Weight of ||pi(s) - a||^2 in the actor loss; tuned per dataset (D4RL: ``REBRAC_D4RL_BETAS``). The
    default is the best of the learning study's sweep on the BRAC protocol's mixes (module docstring)."""
    beta_critic: Annotated[float, ">= 0"] = 0.01
    """Weight of ||a~' - a'||^2 subtracted in the critic target (0 disables; tuned per dataset)."""
    q_scale: Annotated[float, "> 0"] = 1.0
    """lam = q_scale / mean|Q|: 1 for ReBRAC, alpha = 2.5 for TD3+BC."""
    actor_q: str = "min"
    """Q in the actor loss: 'min' over the critics (ReBRAC) or the 'first' critic (TD3+BC)."""
    bc_reduction: str = "sum"
    """||pi(s) - a||^2 summed ('sum', ReBRAC) or averaged ('mean', TD3+BC's MSE) over action dimensions."""
    policy_noise: Annotated[float, ">= 0"] = 0.2
    """Std of the target policy smoothing noise (unit-box actions)."""
    noise_clip: Annotated[float, ">= 0"] = 0.5
    policy_freq: Annotated[int, ">= 1"] = 2
    """The actor and the targets are updated every ``policy_freq`` critic steps."""
    critic_layer_norm: bool = True
    actor_layer_norm: bool = False
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    batch_size: int = 1024
    layer_norm_after_relu: bool = True
    """LayerNorm placement: Dense -> ReLU -> LayerNorm (ReBRAC's networks) or Dense -> LayerNorm -> ReLU."""
    hidden_init: str = "fan_in_uniform"
    """Hidden kernels: 'fan_in_uniform' U(+-1/sqrt(fan_in)) (ReBRAC's, PyTorch's default) or 'lecun'."""
    hidden_bias_init: Annotated[float, "finite"] = 0.1
    """Constant initial bias of every hidden layer of both networks (ReBRAC: 0.1)."""
    actor_last_init: Annotated[float | None, ">= 0 or None"] = 1e-3
    """The actor's last kernel and bias start U(+-actor_last_init); None: Glorot uniform and zero bias."""
    critic_last_init: Annotated[float | None, ">= 0 or None"] = 3e-3
    """The critics' last kernel and bias start U(+-critic_last_init); None: Glorot uniform and zero bias."""
    normalize_obs: bool = False
    """Train on observations standardised by the dataset's mean and std (+1e-3) and act on raw ones
    (``brackit.train``); ReBRAC does not (``normalize_states: false`` in every config), TD3+BC does."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.hidden_init not in HIDDEN_INITS:
            raise ConfigError(f"hidden_init must be one of {HIDDEN_INITS}, got {self.hidden_init!r}")
        if self.actor_q not in ACTOR_Q:
            raise ConfigError(f"actor_q must be one of {ACTOR_Q}, got {self.actor_q!r}")
        if self.bc_reduction not in BC_REDUCTIONS:
            raise ConfigError(f"bc_reduction must be one of {BC_REDUCTIONS}, got {self.bc_reduction!r}")


@dataclasses.dataclass(frozen=True)
class TD3BCConfig(ReBRACConfig):
    """TD3+BC (Fujimoto & Gu 2021): the same algorithm with the paper's defaults."""

    beta_actor: float = 1.0
    beta_critic: float = 0.0
    q_scale: float = 2.5
    actor_q: str = "first"
    bc_reduction: str = "mean"
    critic_layer_norm: bool = False
    critic_hidden: tuple[int, ...] = (256, 256)
    actor_hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    critic_lr: float = 3e-4
    actor_lr: float = 3e-4
    layer_norm_after_relu: bool = False
    hidden_init: str = "lecun"
    hidden_bias_init: float = 0.0
    actor_last_init: float | None = None
    critic_last_init: float | None = None
    normalize_obs: bool = True


# (beta_actor, beta_critic) = (actor_bc_coef, critic_bc_coef) of corl-team/CORL's tuned ReBRAC configs,
# configs/offline/rebrac/{halfcheetah,hopper,walker2d}/{random,medium,medium_replay,medium_expert,expert,
# full_replay}_v2.yaml (every other field of those configs is ReBRACConfig's default). tinkoff-ai/ReBRAC's
# configs/rebrac/hopper/hopper_medium.yaml has (0.01, 0.001) where CORL's has (0.01, 0.01).
REBRAC_D4RL_BETAS: dict[str, tuple[float, float]] = {
    "halfcheetah-random-v2": (0.001, 0.1),
    "halfcheetah-medium-v2": (0.001, 0.01),
    "halfcheetah-medium-replay-v2": (0.01, 0.001),
    "halfcheetah-medium-expert-v2": (0.01, 0.1),
    "halfcheetah-expert-v2": (0.01, 0.01),
    "halfcheetah-full-replay-v2": (0.001, 0.1),
    "hopper-random-v2": (0.001, 0.01),
    "hopper-medium-v2": (0.01, 0.01),
    "hopper-medium-replay-v2": (0.05, 0.5),
    "hopper-medium-expert-v2": (0.1, 0.01),
    "hopper-expert-v2": (0.1, 0.1),
    "hopper-full-replay-v2": (0.01, 0.01),
    "walker2d-random-v2": (0.01, 0.0),
    "walker2d-medium-v2": (0.05, 0.1),
    "walker2d-medium-replay-v2": (0.05, 0.01),
    "walker2d-medium-expert-v2": (0.01, 0.01),
    "walker2d-expert-v2": (0.01, 0.5),
    "walker2d-full-replay-v2": (0.01, 0.01),
}


def rebrac_d4rl_config(dataset_name: str, **overrides: object) -> ReBRACConfig:
    """ReBRAC's config for a D4RL gym-MuJoCo dataset (e.g. ``"hopper-medium-v2"``): the tuned betas of
    ``REBRAC_D4RL_BETAS``, everything else ReBRAC's defaults; ``overrides`` replace any field."""
    if dataset_name not in REBRAC_D4RL_BETAS:
        raise ConfigError(
            f"no tuned ReBRAC betas for {dataset_name!r}; known datasets: {', '.join(REBRAC_D4RL_BETAS)}"
        )
    beta_actor, beta_critic = REBRAC_D4RL_BETAS[dataset_name]
    return ReBRACConfig(**{"beta_actor": beta_actor, "beta_critic": beta_critic, **overrides})


@struct.dataclass
class TD3BCState(ActorCriticState):
    beta_actor: jax.Array
    """``config.beta_actor`` as a state field, so that a sweep vmaps over it (``brackit.train.apply_sweep``)."""
    beta_critic: jax.Array
    """``config.beta_critic``, likewise."""


# ----------------------------------------------------------------------------------------- networks


def net_style(config: ReBRACConfig, last_init: float | None) -> MLPStyle:
    return MLPStyle(config.layer_norm_after_relu, config.hidden_init, config.hidden_bias_init, last_init)


def actor_net(config: ReBRACConfig, action_dim: int) -> DeterministicActor:
    style = net_style(config, config.actor_last_init)
    return DeterministicActor(config.actor_hidden, action_dim, config.actor_layer_norm, style)


def critic_net(config: ReBRACConfig) -> CriticEnsemble:
    style = net_style(config, config.critic_last_init)
    return CriticEnsemble(config.critic_hidden, config.num_critics, config.critic_layer_norm, style)


def first_critic_net(config: ReBRACConfig) -> Critic:
    """One member of ``critic_net`` (apply it to ``ensemble_member(params, i)``)."""
    return Critic(config.critic_hidden, config.critic_layer_norm, net_style(config, config.critic_last_init))


def init(config: ReBRACConfig, key: jax.Array, obs_dim: int, action_dim: int) -> TD3BCState:
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor_params = actor_net(config, action_dim).init(actor_key, obs)
    critic_params = critic_net(config).init(critic_key, obs, action)
    return TD3BCState(
        beta_actor=jnp.asarray(config.beta_actor, jnp.float32),
        beta_critic=jnp.asarray(config.beta_critic, jnp.float32),
        **actor_critic_fields(config, key, action_dim, actor_params, critic_params),
    )


# ----------------------------------------------------------------------------------------- losses


def behavior_penalty(config: ReBRACConfig, action: jax.Array, dataset_action: jax.Array) -> jax.Array:
    """||action - dataset_action||^2 per state [B], summed or averaged over the action dimensions."""
    squared = (action - dataset_action) ** 2
    return jnp.sum(squared, axis=-1) if config.bc_reduction == "sum" else jnp.mean(squared, axis=-1)


def critic_target(
    config: ReBRACConfig, state: TD3BCState, batch: Transition, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """y = r + gamma discount (min_i Q'_i(s', a~') - beta_critic ||a~' - a'||^2): [B]."""
    next_action = actor_net(config, state.action_dim).apply(state.actor_target, batch.next_obs)
    noise = config.policy_noise * jax.random.normal(key, next_action.shape, next_action.dtype)
    next_action = jnp.clip(next_action + jnp.clip(noise, -config.noise_clip, config.noise_clip), -1.0, 1.0)
    next_q = jnp.min(critic_net(config).apply(state.critic_target, batch.next_obs, next_action), axis=0)
    # rows whose next action is a placeholder (an episode's last row) get no critic penalty
    penalty = behavior_penalty(config, next_action, batch.next_action) * batch.next_action_mask()
    target = bellman_target(batch.reward, batch.discount, config.gamma, next_q - state.beta_critic * penalty)
    return target, {"next_penalty": jnp.mean(penalty)}


def critic_loss(
    critic_params: dict, config: ReBRACConfig, batch: Transition, target: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Regression of every critic on the target (``ops.ensemble_td_loss``)."""
    return ensemble_td_loss(critic_net(config).apply(critic_params, batch.obs, batch.action), target)


def actor_loss(
    actor_params: dict,
    config: ReBRACConfig,
    critic_params: dict,
    batch: Transition,
    action_dim: int,
    beta_actor: jax.Array | float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean(beta_actor ||pi(s) - a||^2 - lam Q(s, pi(s))), lam = stop_grad(q_scale / mean|Q|)."""
    action = actor_net(config, action_dim).apply(actor_params, batch.obs)
    if config.actor_q == "min":
        q = jnp.min(critic_net(config).apply(critic_params, batch.obs, action), axis=0)
    else:  # only critic 1 is run
        q = first_critic_net(config).apply(ensemble_member(critic_params, 0), batch.obs, action)
    lam = jax.lax.stop_gradient(config.q_scale / (jnp.mean(jnp.abs(q)) + 1e-8))
    penalty = behavior_penalty(config, action, batch.action)
    loss = jnp.mean(beta_actor * penalty - lam * q)
    return loss, {"loss": loss, "q": jnp.mean(q), "lam": lam, "bc_penalty": jnp.mean(penalty)}


# ----------------------------------------------------------------------------------------- update


def update(
    config: ReBRACConfig, state: TD3BCState, batch: Transition
) -> tuple[TD3BCState, dict[str, jax.Array]]:
    """One critic step; every ``policy_freq``-th step also an actor step and the Polyak targets.

    On steps without an actor update the ``actor/*`` metrics are 0 and ``actor/updated`` is 0, so a chunk's
    mean of ``actor/updated`` is the fraction of steps that updated the actor.
    """
    key, target_key = jax.random.split(state.key)
    target, target_metrics = critic_target(config, state, batch, target_key)
    critic_params, critic_opt, critic_metrics = gradient_step(
        critic_loss,
        state.critic_params,
        state.critic_opt,
        optax.adam(config.critic_lr),
        config,
        batch,
        target,
    )

    def actor_and_targets(state: TD3BCState) -> tuple[TD3BCState, dict[str, jax.Array]]:
        actor_params, actor_opt, metrics = actor_step(
            actor_loss, config, state, critic_params, batch, state.action_dim, state.beta_actor
        )
        state = state.replace(
            actor_params=actor_params,
            actor_opt=actor_opt,
            **polyak_targets(config, state, actor_params, critic_params),
        )
        return state, {**metrics, "updated": jnp.ones(())}

    def skip(state: TD3BCState) -> tuple[TD3BCState, dict[str, jax.Array]]:
        shapes = jax.eval_shape(actor_and_targets, state)[1]
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    state, actor_metrics = jax.lax.cond(state.step % config.policy_freq == 0, actor_and_targets, skip, state)
    metrics = {
        **{f"critic/{k}": v for k, v in {**critic_metrics, **target_metrics}.items()},
        **{f"actor/{k}": v for k, v in actor_metrics.items()},
    }
    return advance(state, key, critic_params=critic_params, critic_opt=critic_opt), metrics


def act(
    config: ReBRACConfig, state: TD3BCState, obs: jax.Array, key: jax.Array, mode: str = "mode"
) -> jax.Array:
    """The deterministic policy's unit-box actions [B, A]; ``mode`` 'mode' or 'max_q' (synonyms here)."""
    if mode not in ("mode", "max_q"):
        raise ConfigError(f"TD3+BC act mode must be 'mode' or 'max_q', got {mode!r}")
    return actor_net(config, state.action_dim).apply(state.actor_params, obs)
