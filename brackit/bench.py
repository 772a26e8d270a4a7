"""Training throughput of named algorithm configurations against this machine's float32 matmul ceiling.

One core for ``brackit bench``, ``benchmarks/throughput.py`` (BC and BRAC at the BRAC paper's sizes) and
``benchmarks/throughput_family.py`` (BEAR, BCQ, TD3+BC and ReBRAC at 2x256, against d3rlpy's rates).

Each configuration is timed exactly as ``brackit.train`` runs a chunk: ``jit(over_runs(chunk))``, vmapped
over the seeds (a single seed runs unbatched), the dataset and the step counter unbatched (so TD3+BC's
delayed actor stays a ``lax.cond`` branch), batches sampled on the device inside the ``lax.scan``; rows with
several devices shard the seeds across them as ``train(devices=N)`` does. Compile time is reported
separately; the update rate is the best (and the median) of ``repeats`` timed chunks after one warm-up
chunk. FLOPs per update come from XLA's cost analysis of one jitted update: a scan's cost analysis counts
its body once, so the update is compiled alone for that.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from brackit import xla_setup
from brackit.algos import get_algorithm, make_config
from brackit.data import OfflineDataset, make_dataset
from brackit.errors import ConfigError
from brackit.provenance import machine_header
from brackit.train import RunPlacement, initial_states, make_train, over_runs, run_grid


class Preset(NamedTuple):
    """A named benchmark configuration: the algorithm, its config overrides, the (obs, action)
    dimensions of the synthetic dataset, and d3rlpy's updates/s for it where known (d3rlpy 2.8.1 on a
    2-core CPU, measured with benchmarks/peer_d3rlpy.py in an earlier session; the runs of
    ``benchmarks/results/throughput_family.md`` measure it again beside brackit's)."""

    algorithm: str
    overrides: Mapping[str, Any]
    dims: tuple[int, int]
    d3rlpy_updates_per_s: float | None = None


HOPPER_DIMS = (11, 3)
HALFCHEETAH_DIMS = (17, 6)
_H256 = (256, 256)
_FAMILY_NETS = {"critic_hidden": _H256, "actor_hidden": _H256, "batch_size": 256}

PRESETS: dict[str, Preset] = {
    # BRAC paper sizes (the configs' defaults): batch 256, two critics 300-300, policy 200-200.
    "BC": Preset("bc", {}, HOPPER_DIMS),
    "BRAC-v KL primal": Preset(
        "brac", {"penalty": "value", "divergence": "kl", "form": "primal"}, HOPPER_DIMS
    ),
    "BRAC-v MMD primal": Preset(
        "brac", {"penalty": "value", "divergence": "mmd", "form": "primal"}, HOPPER_DIMS
    ),
    "BRAC-p KL dual": Preset("brac", {"penalty": "policy", "divergence": "kl", "form": "dual"}, HOPPER_DIMS),
    "BRAC-p W dual": Preset("brac", {"penalty": "policy", "divergence": "w", "form": "dual"}, HOPPER_DIMS),
    # The family at every network 2x256, HalfCheetah dims; 10 target samples (BCQ, BEAR), 5 MMD samples.
    "bear": Preset(
        "bear",
        {
            **_FAMILY_NETS,
            "vae_hidden": _H256,
            "num_target_samples": 10,
            "num_divergence_samples": 5,
            "warm_start_steps": 0,
        },
        HALFCHEETAH_DIMS,
        31.0,
    ),
    "bcq": Preset(
        "bcq", {**_FAMILY_NETS, "vae_hidden": _H256, "num_target_samples": 10}, HALFCHEETAH_DIMS, 30.0
    ),
    "td3bc": Preset("td3bc", _FAMILY_NETS, HALFCHEETAH_DIMS, 100.0),
    "rebrac": Preset("rebrac", _FAMILY_NETS, HALFCHEETAH_DIMS),
}

TINY = {"hidden": (8, 8), "dataset_size": 1_000, "ceiling_size": 256}
"""``brackit bench --tiny``: 8-8 networks, 1,000 transitions, a 256x256 ceiling matmul (smoke tests only)."""


def resolve_presets(names: Sequence[str] | None) -> list[str]:
    """The preset names to run (all when ``names`` is empty or None); unknown names are a ConfigError."""
    if not names:
        return list(PRESETS)
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        valid = ", ".join(repr(name) for name in PRESETS)
        raise ConfigError(f"unknown benchmark preset {unknown[0]!r}; valid presets: {valid}")
    return list(dict.fromkeys(names))


def matmul_ceiling(size: int = 2048, repeats: int = 10) -> float:
    """Best float32 GFLOP/s of a jitted [size, size] @ [size, size] matmul. On CPU, the best of XLA's
    default kernels (YNNPACK) and the Eigen dots brackit trains with (``brackit.xla_setup``), timed in turn:
    the ceiling is the faster one, whichever the training chunks use."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmuls = [jax.jit(lambda x, y: x @ y)]
    if jax.default_backend() == "cpu":
        matmuls.append(jax.jit(lambda x, y: x @ y, compiler_options={xla_setup.CPU_DOTS_OPTION: ""}))
    for matmul in matmuls:
        jax.block_until_ready(matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        for matmul in matmuls:
            start = time.perf_counter()
            jax.block_until_ready(matmul(a, b))
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def synthetic_dataset(size: int, obs_dim: int, action_dim: int, seed: int = 0) -> OfflineDataset:
    """One ``size``-transition episode of Gaussian observations and uniform [-1, 1] actions, ending in a
    timeout (its last next_action is invalid), held on the device."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(size + 1, obs_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(size, action_dim)).astype(np.float32)
    arrays = {
        "obs": obs[:-1],
        "action": action,
        "reward": rng.normal(size=size).astype(np.float32),
        "discount": np.ones(size, np.float32),
        "next_obs": obs[1:],
        "next_action": np.concatenate([action[1:], action[-1:]]),
        "next_action_valid": np.r_[np.ones(size - 1, bool), False],
        "episode_id": np.zeros(size, np.int32),
        "timeout": np.r_[np.zeros(size - 1, bool), True],
    }
    return make_dataset(arrays, path="<synthetic>", source_format="benchmark")


def update_flops(algorithm: str, config: Any, dataset: OfflineDataset) -> float:
    """FLOPs of one update (XLA's cost analysis of the jitted, unscanned ``update``)."""
    algo = get_algorithm(algorithm)
    state = algo.init(config, jax.random.key(0), dataset.card.obs_dim, dataset.card.action_dim)
    batch = dataset.sample(jax.random.key(1), config.batch_size)
    compiled = jax.jit(lambda s, b: algo.update(config, s, b)).lower(state, batch).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


def bench_config(algorithm: str, overrides: Mapping[str, Any], hidden: tuple[int, ...] | None = None) -> Any:
    """The algorithm's config with ``overrides``; ``hidden`` (if given) replaces every hidden-layer field
    (``hidden``, ``critic_hidden``, ``vae_hidden``, ...), to shrink a preset for smoke tests."""
    config = make_config(algorithm, **overrides)
    if hidden is None:
        return config
    names = [f.name for f in dataclasses.fields(config) if f.name == "hidden" or f.name.endswith("_hidden")]
    return dataclasses.replace(config, **dict.fromkeys(names, tuple(hidden)))


def measure(
    algorithm: str,
    overrides: Mapping[str, Any],
    dataset: OfflineDataset,
    num_seeds: int,
    steps: int,
    repeats: int,
    *,
    hidden: tuple[int, ...] | None = None,
    devices: int = 1,
) -> dict[str, float]:
    """Times ``steps``-update chunks of ``num_seeds`` vmapped runs (seeds 0, 1, ...), as ``brackit.train``
    runs them: with ``devices`` > 1 the runs are sharded across that many devices (``RunPlacement``), the
    dataset replicated.

    Returns ``compile_s``, ``updates_per_s`` (best chunk; every seed's updates count),
    ``median_updates_per_s``, ``gflop_per_update`` (one seed's update) and ``gflops`` (at the best rate).
    """
    if num_seeds < 1 or steps < 1 or repeats < 1:
        raise ConfigError(f"seeds ({num_seeds}), steps ({steps}) and repeats ({repeats}) must be >= 1")
    config = bench_config(algorithm, overrides, hidden)
    fns = make_train(
        get_algorithm(algorithm), config, dataset.card.obs_dim, dataset.card.action_dim, chunk_steps=steps
    )
    placement = RunPlacement.create(devices, num_seeds)
    states = placement.shard(initial_states(fns, run_grid(range(num_seeds), None)))
    dataset = placement.replicate(dataset)
    chunk = placement.jit(over_runs(fns.chunk, num_seeds))  # exactly as brackit.train runs it
    start = time.perf_counter()
    compiled = chunk.lower(states, dataset, jnp.int32(0)).compile()
    compile_s = time.perf_counter() - start
    times = []
    for index in range(repeats + 1):  # chunk 0 warms up
        step = jnp.int32(index * steps)  # unbatched, as brackit.train passes it
        start = time.perf_counter()
        states, _ = jax.block_until_ready(compiled(states, dataset, step))
        if index:
            times.append(time.perf_counter() - start)
    flops = update_flops(algorithm, config, dataset)
    best = min(times)
    return {
        "seeds": num_seeds,
        "devices": devices,
        "steps": steps,
        "compile_s": compile_s,
        "updates_per_s": steps * num_seeds / best,
        "median_updates_per_s": steps * num_seeds / float(np.median(times)),
        "gflop_per_update": flops / 1e9,
        "gflops": flops * steps * num_seeds / best / 1e9,
    }


def default_device_counts() -> tuple[int, ...]:
    """1, and every device of the default backend when there are several (on CPU, one per core once
    ``brackit.xla_setup.request_host_devices`` ran before JAX started)."""
    return tuple(dict.fromkeys((1, jax.device_count())))


def chunk_steps_for(steps: int, num_seeds: int) -> int:
    """Updates per chunk: ``steps`` with one seed; with S > 1 seeds 2/S of that (at least 10, at most
    ``steps``), so a timed chunk does about twice the single-seed work instead of S times."""
    return steps if num_seeds == 1 else min(steps, max(10, steps * 2 // num_seeds))


def run_bench(
    names: Sequence[str] | None = None,
    seed_counts: Sequence[int] = (1, 8),
    steps: int = 100,
    repeats: int = 3,
    *,
    hidden: tuple[int, ...] | None = None,
    dataset_size: int = 100_000,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    devices: Sequence[int] = (1,),
    ceiling: Callable[[], float] | None = None,
) -> list[dict[str, Any]]:
    """One row per (preset, seed count, device count), in that order: ``measure``'s numbers plus ``name``
    and ``d3rlpy_updates_per_s`` (None where unknown). A device count runs only with seed counts it
    divides (so 1 seed runs on 1 device). ``steps`` is the chunk length with one seed (see
    ``chunk_steps_for``); ``hidden`` and ``dataset_size`` shrink every preset for smoke tests;
    ``on_row`` sees each row as it is measured. With ``ceiling`` (a matmul-ceiling measurement, GFLOP/s)
    it runs just before and just after each row, and the row's ``ceiling_gflops`` is the larger: on a
    shared machine whose speed drifts, the row's own denominator for "% of ceiling"."""
    names = resolve_presets(names)
    datasets: dict[tuple[int, int], OfflineDataset] = {}
    rows = []
    for name in names:
        preset = PRESETS[name]
        if preset.dims not in datasets:
            datasets[preset.dims] = synthetic_dataset(dataset_size, *preset.dims)
        for count in seed_counts:
            for device_count in dict.fromkeys(devices):
                if count % device_count:
                    continue
                ceiling_before = ceiling() if ceiling is not None else None
                result = measure(
                    preset.algorithm,
                    preset.overrides,
                    datasets[preset.dims],
                    count,
                    chunk_steps_for(steps, count),
                    repeats,
                    hidden=hidden,
                    devices=device_count,
                )
                row = {"name": name, **result, "d3rlpy_updates_per_s": preset.d3rlpy_updates_per_s}
                if ceiling is not None:
                    row["ceiling_gflops"] = max(ceiling_before, ceiling())
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    ceiling_before: float,
    ceiling_after: float,
    peer: Mapping[str, float] | None = None,
    peer_runs: Mapping[str, float] | None = None,
) -> str:
    """The rows as a markdown table; "% of ceiling" uses the row's own ``ceiling_gflops`` where it has one
    (then a "ceiling GFLOP/s" column shows it), else the larger (less disturbed) of the run's two ceilings.
    "vs d3rlpy" divides by the preset's quoted d3rlpy rate; with ``peer`` (preset name -> d3rlpy updates/s
    measured on this machine, ``benchmarks/peer_d3rlpy.py``) a "vs d3rlpy here" column divides by that.
    ``peer_runs`` (d3rlpy's total rate with several runs side by side, one per core) is the divisor for
    rows with more than one seed, where given."""
    ceiling = max(ceiling_before, ceiling_after)
    per_row = any("ceiling_gflops" in row for row in rows)
    header = (
        "| configuration | seeds | devices | steps/chunk | compile s | updates/s (median) | GFLOP/update |"
        " GFLOP/s |" + (" ceiling GFLOP/s |" if per_row else "") + " % of ceiling | vs d3rlpy |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if per_row else "")
    if peer is not None:
        header, rule = header + " d3rlpy here (updates/s) | vs d3rlpy here |", rule + "---|---|"
    lines = [header, rule]
    for row in rows:
        reference = row.get("d3rlpy_updates_per_s")
        versus = f"{row['updates_per_s'] / reference:.2f}x" if reference else "-"
        line = (
            f"| {row['name']} | {row['seeds']} | {row.get('devices', 1)} | {row['steps']} |"
            f" {row['compile_s']:.1f} | {row['updates_per_s']:,.1f} ({row['median_updates_per_s']:,.1f}) |"
            f" {row['gflop_per_update']:.3f} | {row['gflops']:.1f} |"
            + (f" {row.get('ceiling_gflops', ceiling):.1f} |" if per_row else "")
            + f" {100 * row['gflops'] / row.get('ceiling_gflops', ceiling):.0f}% | {versus} |"
        )
        if peer is not None:
            here = peer.get(row["name"])
            if row["seeds"] > 1 and peer_runs and row["name"] in peer_runs:
                here = peer_runs[row["name"]]
            line += f" {here:.1f} | {row['updates_per_s'] / here:.2f}x |" if here else " - | - |"
        lines.append(line)
    return "\n".join(lines)


def bench_report(
    names: Sequence[str] | None,
    seed_counts: Sequence[int],
    steps: int,
    repeats: int,
    *,
    command: str | None = None,
    title: str = "Training throughput",
    notes: Sequence[str] = (),
    footer: Sequence[str] = (),
    tiny: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    peer: Mapping[str, float] | None = None,
    peer_runs: Mapping[str, float] | None = None,
    devices: Sequence[int] | None = None,
) -> str:
    """A markdown report: title, machine header, load averages and matmul ceilings before and after,
    ``notes``, the table of ``run_bench`` and ``footer``. ``tiny`` shrinks everything (``TINY``);
    ``peer`` and ``peer_runs`` add the "vs d3rlpy here" column (see ``markdown_table``). ``devices``: the
    device counts to shard the seeds across (default ``default_device_counts()``).
    ``command`` is the report's provenance line (default: the equivalent ``brackit bench`` call)."""
    devices = default_device_counts() if devices is None else devices
    if command is None:
        options = [
            *(f"--only {shlex.quote(name)}" for name in names or ()),
            *(f"--seeds {s}" for s in seed_counts),
        ]
        options += [f"--devices {count}" for count in devices]
        options += [f"--steps {steps}", f"--repeats {repeats}", *(["--tiny"] if tiny else [])]
        command = " ".join(["brackit bench", *options])
    names = resolve_presets(names)  # fail on a bad name before measuring anything
    # 2048^3 keeps a CPU busy for ~0.1 s; an accelerator finishes it in microseconds, launch-bound.
    ceiling_size = TINY["ceiling_size"] if tiny else (2048 if jax.default_backend() == "cpu" else 8192)
    load_before = os.getloadavg()
    ceiling_before = matmul_ceiling(ceiling_size)
    rows = run_bench(
        names,
        seed_counts,
        steps,
        repeats,
        hidden=TINY["hidden"] if tiny else None,
        dataset_size=TINY["dataset_size"] if tiny else 100_000,
        on_row=on_row,
        devices=devices,
        ceiling=lambda: matmul_ceiling(ceiling_size, repeats=5),
    )
    ceiling_after = matmul_ceiling(ceiling_size)
    load_after = os.getloadavg()
    lines = [
        f"# {title}",
        "",
        machine_header(command),
        f"- load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)},"
        f" after {' '.join(f'{x:.2f}' for x in load_after)} (on a shared machine other jobs take cores"
        " and distort every number below)",
        f"- float32 matmul ceiling (jitted {ceiling_size}x{ceiling_size} @ {ceiling_size}x{ceiling_size},"
        f" best of 10): {ceiling_before:.1f} GFLOP/s before, {ceiling_after:.1f} GFLOP/s after the runs;"
        " each row's % of ceiling uses its own ceiling, the larger of two measured (best of 5) just before"
        " and just after that row, since this machine's speed may drift during the run"
        + (
            ""
            if jax.default_backend() == "cpu"
            else " (default matmul precision, as in the updates: TF32 on NVIDIA)"
        ),
    ]
    if jax.default_backend() == "cpu":
        options = xla_setup.training_compiler_options("cpu")
        lines.append(
            "- XLA:CPU dot kernels of the timed chunks: "
            + ("Eigen (`brackit.xla_setup`)" if options else "XLA's default (YNNPACK fusions)")
            + "; the ceiling is the faster of YNNPACK and Eigen on its matmul"
        )
    lines.append(
        f"- devices: {jax.device_count()} {jax.default_backend()} device(s) in this process; rows with more"
        " than one shard the seeds across them (`brackit.train.RunPlacement`)"
        + (
            ", each device one share of this machine's cores (`brackit.xla_setup`)"
            if jax.default_backend() == "cpu" and jax.device_count() > 1
            else ""
        )
    )
    if tiny:
        lines.append("- --tiny: 8-8 networks and 1,000 transitions; a smoke test, the numbers mean nothing")
    for block in (notes, [markdown_table(rows, ceiling_before, ceiling_after, peer, peer_runs)], footer):
        if block:
            lines += ["", *block]
    return "\n".join(lines) + "\n"
