"""BRAC: behavior regularized actor critic (Wu, Tucker & Nachum 2019), value and policy penalty.

One algorithm; the config chooses
- ``penalty``: "value" (BRAC-v, eq. 3: the Q target subtracts alpha * D at s') or "policy" (BRAC-p, eq. 4:
  the divergence enters only the actor loss);
- the divergence and its form (``brackit.divergences``): primal forms use a behavior policy pi_b fitted
  first (``behavior_steps`` of ``brackit.algos.bc``: maximum likelihood plus a tuned entropy term), dual
  forms train a critic c(s, a) against dataset actions; "none" gives the unregularized offline
  actor-critic (SAC on the batch);
- an ensemble of k critics reduced by ``lam * min + (1 - lam) * max``;
- alpha fixed or tuned by a Lagrangian toward ``target_divergence`` (clipped to [0, alpha_max]);
- the entropy temperature fixed (0 by default) or tuned toward ``target_entropy``.
For the first ``warm_start_steps`` the actor minimises only its divergence (and entropy) terms.

Reference: google-research ``behavior_regularized_offline_rl/brac/`` (``brac_primal_agent.py``,
``brac_dual_agent.py``, ``bc_agent.py``, ``divergences.py``, ``networks.py``, ``policies.py`` and the
``run_primal.sh`` / ``run_dual.sh`` / ``run_bc.sh`` scripts). Followed there:
- one update: the target critics are moved toward the critics first, then a critic step, then the actor
  step against the *updated* critics, then (dual forms) one dual-critic step on the same batch against the
  updated actor and ``dual_steps - 1`` more on fresh batches, then alpha, then the entropy temperature;
- every dual critic (KL and Wasserstein) carries the gradient penalty (weight 5);
- the primal KL evaluates log pi_b at the policy's samples clipped 1e-3 inside the bounds;
- the entropy temperature is stored unconstrained and used as ``max(v, 0)`` with the reference's gradient
  (``ops.nonnegative``), so a tuned temperature can grow from 0;
- log-stds mapped smoothly into [-5, 0] (``log_std_transform='tanh'``); the Q term enters the actor loss
  once ``step > warm_start_steps``; max-Q acting ranks candidates by Q1 (``MaxQSoftPolicy``); evaluation
  acts by the mean action (the reference's "main" test policy, ``Algorithm.eval_mode``).
Remaining differences (each a config value or stated here): ``penalty`` defaults to "value" in every form,
where the reference dual script runs the policy penalty (``penalty='policy'`` gives it); rows whose next
action is a placeholder (an episode's last row) add no dual value penalty (the reference's collected
transitions always carry a next action); flax's default initialisation (LeCun normal kernels) where the
reference uses Keras's (Glorot uniform); no weight decay (the reference's default is 0 too).

Actions are in the unit box [-1, 1]^A throughout; the training loop maps dataset actions into it.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from brackit.algos import bc
from brackit.algos.common import (
    ActorCriticConfig,
    StepState,
    actor_step,
    advance,
    critic_net,
    critic_update,
    entropy_temperature_fields,
    initial_step_fields,
)
from brackit.config_checks import Rule, check_ranges, choice
from brackit.divergences import DIVERGENCES, Divergence, PrimalInputs, make_divergence
from brackit.errors import ConfigError
from brackit.nets import (
    LOG_STD_TRANSFORMS,
    DualCritic,
    GaussianHead,
    TanhGaussian,
    tanh_gaussian_act,
)
from brackit.ops import (
    bellman_target,
    ensemble_reduce,
    gradient_step,
    lagrange_loss,
    multiplier_step,
    namespaced,
    nonnegative,
    polyak,
    value_penalty,
)
from brackit.types import Transition

PENALTIES = ("value", "policy")


@dataclasses.dataclass(frozen=True)
class BRACConfig(ActorCriticConfig):
    penalty: str = "value"
    """'value' (BRAC-v: divergence in the Q target and the actor loss) or 'policy' (BRAC-p: actor only)."""
    divergence: str = "kl"
    """'kl', 'mmd', 'w' (Wasserstein) or 'none' (unregularized offline actor-critic)."""
    form: str = "primal"
    """'primal' (uses a behavior policy fitted first) or 'dual' (trains a critic c(s, a))."""
    alpha: Annotated[float | None, ">= 0 or None"] = None
    """Divergence weight (initial value when tuned). None: 0.1 for primal, 10.0 for dual (reference)."""
    tune_alpha: bool = False
    """Train alpha by a Lagrangian toward ``target_divergence``."""
    target_divergence: Annotated[float, "finite"] = 0.0
    """Divergence level the tuned alpha aims for."""
    alpha_max: Annotated[float, ">= 0"] = 500.0
    """Alpha is clipped to [0, alpha_max]."""
    alpha_lr: float = 1e-3
    alpha_entropy: Annotated[float, ">= 0"] = 0.0
    """Entropy temperature (initial value when tuned; a tuned temperature can grow from 0)."""
    tune_entropy: bool = False
    target_entropy: Annotated[float | None, "finite or None"] = None
    """None: -|A|."""
    ensemble_lam: Annotated[float, "[0, 1]"] = 1.0
    """Qens = lam * min + (1 - lam) * max; 1.0 is the pure min, 0.75 the 'mixture' of BCQ/BEAR."""
    actor_lr: float | None = None
    """None: 3e-4 for primal, 3e-6 for dual (reference scripts)."""
    critic_hidden: tuple[int, ...] = (300, 300)
    actor_hidden: tuple[int, ...] = (200, 200)
    log_std_transform: str = "tanh"
    """How the actor's raw log-std maps into [-5, 0]: 'tanh' (smooth, the reference's) or 'clip'."""
    warm_start_steps: Annotated[int, ">= 0"] = 20_000
    """The actor minimises only the divergence (and entropy) terms until step ``warm_start_steps``
    (the Q term enters once ``step > warm_start_steps``, as in the reference)."""
    num_divergence_samples: Annotated[int, ">= 1"] = 4
    """Samples per state for primal estimates (n in the paper)."""
    mmd_kernel: str = "laplacian"
    """'laplacian' exp(-|x - y|_1 / sigma) (BRAC's) or 'gaussian' exp(-|x - y|^2 / (2 sigma))."""
    mmd_sigma: Annotated[float, "> 0"] = 20.0
    """Kernel width sigma of the formulas above (BRAC's reference: Laplacian, 20)."""
    dual_hidden: tuple[int, ...] = (300, 300)
    dual_lr: float = 1e-3
    dual_steps: Annotated[int, ">= 1"] = 3
    """Dual-critic steps per update (the reference's c_iter): one on the update's batch after the actor
    step, the others on fresh batches."""
    gradient_penalty: Annotated[float, ">= 0"] = 5.0
    """Weight of the one-sided gradient penalty of every dual critic (KL and Wasserstein)."""
    behavior: bc.BCConfig = dataclasses.field(default_factory=bc.BCConfig)
    """The behavior policy estimate (primal forms): ``brackit.algos.bc``, its own batch size included."""
    behavior_steps: Annotated[int, ">= 0"] = 300_000
    """Steps fitting pi_b before BRAC starts (primal forms; 0 for dual and none)."""
    eval_samples: Annotated[int, ">= 1"] = 10
    """Candidate actions for max-Q acting (ranked by Q1)."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        choice("penalty", PENALTIES),
        choice("log_std_transform", LOG_STD_TRANSFORMS),
        Rule(
            ("tune_alpha", "divergence"),
            lambda tune, divergence: not tune or divergence != "none",
            "tune_alpha needs a divergence: set divergence to 'kl', 'mmd' or 'w', or tune_alpha to false",
        ),
        Rule(
            ("tune_alpha", "alpha", "alpha_max"),
            lambda tune, alpha, alpha_max: not tune or alpha is None or alpha <= alpha_max,
            "with tune_alpha, need alpha <= alpha_max (a tuned alpha is clipped to [0, alpha_max])",
        ),
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.divergence != "none":
            self.make_divergence()  # raises ConfigError naming the field to change

    def make_divergence(self) -> Divergence:
        params: dict[str, object] = {}
        if self.divergence == "mmd":
            params = {"kernel": self.mmd_kernel, "sigma": self.mmd_sigma}
        elif self.form == "dual":
            params = {"penalty_weight": self.gradient_penalty}
        if self.divergence not in DIVERGENCES:
            raise ConfigError(f"divergence must be one of {[*DIVERGENCES, 'none']}, got {self.divergence!r}")
        return make_divergence(self.divergence, self.form, **params)

    @property
    def regularized(self) -> bool:
        return self.divergence != "none"

    @property
    def uses_behavior_policy(self) -> bool:
        return self.regularized and self.form == "primal"

    @property
    def uses_dual_critic(self) -> bool:
        return self.regularized and self.form == "dual"

    @property
    def initial_alpha(self) -> float:
        if not self.regularized:
            return 0.0
        if self.alpha is not None:
            return self.alpha
        return 0.1 if self.form == "primal" else 10.0

    @property
    def policy_lr(self) -> float:
        if self.actor_lr is not None:
            return self.actor_lr
        return 3e-6 if self.uses_dual_critic else 3e-4


@dataclasses.dataclass(frozen=True)
class SACOfflineConfig(BRACConfig):
    """Unregularized offline SAC: BRAC without a divergence, entropy temperature tuned toward -|A|."""

    divergence: str = "none"
    alpha_entropy: float = 1.0
    tune_entropy: bool = True
    warm_start_steps: int = 0


@struct.dataclass
class BRACState(StepState):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_target: dict
    critic_opt: optax.OptState
    behavior: bc.BCState | None
    dual_params: dict | None
    dual_opt: optax.OptState | None
    alpha: jax.Array
    """Divergence weight (scalar); a state field so a sweep can vmap over it."""
    alpha_opt: optax.OptState
    alpha_entropy: jax.Array
    """Entropy temperature as stored (scalar); its value is ``ops.nonnegative`` of it."""
    alpha_entropy_opt: optax.OptState


# ----------------------------------------------------------------------------------------- networks


def actor_net(config: BRACConfig, action_dim: int) -> GaussianHead:
    return GaussianHead(config.actor_hidden, action_dim, log_std_transform=config.log_std_transform)


def policy(config: BRACConfig, actor_params: dict, obs: jax.Array, action_dim: int) -> TanhGaussian:
    return actor_net(config, action_dim).apply(actor_params, obs)


def dual_net(config: BRACConfig) -> DualCritic:
    return DualCritic(config.dual_hidden)


def init(config: BRACConfig, key: jax.Array, obs_dim: int, action_dim: int) -> BRACState:
    key, actor_key, critic_key, dual_key, behavior_key = jax.random.split(key, 5)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor_params = actor_net(config, action_dim).init(actor_key, obs)
    critic_params = critic_net(config).init(critic_key, obs, action)
    behavior = (
        bc.init(config.behavior, behavior_key, obs_dim, action_dim) if config.uses_behavior_policy else None
    )
    dual_params = dual_net(config).init(dual_key, obs, action) if config.uses_dual_critic else None
    alpha = jnp.asarray(config.initial_alpha, jnp.float32)
    alpha_entropy = jnp.asarray(config.alpha_entropy, jnp.float32)
    return BRACState(
        actor_params=actor_params,
        actor_opt=optax.adam(config.policy_lr).init(actor_params),
        critic_params=critic_params,
        critic_target=critic_params,
        critic_opt=optax.adam(config.critic_lr).init(critic_params),
        behavior=behavior,
        dual_params=dual_params,
        dual_opt=optax.adam(config.dual_lr).init(dual_params) if dual_params is not None else None,
        alpha=alpha,
        alpha_opt=optax.adam(config.alpha_lr).init(alpha),
        alpha_entropy=alpha_entropy,
        alpha_entropy_opt=optax.adam(config.alpha_lr).init(alpha_entropy),
        **initial_step_fields(key, action_dim),
    )


# ----------------------------------------------------------------------------------------- divergence


def divergence_at(
    config: BRACConfig,
    state: BRACState,
    actor_params: dict,
    dual_params: dict | None,
    obs: jax.Array,
    behavior_action: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """D(pi(.|s), pi_b(.|s)) per state [B], differentiable in ``actor_params`` (and ``dual_params``).

    Primal: n samples of pi and of the fitted pi_b. Dual: one sample of pi against the dataset action
    ``behavior_action`` [B, A] (the action at s, or the dataset's next action at s').
    """
    divergence = config.make_divergence()
    pi = policy(config, actor_params, obs, state.action_dim)
    policy_key, behavior_key = jax.random.split(key)
    if config.form == "primal":
        n = config.num_divergence_samples
        actions, raw, log_prob = pi.sample_and_log_prob(policy_key, n)
        pi_b = bc.distribution(config.behavior, state.behavior.params, obs, state.action_dim)
        pi_b = jax.tree.map(jax.lax.stop_gradient, pi_b)
        behavior_raw = pi_b.sample_raw(behavior_key, n)
        inputs = PrimalInputs(
            policy_actions=actions,
            policy_raw=raw,
            policy_log_prob=log_prob,
            # the reference clips the samples 1e-3 inside the bounds before taking log pi_b
            behavior_log_prob=pi_b.log_prob(actions, config.behavior.action_clip),
            behavior_actions=jnp.tanh(behavior_raw),
            behavior_raw=behavior_raw,
        )
        return divergence.primal(inputs)
    critic = dual_net(config)
    policy_action = jnp.tanh(pi.sample_raw(policy_key))
    return divergence.dual(
        critic.apply(dual_params, obs, policy_action), critic.apply(dual_params, obs, behavior_action)
    )


def dual_loss(
    dual_params: dict, config: BRACConfig, state: BRACState, batch: Transition, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The dual critic maximises the dual estimate minus its gradient penalty:
    loss = -mean(estimate) + penalty (the reference's ``dual_critic_loss``), pi's samples from
    ``state.actor_params``."""
    divergence = config.make_divergence()
    critic = dual_net(config)
    policy_key, penalty_key = jax.random.split(key)
    pi = policy(config, state.actor_params, batch.obs, state.action_dim)
    policy_action = jax.lax.stop_gradient(jnp.tanh(pi.sample_raw(policy_key)))
    estimate = divergence.dual(
        critic.apply(dual_params, batch.obs, policy_action),
        critic.apply(dual_params, batch.obs, batch.action),
    )
    penalty = divergence.critic_penalty(
        lambda o, a: critic.apply(dual_params, o, a), penalty_key, batch.obs, policy_action, batch.action
    )
    loss = -jnp.mean(estimate) + penalty
    return loss, {"loss": loss, "estimate": jnp.mean(estimate), "penalty": penalty}


# ----------------------------------------------------------------------------------------- losses


def critic_target(
    config: BRACConfig, state: BRACState, batch: Transition, key: jax.Array
) -> tuple[jax.Array, dict]:
    """y = r + gamma * discount * (Qens'(s', a') - alpha_ent log pi(a'|s') [- alpha D(s')]), a' ~ pi(.|s').

    The dual value penalty reads the dataset's next action; rows without one (``next_action_valid`` 0)
    get no penalty."""
    action_key, divergence_key = jax.random.split(key)
    pi = policy(config, state.actor_params, batch.next_obs, state.action_dim)
    next_action, _, next_log_prob = pi.sample_and_log_prob(action_key)
    next_q = critic_net(config).apply(state.critic_target, batch.next_obs, next_action)
    next_value = (
        ensemble_reduce(next_q, config.ensemble_lam) - nonnegative(state.alpha_entropy) * next_log_prob
    )
    metrics = {}
    if config.penalty == "value" and config.regularized:
        next_divergence = divergence_at(
            config,
            state,
            state.actor_params,
            state.dual_params,
            batch.next_obs,
            batch.next_action,
            divergence_key,
        )
        if config.uses_dual_critic:
            next_divergence = next_divergence * batch.next_action_mask()
        next_value = value_penalty(next_value, state.alpha, next_divergence)
        metrics["next_divergence"] = jnp.mean(next_divergence)
    return bellman_target(batch.reward, batch.discount, config.gamma, next_value), metrics


def actor_loss(
    actor_params: dict,
    config: BRACConfig,
    state: BRACState,
    critic_params: dict,
    batch: Transition,
    key: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean(alpha_ent log pi(a|s) + alpha D(s) - Qens(s, a)), a ~ pi, Q from ``critic_params`` (the
    updated critics); no Q term until ``step > warm_start_steps``."""
    action_key, divergence_key = jax.random.split(key)
    pi = policy(config, actor_params, batch.obs, state.action_dim)
    action, _, log_prob = pi.sample_and_log_prob(action_key)
    q = ensemble_reduce(critic_net(config).apply(critic_params, batch.obs, action), config.ensemble_lam)
    if config.regularized:
        divergence = divergence_at(
            config, state, actor_params, state.dual_params, batch.obs, batch.action, divergence_key
        )
    else:
        divergence = jnp.zeros_like(q)
    q_weight = jnp.where(state.step > config.warm_start_steps, 1.0, 0.0)
    alpha_entropy = nonnegative(state.alpha_entropy)
    loss = jnp.mean(alpha_entropy * log_prob + state.alpha * divergence - q_weight * q)
    metrics = {
        "loss": loss,
        "q": jnp.mean(q),
        "divergence": jnp.mean(divergence),
        "entropy": -jnp.mean(log_prob),
    }
    return loss, metrics


# ----------------------------------------------------------------------------------------- update


def pretrain_steps(config: BRACConfig) -> int:
    """Steps fitting the behavior policy before BRAC's own updates."""
    return config.behavior_steps if config.uses_behavior_policy else 0


def pretrain_batch_size(config: BRACConfig) -> int:
    """The behavior policy's own batch size (``behavior.batch_size``)."""
    return config.behavior.batch_size


def pretrain_update(config: BRACConfig, state: BRACState, batch: Transition) -> tuple[BRACState, dict]:
    behavior, metrics = bc.update(config.behavior, state.behavior, batch)
    return state.replace(behavior=behavior), metrics


def batches_per_update(config: BRACConfig) -> int:
    """Batches one update reads: ``dual_steps`` for dual forms (the extra dual-critic steps use fresh
    batches, as the reference's train_step does), else 1."""
    return config.dual_steps if config.uses_dual_critic else 1


def update(config: BRACConfig, state: BRACState, batch: Transition) -> tuple[BRACState, dict[str, jax.Array]]:
    """One BRAC update in the reference's order: target critics, critics, actor (against the updated
    critics), dual critic (dual forms), alpha, entropy temperature.

    ``batch``: one batch [B, ...], or ``batches_per_update`` batches stacked [K, B, ...] (as the training
    loop samples them): the first serves every step, the others the extra dual-critic steps; with a single
    batch those steps reuse it."""
    if batch.reward.ndim == 2:
        batch, extra = jax.tree.map(lambda x: x[0], batch), jax.tree.map(lambda x: x[1:], batch)
    else:
        extra = None
    key, dual_key, target_key, actor_key, alpha_key, entropy_key = jax.random.split(state.key, 6)
    metrics: dict[str, jax.Array] = {}

    # the reference moves the targets toward the current critics before computing the Q target
    state = state.replace(critic_target=polyak(state.critic_target, state.critic_params, config.tau))
    target, target_metrics = critic_target(config, state, batch, target_key)
    critic_params, critic_opt, critic_metrics = critic_update(config, state, batch, target)
    metrics.update(namespaced({"critic": {**critic_metrics, **target_metrics}}))

    actor_params, actor_opt, actor_metrics = actor_step(
        actor_loss, config, state, state, critic_params, batch, actor_key
    )
    metrics.update(namespaced({"actor": actor_metrics}))
    state = state.replace(
        actor_params=actor_params, actor_opt=actor_opt, critic_params=critic_params, critic_opt=critic_opt
    )

    if config.uses_dual_critic:
        optimizer = optax.adam(config.dual_lr)
        steps = config.dual_steps
        if extra is None:
            batches = jax.tree.map(lambda x: jnp.broadcast_to(x, (steps, *x.shape)), batch)
        else:
            batches = jax.tree.map(lambda x, rest: jnp.concatenate([x[None], rest]), batch, extra)

        def dual_step(carry, inputs):
            params, opt_state = carry
            step_batch, step_key = inputs
            params, opt_state, step_metrics = gradient_step(
                dual_loss, params, opt_state, optimizer, config, state, step_batch, step_key
            )
            return (params, opt_state), step_metrics

        (dual_params, dual_opt), dual_metrics = jax.lax.scan(
            dual_step,
            (state.dual_params, state.dual_opt),
            (batches, jax.random.split(dual_key, steps)),
            unroll=True,  # a few steps: unrolled, XLA fuses them with the rest of the update
        )
        state = state.replace(dual_params=dual_params, dual_opt=dual_opt)
        metrics.update(namespaced({"dual": {k: v[0] for k, v in dual_metrics.items()}}))

    alpha, alpha_opt = state.alpha, state.alpha_opt
    if config.tune_alpha:  # the divergence of the updated actor (and dual critic), as the reference
        divergence = divergence_at(
            config, state, state.actor_params, state.dual_params, batch.obs, batch.action, alpha_key
        )
        alpha, alpha_opt = multiplier_step(
            lagrange_loss, alpha, alpha_opt, optax.adam(config.alpha_lr), divergence, config.target_divergence
        )
        alpha = jnp.clip(alpha, 0.0, config.alpha_max)

    entropy = entropy_temperature_fields(
        state,
        config.tune_entropy,
        lambda: policy(config, state.actor_params, batch.obs, state.action_dim),
        optax.adam(config.alpha_lr),
        entropy_key,
        config.target_entropy,
    )

    metrics["alpha/value"] = alpha
    metrics["alpha_entropy/value"] = nonnegative(entropy["alpha_entropy"])
    return advance(state, key, alpha=alpha, alpha_opt=alpha_opt, **entropy), metrics


def act(
    config: BRACConfig, state: BRACState, obs: jax.Array, key: jax.Array, mode: str = "mode"
) -> jax.Array:
    """Unit-box actions [B, A] (``nets.tanh_gaussian_act``). ``mode``: 'mode' (tanh of the mean; the
    reference's evaluation policy), 'sample', or 'max_q' (of ``eval_samples`` policy samples, the one with
    the largest Q1, as the reference's MaxQSoftPolicy)."""
    pi = policy(config, state.actor_params, obs, state.action_dim)
    return tanh_gaussian_act(
        pi, mode, key, obs, config.eval_samples, config.critic_hidden, state.critic_params
    )
