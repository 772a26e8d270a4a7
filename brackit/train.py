"""The training loop: chunks of updates as one jitted ``lax.scan``, vmapped over runs (seeds x sweep values).

``make_train`` returns pure functions of one run; ``train`` is the thin driver that vmaps them over runs,
alternates training chunks with evaluation, and records a metrics history. Nothing is logged inside jit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit import xla_setup
from brackit.algos import Algorithm, get_algorithm, make_config
from brackit.data import OfflineDataset, load_dataset
from brackit.errors import BrackitError, ConfigError
from brackit.evaluation import evaluate
from brackit.nets import unscale_action
from brackit.progress import TrainProgressBar
from brackit.scores import dataset_reference
from brackit.types import ObsStats

OBS_STD_EPS = 1e-3
"""Added to the std of the observation statistics (TD3+BC's ``normalize_states``)."""


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


def dataset_obs_stats(dataset: OfflineDataset, eps: float = OBS_STD_EPS) -> ObsStats:
    """Mean and std + ``eps`` of the dataset's ``obs`` over its transitions (not ``next_obs``, as TD3+BC's
    reference), computed once on the host in float64 and stored as float32."""
    obs = np.asarray(dataset.transitions.obs, np.float64)
    return ObsStats(
        mean=np.asarray(obs.mean(axis=0), np.float32), std=np.asarray(obs.std(axis=0) + eps, np.float32)
    )


def normalize_obs(dataset: OfflineDataset, stats: ObsStats) -> OfflineDataset:
    """``obs`` and ``next_obs`` mapped to ``(x - mean) / std`` (as ``to_unit_box`` maps the actions)."""
    t = dataset.transitions
    t = t.replace(obs=stats.normalize(t.obs), next_obs=stats.normalize(t.next_obs))
    return dataset.replace(transitions=t)


@dataclasses.dataclass(frozen=True)
class TrainFunctions:
    """Pure functions of one run; vmap them over runs. ``chunk(state, dataset, step=None)`` and
    ``pretrain_chunk`` return the new state and the chunk's metrics averaged over its steps (flat dict,
    namespaced keys).

    ``step``, when given, is the number of training updates done before the chunk, passed *unbatched*
    (``in_axes=None`` under vmap) and written into ``state.step``: all runs share it, so a ``lax.cond`` on
    the step counter (TD3+BC's delayed actor) stays a real branch under vmap instead of becoming a
    select that computes both sides."""

    init: Callable[[jax.Array], Any]
    chunk: Callable[..., tuple[Any, dict[str, jax.Array]]]
    pretrain_chunk: Callable[..., tuple[Any, dict[str, jax.Array]]]
    chunk_steps: int


def make_train(
    algorithm: Algorithm, config: Any, obs_dim: int, action_dim: int, chunk_steps: int
) -> TrainFunctions:
    """Pure ``init(key)`` and ``chunk(state, dataset)``: ``chunk_steps`` updates, batches sampled on device."""

    def init(key: jax.Array) -> Any:
        return algorithm.init(config, key, obs_dim, action_dim)

    def scanned(
        update: Callable[..., Any], counts_steps: bool, batch_size: int, batches: int = 1
    ) -> Callable[..., Any]:
        def run(state: Any, dataset: OfflineDataset, step: Any = None) -> tuple[Any, dict[str, jax.Array]]:
            if counts_steps and step is not None and hasattr(state, "step"):
                state = state.replace(step=jnp.asarray(step, state.step.dtype))

            def body(state, _):
                key, batch_key = jax.random.split(state.key)
                batch = dataset.sample(batch_key, batch_size * batches)
                if batches > 1:  # [K, B, ...]: the update's batches (Algorithm.batches_per_update)
                    batch = jax.tree.map(lambda x: x.reshape(batches, batch_size, *x.shape[1:]), batch)
                state, metrics = update(config, state.replace(key=key), batch)
                return state, metrics

            state, metrics = jax.lax.scan(body, state, None, length=chunk_steps)
            return state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)

        return run

    pretrain = algorithm.pretrain_update or (lambda config, state, batch: (state, {}))
    pretrain_batch = (algorithm.pretrain_batch_size or (lambda config: config.batch_size))(config)
    chunk = scanned(algorithm.update, True, config.batch_size, algorithm.batches_per_update(config))
    return TrainFunctions(init, chunk, scanned(pretrain, False, pretrain_batch), chunk_steps)


def over_runs(chunk: Callable[..., Any], num_runs: int) -> Callable[..., Any]:
    """``chunk`` over the leading run axis of the states (dataset and step shared): ``vmap``, except with
    a single run, where the run axis is dropped and added back around the unbatched chunk. Same
    computation, different program: vmapping a batch of one turns every matmul into a batch-1
    ``dot_general``, which XLA:CPU ran slower than the plain one for every preset in the median chunk
    (``benchmarks/experiments/single_run_ab.py``, ``benchmarks/results/experiments/single_run_ab.md``)."""
    if num_runs != 1:
        return jax.vmap(chunk, in_axes=(0, None, None))

    def single(states: Any, dataset: OfflineDataset, step: Any) -> tuple[Any, dict[str, jax.Array]]:
        states, metrics = chunk(jax.tree.map(lambda leaf: leaf[0], states), dataset, step)
        return jax.tree.map(lambda leaf: leaf[None], (states, metrics))

    return single


@dataclasses.dataclass
class TrainResult:
    """The final states (every leaf has a leading run axis R), the run labels and the history."""

    algorithm: str
    config: Any
    states: Any
    runs: list[dict[str, Any]]
    history: list[dict[str, Any]]
    env_id: str | None
    obs_stats: ObsStats | None = None
    """The observation statistics the runs were trained with (``normalize_obs``); None: raw observations."""

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


def initial_states(fns: TrainFunctions, runs: Sequence[dict[str, Any]]) -> Any:
    """Initial states for these runs (``run_grid``'s dicts), stacked on a leading run axis: ``fns.init``
    vmapped over the runs' seeds as one jitted program, then each run's sweep values set (``apply_sweep``).
    ``run_grid(range(num_seeds), None)`` gives ``num_seeds`` runs of seeds 0, 1, ..."""
    keys = jnp.stack([jax.random.key(run["seed"]) for run in runs])
    sweep_names = sorted(name for name in runs[0] if name != "seed")
    return apply_sweep(jax.jit(jax.vmap(fns.init))(keys), list(runs), sweep_names)


@dataclasses.dataclass
class Progress:
    """Where a run stands after a chunk: its phase ('pretrain' or 'train'), the steps done in that phase,
    the states (leading run axis) and the history so far. A checkpoint stores exactly this."""

    phase: str
    step: int
    states: Any
    history: list[dict[str, Any]]
    to_host: Callable[[Any], Any] = lambda tree: tree
    """Makes a tree of (possibly sharded) arrays whole on this host (``RunPlacement.to_host``); across
    processes a collective, so every process must call it at the same point."""
    obs_stats: ObsStats | None = None
    """The observation statistics of ``normalize_obs`` (shared by all runs); a checkpoint stores them."""

    def host_states(self) -> Any:
        """The states, every run readable on this host (e.g. for a checkpoint); PRNG keys stay typed."""
        return self.to_host(self.states)


class NonFiniteError(BrackitError):
    """A training metric became NaN or inf; the message names the step, the metric and the run."""


def check_finite(entry: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    for name, value in entry.items():
        array = np.asarray(value)
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            run = runs[int(np.argmax(~np.isfinite(array).reshape(len(runs), -1).all(axis=1)))]
            raise NonFiniteError(
                f"non-finite {name} at {entry['phase']} step {entry['step']} (run {run}); "
                "the last checkpoint before it is intact"
            )


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
    eval_mode: str | None = None,
    env_id: str | None = None,
    logger: Callable[[dict[str, Any]], None] | None = None,
    on_chunk: Callable[[Progress], None] | None = None,
    resume: Progress | None = None,
    devices: int | str | Sequence[jax.Device] | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> TrainResult:
    """Trains ``algorithm`` on a dataset (object or path) for every seed x sweep value as one program.

    ``config`` is the algorithm's config (or None for defaults, with ``overrides`` as fields). ``sweep``
    maps scalar state fields to values (e.g. ``{"alpha": [0.1, 1.0]}``). Evaluation runs every
    ``eval_every`` steps and at the end when ``eval_every`` > 0 and an env id is known. A pretraining
    phase (e.g. BRAC's behavior policy) runs first, in chunks of the same size. ``eval_mode`` is the act
    mode of the evaluation; None: the algorithm's reference rule (``Algorithm.eval_mode``).

    ``progress`` shows a progress bar (``brackit.progress``: the pretraining phase, then the training steps,
    with rates, the latest loss and return); None: when standard error is a terminal, False: never.

    ``on_chunk(progress)`` is called after every chunk (checkpointing hooks in here); ``resume`` continues
    from such a progress record, giving bit-identical results to an uninterrupted run. A non-finite
    metric raises ``NonFiniteError`` before ``on_chunk`` sees that chunk.

    ``devices`` (a count, a list, or ``"auto"``; None: one device) shards the run axis across devices with
    ``jax.sharding``: each device trains its share of the runs, the dataset is replicated. ``"auto"``
    takes the most devices that divide the number of runs; on CPU, ``brackit.xla_setup`` makes one
    device per core (the CLI does so), which runs several seeds faster than one device does. After
    ``jax.distributed.initialize`` (``brackit train --coordinator``) the device list spans processes
    (hosts): every process runs this function with the same arguments, global arrays are built from the
    identical host copies each process holds, and metrics, evaluation states and checkpoints are
    gathered to every host with ``process_allgather`` (``RunPlacement.to_host``); only process 0 writes
    files (``brackit.run``). ``tests/test_multihost.py`` runs it as two processes on one machine.
    """
    algo = get_algorithm(algorithm)
    eval_mode = eval_mode or algo.eval_mode
    if config is None:
        config = make_config(algorithm, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    dataset = data if isinstance(data, OfflineDataset) else load_dataset(data, env_id=env_id)
    env_id = env_id or dataset.card.env_id
    reference = dataset_reference(dataset.card.extra)  # the dataset's own score references, if any
    dataset = to_unit_box(dataset)
    obs_stats = None
    if getattr(config, "normalize_obs", False):
        # on resume, the statistics the states were trained with (the dataset's, as computed then)
        resumed = resume.obs_stats if resume is not None else None
        obs_stats = resumed if resumed is not None else dataset_obs_stats(dataset)
        dataset = normalize_obs(dataset, obs_stats)
    if steps <= 0 or chunk_steps <= 0:
        raise ConfigError("steps and chunk_steps must be positive")
    chunk_steps = min(chunk_steps, steps)
    if steps % chunk_steps or (eval_every and eval_every % chunk_steps):
        raise ConfigError(
            f"steps ({steps}) and eval_every ({eval_every}) must be multiples of chunk_steps ({chunk_steps})"
        )
    runs = run_grid(seeds, sweep)
    placement = RunPlacement.create(devices, len(runs))
    dataset = placement.replicate(dataset)
    obs_dim, action_dim = dataset.card.obs_dim, dataset.card.action_dim
    if resume is None:
        fns = make_train(algo, config, obs_dim, action_dim, chunk_steps)
        states = initial_states(fns, runs)
        record = Progress("pretrain", 0, placement.shard(states), [], placement.to_host, obs_stats)
    else:
        record = dataclasses.replace(
            resume,
            states=placement.shard(resume.states),
            history=list(resume.history),
            to_host=placement.to_host,
            obs_stats=obs_stats,
        )

    def run_phase(phase: str, total: int, evaluate_every: int) -> None:
        if record.phase == "train" and phase == "pretrain":
            return  # finished before the resume point
        done = record.step if record.phase == phase else 0
        act = batched_act(algo, config, obs_stats)
        compiled: dict[int, Callable[..., Any]] = {}
        while done < total:
            length = min(chunk_steps, total - done)
            if length not in compiled:
                fns = make_train(algo, config, obs_dim, action_dim, length)
                body = fns.pretrain_chunk if phase == "pretrain" else fns.chunk
                compiled[length] = placement.jit(over_runs(body, len(runs)))
            start = time.perf_counter()
            states, metrics = compiled[length](record.states, dataset, jnp.int32(done))
            metrics = _host(placement.to_host(jax.block_until_ready(metrics)))  # waits for the chunk
            done += length
            seconds = time.perf_counter() - start
            entry = {"phase": phase, "step": done, **metrics, "time/seconds": seconds}
            entry["time/updates_per_s"] = length * len(runs) / max(seconds, 1e-9)
            check_finite(entry, runs)
            if env_id is not None and evaluate_every and (done % evaluate_every == 0 or done == total):
                acting = placement.to_host(states) if placement.multi_process else states
                eval_start = time.perf_counter()
                entry.update(
                    evaluate(
                        act, acting, env_id, eval_episodes, seed=done, mode=eval_mode, reference=reference
                    ).summary()
                )
                entry["time/eval_seconds"] = time.perf_counter() - eval_start
            record.phase, record.step, record.states = phase, done, states
            record.history.append(entry)
            if logger is not None:
                logger(entry)
            if on_chunk is not None:
                on_chunk(record)

    pretrain_steps = algo.pretrain_steps(config)
    warm_start = getattr(config, "warm_start_steps", 0)
    if warm_start and steps <= warm_start:
        warnings.warn(
            f"{algorithm}: steps ({steps}) <= warm_start_steps ({warm_start}): the actor never leaves its "
            "warm start (it only matches the behavior policy); lower warm_start_steps or train longer",
            stacklevel=2,
        )
    show = sys.stderr.isatty() if progress is None else progress
    with TrainProgressBar(steps, pretrain_steps) if show else contextlib.nullcontext() as bar:
        if bar is not None:
            logger = _chain(bar.update, logger)
        run_phase("pretrain", pretrain_steps, 0)
        if record.phase == "pretrain":
            record.phase, record.step = "train", 0
        run_phase("train", steps, eval_every)
    return TrainResult(algorithm, config, record.states, runs, record.history, env_id, obs_stats)


@dataclasses.dataclass(frozen=True)
class RunPlacement:
    """Where the runs live: one device (``mesh`` None) or a 1-D mesh whose ``runs`` axis shards the
    leading run axis of every state leaf and metric; the dataset is replicated on every device."""

    mesh: jax.sharding.Mesh | None

    @classmethod
    def create(cls, devices: int | str | Sequence[jax.Device] | None, num_runs: int) -> RunPlacement:
        available = jax.devices()
        if isinstance(devices, str):
            if devices != "auto":
                raise ConfigError(
                    f"devices={devices!r}: expected a device count, a list of devices or 'auto'"
                )
            devices = max(count for count in range(1, len(available) + 1) if num_runs % count == 0)
        if devices is None or (isinstance(devices, int) and devices == 1):
            return cls(None)
        if isinstance(devices, int):
            if not 1 <= devices <= len(available):
                raise ConfigError(
                    f"devices={devices}: this process sees {len(available)} {available[0].platform} "
                    f"device(s); choose 1..{len(available)}"
                )
            devices = available[:devices]
        devices = list(devices)
        if num_runs % len(devices):
            raise ConfigError(
                f"devices={len(devices)} needs the number of runs (seeds x sweep values = {num_runs}) "
                f"to be a multiple of {len(devices)}"
            )
        return cls(jax.sharding.Mesh(np.asarray(devices), ("runs",)))

    @property
    def multi_process(self) -> bool:
        """True when the mesh has devices of other processes (after ``jax.distributed.initialize``)."""
        return self.mesh is not None and any(
            device.process_index != jax.process_index() for device in self.mesh.devices.flat
        )

    def _sharding(self, spec: jax.sharding.PartitionSpec) -> jax.sharding.NamedSharding:
        assert self.mesh is not None
        return jax.sharding.NamedSharding(self.mesh, spec)

    def _put(self, tree: Any, spec: jax.sharding.PartitionSpec) -> Any:
        sharding = self._sharding(spec)
        if not self.multi_process:
            return jax.device_put(tree, sharding)
        # Every process holds the same full host copy; each builds its addressable shards from it.
        return jax.tree.map(lambda leaf: _global_array(leaf, sharding), tree)

    def shard(self, states: Any) -> Any:
        """Leading run axis split across the mesh (a no-op on one device)."""
        if self.mesh is None:
            return states
        return self._put(states, jax.sharding.PartitionSpec("runs"))

    def replicate(self, tree: Any) -> Any:
        if self.mesh is None:
            return tree
        return self._put(tree, jax.sharding.PartitionSpec())

    @property
    def platform(self) -> str:
        """The platform the runs are placed on (``cpu``, ``gpu``, ...)."""
        return jax.default_backend() if self.mesh is None else self.mesh.devices.flat[0].platform

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``jax.jit`` whose outputs (states and per-run metrics) keep the run axis sharded, compiled with
        brackit's training options for the platform (``brackit.xla_setup``: Eigen dots on CPU)."""
        if self.mesh is None:
            return xla_setup.training_jit(fn, self.platform)
        return xla_setup.training_jit(
            fn, self.platform, out_shardings=self._sharding(jax.sharding.PartitionSpec("runs"))
        )

    def to_host(self, tree: Any) -> Any:
        """Every leaf whole (all runs) on this process: host numpy copies by ``process_allgather`` across
        processes (a collective: call it on every process), the tree itself otherwise (one process can
        read all its shards). Typed PRNG keys come back as keys."""
        if not self.multi_process:
            return tree
        from jax.experimental import multihost_utils

        def gather(leaf: Any) -> Any:
            if not isinstance(leaf, jax.Array):
                return leaf
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                data = multihost_utils.process_allgather(jax.random.key_data(leaf), tiled=True)
                return jax.random.wrap_key_data(np.asarray(data), impl=jax.random.key_impl(leaf))
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

        return jax.tree.map(gather, tree)


def _global_array(leaf: Any, sharding: jax.sharding.NamedSharding) -> Any:
    """A global array over ``sharding`` from a host value that every process holds in full."""
    if not isinstance(leaf, jax.Array | np.ndarray):
        return leaf
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _global_array(np.asarray(jax.random.key_data(leaf)), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _chain(first: Callable[[dict[str, Any]], None], second: Callable[[dict[str, Any]], None] | None):
    """A logger calling ``first`` then ``second`` (if any)."""

    def log(entry: dict[str, Any]) -> None:
        first(entry)
        if second is not None:
            second(entry)

    return log


def _host(metrics: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in metrics.items()}


def batched_act(
    algo: Algorithm, config: Any, obs_stats: ObsStats | None = None
) -> Callable[[Any, jax.Array, jax.Array, str], jax.Array]:
    """act over runs: states [R, ...], raw obs [R, E, O], keys [R] -> unit-box actions [R, E, A]; with
    ``obs_stats`` (a run trained with ``normalize_obs``) the observations are normalised first."""

    def act(states: Any, obs: jax.Array, keys: jax.Array, mode: str) -> jax.Array:
        if obs_stats is not None:
            obs = obs_stats.normalize(obs)
        return jax.vmap(lambda s, o, k: algo.act(config, s, o, k, mode))(states, obs, keys)

    return jax.jit(act, static_argnames="mode")
