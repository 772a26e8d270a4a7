"""Online SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", Algorithm 1): not an
offline algorithm, but the trainer of the behavior policies of the BRAC dataset protocol (Wu et al. 2019,
appendix: SAC with 200-200 actor, 300-300 critics, Adam 5e-4, batch 256, 10k uniform-random initial steps).

- Critics: an ensemble of ``num_critics`` Q networks reduced by the min (clipped double Q, eq. 7 with two
  critics), each with a Polyak-averaged target; ``y = r + gamma * discount * (min_i Q'_i(s', a') -
  alpha log pi(a'|s'))``, a' ~ pi(.|s').
- Actor: ``mean(alpha log pi(a|s) - min_i Q_i(s, a))``, a ~ pi(.|s) reparameterised (eq. 12).
- Temperature: ``log alpha`` trained toward the target entropy -|A| (eq. 18), written as a Lagrange
  multiplier of the constraint ``E[-log pi] >= target_entropy`` with ``brackit.ops.lagrange_loss``.
Departures from the paper: the actor's log-std is clipped to [-5, 0] (BRAC's networks, so the stored policy
is the ``GaussianHead`` every offline algorithm uses); actions live in the unit box [-1, 1]^A.

The learner is pure: ``update(config, state, batch)``; ``learn`` inserts a vector step's transitions into an
on-device replay buffer and runs ``num_updates`` updates in one jitted ``lax.scan`` that samples its batches
from the buffer. ``train_behavior`` is the thin environment loop around it (a gymnasium vector env, one
batched policy call per vector step); its evaluations are ``brackit.evaluation.evaluate``'s.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from brackit.config_checks import Rule, check_ranges, comparison
from brackit.errors import ConfigError
from brackit.evaluation import evaluate
from brackit.nets import CriticEnsemble, GaussianHead, TanhGaussian, scale_action
from brackit.ops import (
    bellman_target,
    ensemble_reduce,
    ensemble_td_loss,
    gradient_step,
    lagrange_loss,
    polyak,
)
from brackit.types import Transition

VECTOR_MODES = ("sync", "async")


@dataclasses.dataclass(frozen=True)
class SACConfig:
    actor_hidden: tuple[int, ...] = (200, 200)
    """Hidden widths of the tanh-Gaussian actor."""
    critic_hidden: tuple[int, ...] = (300, 300)
    """Hidden widths of each critic."""
    num_critics: int = 2
    """Critics in the ensemble; targets and the actor use their min."""
    learning_rate: Annotated[float, "> 0"] = 5e-4
    """Adam learning rate of the actor, the critics and the temperature."""
    batch_size: int = 256
    """Transitions per update, sampled uniformly from the replay buffer."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics, every update."""
    initial_temperature: Annotated[float, "> 0"] = 1.0
    """Initial entropy temperature alpha."""
    target_entropy: Annotated[float | None, "finite or None"] = None
    """Entropy the temperature aims for; None: -|A|."""
    log_std_min: Annotated[float, "finite"] = -5.0
    """Lower clip of the actor's log-std."""
    log_std_max: Annotated[float, "finite"] = 0.0
    """Upper clip of the actor's log-std (BRAC's networks)."""
    random_steps: Annotated[int, ">= 0"] = 10_000
    """Environment steps with uniform-random actions before the policy acts and learning starts."""
    buffer_size: Annotated[int, ">= 1"] = 1_000_000
    """Replay capacity in transitions (capped at the run's ``max_steps``)."""
    num_envs: Annotated[int, ">= 1"] = 4
    """Environments stepped together; the policy is one batched call per vector step."""
    updates_per_step: Annotated[int | None, ">= 1 or None"] = None
    """Updates per vector step (one scanned, jitted chunk); None: ``num_envs`` (one update per transition)."""
    vector_mode: str = "sync"
    """'sync' (all envs in this process) or 'async' (one subprocess per env)."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        comparison("batch_size <= buffer_size"),
        comparison("batch_size <= random_steps", "the random steps fill the first batch"),
        comparison("log_std_min <= log_std_max"),
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.vector_mode not in VECTOR_MODES:
            raise ConfigError(f"vector_mode must be one of {VECTOR_MODES}, got {self.vector_mode!r}")

    @property
    def updates_per_vector_step(self) -> int:
        return self.num_envs if self.updates_per_step is None else self.updates_per_step


@struct.dataclass
class SACState:
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_target: dict
    critic_opt: optax.OptState
    log_temperature: jax.Array
    temperature_opt: optax.OptState
    step: jax.Array
    key: jax.Array
    action_dim: int = struct.field(pytree_node=False)


@struct.dataclass
class ReplayBuffer:
    """A ring buffer on the device. obs, next_obs: [C, O]; action: [C, A] (unit box); reward, discount: [C]."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    position: jax.Array
    """Next row to write (int32 scalar)."""
    size: jax.Array
    """Rows filled so far, at most C (int32 scalar)."""


# ----------------------------------------------------------------------------------------- networks


def actor_net(config: SACConfig, action_dim: int) -> GaussianHead:
    return GaussianHead(config.actor_hidden, action_dim, config.log_std_min, config.log_std_max)


def critic_net(config: SACConfig) -> CriticEnsemble:
    return CriticEnsemble(config.critic_hidden, config.num_critics)


def optimizer(config: SACConfig) -> optax.GradientTransformation:
    return optax.adam(config.learning_rate)


def init(config: SACConfig, key: jax.Array, obs_dim: int, action_dim: int) -> SACState:
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor_params = actor_net(config, action_dim).init(actor_key, obs)
    critic_params = critic_net(config).init(critic_key, obs, action)
    log_temperature = jnp.log(jnp.asarray(config.initial_temperature, jnp.float32))
    return SACState(
        actor_params=actor_params,
        actor_opt=optimizer(config).init(actor_params),
        critic_params=critic_params,
        critic_target=critic_params,
        critic_opt=optimizer(config).init(critic_params),
        log_temperature=log_temperature,
        temperature_opt=optimizer(config).init(log_temperature),
        step=jnp.zeros((), jnp.int32),
        key=key,
        action_dim=action_dim,
    )


def policy(config: SACConfig, actor_params: dict, obs: jax.Array, action_dim: int) -> TanhGaussian:
    return actor_net(config, action_dim).apply(actor_params, obs)


def target_entropy(config: SACConfig, action_dim: int) -> float:
    return -float(action_dim) if config.target_entropy is None else config.target_entropy


# ----------------------------------------------------------------------------------------- losses


def critic_target(config: SACConfig, state: SACState, batch: Transition, key: jax.Array) -> jax.Array:
    """y = r + gamma * discount * (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s'): [B]."""
    pi = policy(config, state.actor_params, batch.next_obs, state.action_dim)
    next_action, _, next_log_prob = pi.sample_and_log_prob(key)
    next_q = critic_net(config).apply(state.critic_target, batch.next_obs, next_action)  # [E, B]
    next_value = ensemble_reduce(next_q, 1.0) - jnp.exp(state.log_temperature) * next_log_prob
    return bellman_target(batch.reward, batch.discount, config.gamma, next_value)


def critic_loss(
    critic_params: dict, config: SACConfig, batch: Transition, target: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Regression of every critic on the target (``ops.ensemble_td_loss``)."""
    return ensemble_td_loss(critic_net(config).apply(critic_params, batch.obs, batch.action), target)


def actor_loss(
    actor_params: dict, config: SACConfig, state: SACState, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """mean(alpha log pi(a|s) - min_i Q_i(s, a)), a ~ pi(.|s) reparameterised; obs [B, O]."""
    pi = policy(config, actor_params, obs, state.action_dim)
    action, _, log_prob = pi.sample_and_log_prob(key)
    q = ensemble_reduce(critic_net(config).apply(state.critic_params, obs, action), 1.0)
    loss = jnp.mean(jnp.exp(state.log_temperature) * log_prob - q)
    return loss, {"loss": loss, "q": jnp.mean(q), "entropy": -jnp.mean(log_prob)}


def temperature_loss(
    log_temperature: jax.Array, entropy: jax.Array, target: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Raises alpha while the entropy is below its target: ``-log_alpha * mean(-entropy + target)``."""
    loss = lagrange_loss(log_temperature, -entropy, -target)
    return loss, {"loss": loss}


# ----------------------------------------------------------------------------------------- update


def update(config: SACConfig, state: SACState, batch: Transition) -> tuple[SACState, dict[str, jax.Array]]:
    """One SAC update: critics, actor (against the updated critics), temperature, target critics."""
    key, target_key, actor_key = jax.random.split(state.key, 3)
    target = critic_target(config, state, batch, target_key)
    critic_params, critic_opt, critic_metrics = gradient_step(
        critic_loss, state.critic_params, state.critic_opt, optimizer(config), config, batch, target
    )
    state = state.replace(critic_params=critic_params, critic_opt=critic_opt)
    actor_params, actor_opt, actor_metrics = gradient_step(
        actor_loss,
        state.actor_params,
        state.actor_opt,
        optimizer(config),
        config,
        state,
        batch.obs,
        actor_key,
    )
    log_temperature, temperature_opt, temperature_metrics = gradient_step(
        temperature_loss,
        state.log_temperature,
        state.temperature_opt,
        optimizer(config),
        actor_metrics["entropy"],
        target_entropy(config, state.action_dim),
    )
    metrics = {
        **{f"critic/{k}": v for k, v in critic_metrics.items()},
        **{f"actor/{k}": v for k, v in actor_metrics.items()},
        "temperature/loss": temperature_metrics["loss"],
        "temperature/value": jnp.exp(log_temperature),
    }
    state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_target=polyak(state.critic_target, critic_params, config.tau),
        log_temperature=log_temperature,
        temperature_opt=temperature_opt,
        step=state.step + 1,
        key=key,
    )
    return state, metrics


def act(
    config: SACConfig, actor_params: dict, obs: jax.Array, key: jax.Array, mode: str = "sample"
) -> jax.Array:
    """Unit-box actions [B, A] at obs [B, O]: 'sample' (a draw of the stochastic policy) or 'mode'."""
    pi = policy(config, actor_params, obs, actor_params_action_dim(actor_params))
    if mode == "mode":
        return pi.mode()
    if mode != "sample":
        raise ConfigError(f"act mode must be 'sample' or 'mode', got {mode!r}")
    return jnp.tanh(pi.sample_raw(key))


def actor_params_action_dim(actor_params: dict) -> int:
    """|A| read off the last layer of a ``GaussianHead``'s parameters (its output is 2|A| wide)."""
    mlp = actor_params["params"]["MLP_0"]
    last = max((name for name in mlp if name.startswith("Dense_")), key=lambda name: int(name.split("_")[1]))
    return int(mlp[last]["bias"].shape[-1]) // 2


# ----------------------------------------------------------------------------------------- replay buffer


def init_buffer(capacity: int, obs_dim: int, action_dim: int) -> ReplayBuffer:
    return ReplayBuffer(
        obs=jnp.zeros((capacity, obs_dim), jnp.float32),
        action=jnp.zeros((capacity, action_dim), jnp.float32),
        reward=jnp.zeros((capacity,), jnp.float32),
        discount=jnp.zeros((capacity,), jnp.float32),
        next_obs=jnp.zeros((capacity, obs_dim), jnp.float32),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def insert(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Writes K transitions (every field [K, ...]; ``next_action`` is ignored) at the ring position."""
    capacity = buffer.reward.shape[0]
    count = batch.reward.shape[0]
    rows = (buffer.position + jnp.arange(count)) % capacity
    return buffer.replace(
        obs=buffer.obs.at[rows].set(batch.obs),
        action=buffer.action.at[rows].set(batch.action),
        reward=buffer.reward.at[rows].set(batch.reward),
        discount=buffer.discount.at[rows].set(batch.discount),
        next_obs=buffer.next_obs.at[rows].set(batch.next_obs),
        position=(buffer.position + count) % capacity,
        size=jnp.minimum(buffer.size + count, capacity),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniform draws with replacement from the filled rows; ``next_action`` repeats ``action`` (unused)."""
    rows = jax.random.randint(key, (batch_size,), 0, buffer.size)
    action = buffer.action[rows]
    return Transition(
        obs=buffer.obs[rows],
        action=action,
        reward=buffer.reward[rows],
        discount=buffer.discount[rows],
        next_obs=buffer.next_obs[rows],
        next_action=action,
    )


@functools.partial(jax.jit, static_argnames=("config", "num_updates"), donate_argnames=("buffer",))
def learn(
    config: SACConfig, state: SACState, buffer: ReplayBuffer, batch: Transition, num_updates: int
) -> tuple[SACState, ReplayBuffer, dict[str, jax.Array]]:
    """Inserts ``batch`` ([K, ...]) into the buffer, then ``num_updates`` updates on batches sampled from it
    inside one ``lax.scan``; metrics are those of the last update (0 updates: only the insert)."""
    buffer = insert(buffer, batch)
    if num_updates == 0:
        return state, buffer, {}

    def one_update(state: SACState, _: None) -> tuple[SACState, dict[str, jax.Array]]:
        key, sample_key = jax.random.split(state.key)
        state, metrics = update(config, state.replace(key=key), sample(buffer, sample_key, config.batch_size))
        return state, metrics

    state, metrics = jax.lax.scan(one_update, state, None, length=num_updates)
    return state, buffer, jax.tree.map(lambda x: x[-1], metrics)


@functools.partial(jax.jit, static_argnames=("config", "mode"))
def _act_jit(
    config: SACConfig, actor_params: dict, obs: jax.Array, key: jax.Array, index: jax.Array, mode: str
):
    return act(config, actor_params, obs, jax.random.fold_in(key, index), mode)


# ----------------------------------------------------------------------------------------- environment loop


@dataclasses.dataclass
class BehaviorResult:
    """What ``train_behavior`` returns. ``actor_params`` is the policy to keep: the one that reached the
    target, else the best evaluated one."""

    actor_params: dict
    reached_target: bool
    steps: int
    """Environment steps taken (transitions collected)."""
    updates: int
    seconds: float
    best_return: float
    """Mean evaluation return of ``actor_params`` when it was evaluated during training."""
    history: list[dict[str, float]]
    """One row per evaluation: step, seconds, return_mean, return_std and the last update's metrics."""
    config: SACConfig
    obs_dim: int
    action_dim: int


def evaluate_policy(
    config: SACConfig, actor_params: dict, env_id: str, episodes: int, seed: int
) -> np.ndarray:
    """Undiscounted returns [episodes] of the deterministic policy (``mode``), by
    ``brackit.evaluation.evaluate`` as one run; episode i is reset with seed ``seed + i``."""
    states = jax.tree.map(lambda x: jnp.asarray(x)[None], actor_params)
    act_one_run = functools.partial(_act_one_run, config)
    return evaluate(act_one_run, states, env_id, episodes, seed, first_reset_seed=seed).returns[0]


@functools.partial(jax.jit, static_argnames=("config", "mode"))
def _act_one_run(
    config: SACConfig, actor_params: dict, obs: jax.Array, keys: jax.Array, mode: str
) -> jax.Array:
    """``evaluate``'s ``act`` for one run: actor_params and keys with a leading axis of 1, obs [1, E, O]."""
    params = jax.tree.map(lambda x: x[0], actor_params)
    return act(config, params, obs[0], keys[0], mode)[None]


def _make_vector_env(env_id: str, config: SACConfig) -> Any:
    import gymnasium as gym

    from brackit.envs import install_mujoco_warning_filter

    install_mujoco_warning_filter()
    return gym.make_vec(
        env_id,
        num_envs=config.num_envs,
        vectorization_mode=config.vector_mode,
        vector_kwargs={
            "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP,
            # never fork a process that runs JAX
            **({"context": "spawn"} if config.vector_mode == "async" else {}),
        },
    )


def train_behavior(
    env_id: str,
    target_return: float,
    max_steps: int = 500_000,
    seed: int = 0,
    eval_every: int = 5_000,
    eval_episodes: int = 10,
    config: SACConfig | None = None,
    time_limit: float | None = None,
    required_hits: int = 2,
    log: Callable[[str], None] | None = None,
) -> BehaviorResult:
    """Trains SAC online on ``env_id`` until the mean evaluation return (deterministic policy, over
    ``eval_episodes`` episodes) reaches ``target_return`` on ``required_hits`` consecutive evaluations,
    or ``max_steps`` environment steps, or ``time_limit`` seconds of wall time.

    Evaluations run every ``eval_every`` environment steps once learning has started. The returned params
    are those that met the target, else the best evaluated ones. ``log`` receives one line per evaluation.
    """
    config = config or SACConfig()
    if eval_every < 1 or eval_episodes < 1 or max_steps < 1 or required_hits < 1:
        raise ConfigError("eval_every, eval_episodes, max_steps and required_hits must be >= 1")
    start = time.perf_counter()
    envs = _make_vector_env(env_id, config)
    try:
        obs_dim = int(envs.single_observation_space.shape[0])
        action_dim = int(envs.single_action_space.shape[0])
        low = np.asarray(envs.single_action_space.low, np.float32)
        high = np.asarray(envs.single_action_space.high, np.float32)
        key, act_key = jax.random.split(jax.random.key(seed))
        state = init(config, key, obs_dim, action_dim)
        buffer = init_buffer(min(config.buffer_size, max_steps + config.num_envs), obs_dim, action_dim)
        rng = np.random.default_rng(seed)
        obs, _ = envs.reset(seed=seed)
        obs = np.asarray(obs, np.float32)
        steps = updates = iteration = hits = 0
        next_eval = max(eval_every, config.random_steps)
        best_params, best_return, reached = state.actor_params, -np.inf, False
        history: list[dict[str, float]] = []
        metrics: dict[str, jax.Array] = {}
        while steps < max_steps:
            learning = steps >= config.random_steps
            if learning:
                unit = np.asarray(
                    _act_jit(
                        config, state.actor_params, jnp.asarray(obs), act_key, jnp.int32(iteration), "sample"
                    )
                )
            else:
                unit = rng.uniform(-1.0, 1.0, (config.num_envs, action_dim)).astype(np.float32)
            next_obs, reward, terminated, _, info = envs.step(scale_action(unit, low, high))
            next_obs = np.asarray(next_obs, np.float32)
            stored_next_obs = next_obs.copy()
            if "_final_obs" in info:
                for i in np.flatnonzero(info["_final_obs"]):
                    stored_next_obs[i] = info["final_obs"][i]
            batch = Transition(
                obs=jnp.asarray(obs),
                action=jnp.asarray(unit),
                reward=jnp.asarray(reward, jnp.float32),
                discount=jnp.asarray(1.0 - np.asarray(terminated, np.float32)),
                next_obs=jnp.asarray(stored_next_obs),
                next_action=jnp.asarray(unit),
            )
            num_updates = config.updates_per_vector_step if learning else 0
            # dispatched asynchronously: the next policy call waits for it, the env step above did not
            state, buffer, step_metrics = learn(config, state, buffer, batch, num_updates)
            metrics = step_metrics or metrics
            obs = next_obs
            steps += config.num_envs
            updates += num_updates
            iteration += 1
            out_of_time = time_limit is not None and time.perf_counter() - start > time_limit
            if steps >= next_eval or out_of_time or steps >= max_steps:
                next_eval += eval_every
                returns = evaluate_policy(
                    config, state.actor_params, env_id, eval_episodes, seed=10_000 + steps
                )
                mean = float(returns.mean())
                hits = hits + 1 if mean >= target_return else 0
                if mean > best_return:
                    best_params, best_return = state.actor_params, mean
                row = {
                    "step": float(steps),
                    "seconds": time.perf_counter() - start,
                    "return_mean": mean,
                    "return_std": float(returns.std()),
                    **{k: float(v) for k, v in metrics.items()},
                }
                history.append(row)
                if log is not None:
                    log(
                        f"{env_id} step {steps} return {mean:.1f} ± {row['return_std']:.1f} "
                        f"(target {target_return:g}, {hits}/{required_hits} in a row, best {best_return:.1f}) "
                        f"alpha {row.get('temperature/value', float('nan')):.3f} "
                        f"{steps / row['seconds']:.0f} steps/s {row['seconds']:.0f}s"
                    )
                if hits >= required_hits:
                    best_params, best_return, reached = state.actor_params, mean, True
                    break
            if out_of_time:
                break
    finally:
        envs.close()
    return BehaviorResult(
        actor_params=jax.device_get(best_params),
        reached_target=reached,
        steps=steps,
        updates=updates,
        seconds=time.perf_counter() - start,
        best_return=float(best_return),
        history=history,
        config=config,
        obs_dim=obs_dim,
        action_dim=action_dim,
    )
