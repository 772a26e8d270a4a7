"""The training loop: chunks of updates as one jitted ``lax.scan``, vmapped over runs (seeds x sweep values).

``make_train`` returns pure functions of one run; ``train`` is the thin driver that vmaps them over runs,
alternates training chunks with evaluation, and records a metrics history. Nothing is logged inside jit.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.algos import Algorithm, get_algorithm, make_config
from brackit.data import OfflineDataset, load_dataset
from brackit.errors import ConfigError
from brackit.evaluation import evaluate
from brackit.nets import unscale_action


def to_unit_box(dataset: OfflineDataset) -> OfflineDataset:
    """Maps ``action`` and ``next_action`` from the card's bounds to [-1, 1] (a no-op for MuJoCo)."""
    low, high = np.asarray(dataset.card.action_low), np.asarray(dataset.card.action_high)
    if np.all(low == -1.0) and np.all(high == 1.0):
        return dataset
    t = dataset.transitions
    t = t.replace(
        action=unscale_action(t.action, low, high), next_action=unscale_action(t.next_action, low, high)
    )
    return dataset.replace(transitions=t)


@dataclasses.dataclass(frozen=True)
class TrainFunctions:
    """Pure functions of one run; vmap them over runs. ``chunk`` and ``pretrain_chunk`` return the new
    state and the chunk's metrics averaged over its steps (flat dict, namespaced keys)."""

    init: Callable[[jax.Array], Any]
    chunk: Callable[[Any, OfflineDataset], tuple[Any, dict[str, jax.Array]]]
    pretrain_chunk: Callable[[Any, OfflineDataset], tuple[Any, dict[str, jax.Array]]]
    chunk_steps: int


def make_train(
    algorithm: Algorithm, config: Any, obs_dim: int, action_dim: int, chunk_steps: int
) -> TrainFunctions:
    """Pure ``init(key)`` and ``chunk(state, dataset)``: ``chunk_steps`` updates, batches sampled on device."""

    def init(key: jax.Array) -> Any:
        return algorithm.init(config, key, obs_dim, action_dim)

    def scanned(update: Callable[..., Any]) -> Callable[..., Any]:
        def run(state: Any, dataset: OfflineDataset) -> tuple[Any, dict[str, jax.Array]]:
            def body(state, _):
                key, batch_key = jax.random.split(state.key)
                batch = dataset.sample(batch_key, config.batch_size)
                state, metrics = update(config, state.replace(key=key), batch)
                return state, metrics

            state, metrics = jax.lax.scan(body, state, None, length=chunk_steps)
            return state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)

        return run

    pretrain = algorithm.pretrain_update or (lambda config, state, batch: (state, {}))
    return TrainFunctions(init, scanned(algorithm.update), scanned(pretrain), chunk_steps)


@dataclasses.dataclass
class TrainResult:
    """The final states (every leaf has a leading run axis R), the run labels and the history."""

    algorithm: str
    config: Any
    states: Any
    runs: list[dict[str, Any]]
    history: list[dict[str, Any]]
    env_id: str | None

    def final_eval(self) -> dict[str, Any] | None:
        evals = [h for h in self.history if "eval/return_mean" in h]
        return evals[-1] if evals else None

    def run_state(self, index: int) -> Any:
        return jax.tree.map(lambda x: x[index], self.states)


def run_grid(seeds: Sequence[int], sweep: dict[str, Sequence[float]] | None) -> list[dict[str, Any]]:
    """Runs in order: every sweep combination, each with every seed."""
    sweep = sweep or {}
    names = sorted(sweep)
    combos = list(itertools.product(*(sweep[n] for n in names))) or [()]
    return [{"seed": int(seed), **dict(zip(names, combo, strict=True))} for combo in combos for seed in seeds]


def apply_sweep(states: Any, runs: list[dict[str, Any]], names: Sequence[str]) -> Any:
    """Overwrites scalar state fields (e.g. ``alpha``) with each run's value."""
    for name in names:
        if not hasattr(states, name) or getattr(states, name).shape != (len(runs),):
            raise ConfigError(f"cannot sweep {name!r}: it is not a scalar field of the training state")
        values = jnp.asarray([run[name] for run in runs], getattr(states, name).dtype)
        states = states.replace(**{name: values})
    return states


def train(
    algorithm: str,
    data: OfflineDataset | str | os.PathLike,
    config: Any = None,
    *,
    steps: int,
    seeds: Sequence[int] = (0,),
    sweep: dict[str, Sequence[float]] | None = None,
    chunk_steps: int = 1000,
    eval_every: int = 0,
    eval_episodes: int = 10,
    eval_mode: str = "mode",
    env_id: str | None = None,
    logger: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Trains ``algorithm`` on a dataset (object or path) for every seed x sweep value as one program.

    ``config`` is the algorithm's config (or None for defaults, with ``overrides`` as fields). ``sweep``
    maps scalar state fields to values (e.g. ``{"alpha": [0.1, 1.0]}``). Evaluation runs every
    ``eval_every`` steps and at the end when ``eval_every`` > 0 and an env id is known.
    """
    algo = get_algorithm(algorithm)
    if config is None:
        config = make_config(algorithm, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    dataset = data if isinstance(data, OfflineDataset) else load_dataset(data, env_id=env_id)
    env_id = env_id or dataset.card.env_id
    dataset = to_unit_box(dataset)
    if steps <= 0 or chunk_steps <= 0:
        raise ConfigError("steps and chunk_steps must be positive")
    chunk_steps = min(chunk_steps, steps)
    if steps % chunk_steps or (eval_every and eval_every % chunk_steps):
        raise ConfigError(
            f"steps ({steps}) and eval_every ({eval_every}) must be multiples of chunk_steps ({chunk_steps})"
        )
    runs = run_grid(seeds, sweep)
    fns = make_train(algo, config, dataset.card.obs_dim, dataset.card.action_dim, chunk_steps)
    keys = jnp.stack([jax.random.key(run["seed"]) for run in runs])
    states = apply_sweep(jax.jit(jax.vmap(fns.init))(keys), runs, sorted(sweep or {}))
    history: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        history.append(entry)
        if logger is not None:
            logger(entry)

    pretrain = algo.pretrain_steps(config)
    if pretrain:
        pre_fns = make_train(
            algo, config, dataset.card.obs_dim, dataset.card.action_dim, min(chunk_steps, pretrain)
        )
        pre_chunk = jax.jit(jax.vmap(pre_fns.pretrain_chunk, in_axes=(0, None)))
        done = 0
        while done < pretrain:
            if pretrain - done < pre_fns.chunk_steps:  # a last, shorter chunk
                pre_fns = make_train(
                    algo, config, dataset.card.obs_dim, dataset.card.action_dim, pretrain - done
                )
                pre_chunk = jax.jit(jax.vmap(pre_fns.pretrain_chunk, in_axes=(0, None)))
            start = time.perf_counter()
            states, metrics = pre_chunk(states, dataset)
            done += pre_fns.chunk_steps
            record(
                {
                    "phase": "pretrain",
                    "step": done,
                    **_host(metrics),
                    "time/seconds": time.perf_counter() - start,
                }
            )

    chunk = jax.jit(jax.vmap(fns.chunk, in_axes=(0, None)))
    act = _batched_act(algo, config)
    for step in range(chunk_steps, steps + 1, chunk_steps):
        start = time.perf_counter()
        states, metrics = chunk(states, dataset)
        entry = {"phase": "train", "step": step, **_host(metrics)}
        entry["time/seconds"] = time.perf_counter() - start
        if env_id is not None and eval_every and (step % eval_every == 0 or step == steps):
            returns = evaluate(act, states, env_id, eval_episodes, seed=step, mode=eval_mode)
            entry.update(returns.summary())
        record(entry)
    return TrainResult(algorithm, config, states, runs, history, env_id)


def _host(metrics: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in metrics.items()}


def _batched_act(algo: Algorithm, config: Any) -> Callable[[Any, jax.Array, jax.Array, str], jax.Array]:
    """act over runs: states [R, ...], obs [R, E, O], keys [R] -> unit-box actions [R, E, A]."""

    def act(states: Any, obs: jax.Array, keys: jax.Array, mode: str) -> jax.Array:
        return jax.vmap(lambda s, o, k: algo.act(config, s, o, k, mode))(states, obs, keys)

    return jax.jit(act, static_argnames="mode")
