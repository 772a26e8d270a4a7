"""Training throughput of BC and BRAC at the reference sizes, against this machine's matmul ceiling.

Reference sizes (BRAC paper): batch 256, critics 300-300 (two), policy 200-200, Hopper dims (obs 11,
action 3). For each configuration: updates/s for 1 seed and for 8 vmapped seeds (after warm-up,
compile time reported separately), FLOPs per update from XLA's cost analysis, achieved GFLOP/s, and
that as a fraction of the float32 matmul ceiling measured in the same run.

    python benchmarks/throughput.py [--steps 500] [--out benchmarks/results/throughput.md]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from benchmarks_common import machine_header

from brackit.algos import get_algorithm, make_config
from brackit.data import make_dataset
from brackit.train import make_train

CONFIGS: dict[str, tuple[str, dict]] = {
    "BC": ("bc", {}),
    "BRAC-v KL primal": ("brac", {"penalty": "value", "divergence": "kl", "form": "primal"}),
    "BRAC-v MMD primal": ("brac", {"penalty": "value", "divergence": "mmd", "form": "primal"}),
    "BRAC-p KL dual": ("brac", {"penalty": "policy", "divergence": "kl", "form": "dual"}),
    "BRAC-p W dual": ("brac", {"penalty": "policy", "divergence": "w", "form": "dual"}),
}


def matmul_ceiling(size: int = 2048, repeats: int = 10) -> float:
    """Best float32 GFLOP/s of a jitted [size, size] @ [size, size] matmul."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def synthetic_dataset(size: int = 100_000, obs_dim: int = 11, action_dim: int = 3):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(size + 1, obs_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(size + 1, action_dim)).astype(np.float32)
    arrays = {
        "obs": obs[:-1],
        "action": action[:-1],
        "reward": rng.normal(size=size).astype(np.float32),
        "discount": (rng.uniform(size=size) > 0.001).astype(np.float32),
        "next_obs": obs[1:],
        "next_action": action[1:],
        "next_action_valid": np.ones(size, bool),
        "episode_id": np.zeros(size, np.int32),
        "timeout": np.zeros(size, bool),
    }
    return make_dataset(arrays, path="<synthetic>", source_format="synthetic")


def flops_per_update(algo, config, state, dataset) -> float:
    batch = dataset.sample(jax.random.key(0), config.batch_size)
    compiled = jax.jit(lambda s, b: algo.update(config, s, b)).lower(state, batch).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def measure(name: str, algorithm: str, overrides: dict, dataset, seeds: int, steps: int) -> dict:
    algo = get_algorithm(algorithm)
    config = make_config(algorithm, **overrides)
    fns = make_train(algo, config, dataset.card.obs_dim, dataset.card.action_dim, chunk_steps=steps)
    keys = jnp.stack([jax.random.key(i) for i in range(seeds)])
    states = jax.jit(jax.vmap(fns.init))(keys)
    chunk = jax.jit(jax.vmap(fns.chunk, in_axes=(0, None)))
    start = time.perf_counter()
    compiled = chunk.lower(states, dataset).compile()
    compile_seconds = time.perf_counter() - start
    states, _ = compiled(states, dataset)  # warm-up run
    jax.block_until_ready(states)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        states, _ = compiled(states, dataset)
        jax.block_until_ready(states)
        best = min(best, time.perf_counter() - start)
    single_state = jax.tree.map(lambda x: x[0], states)
    flops = flops_per_update(algo, config, single_state, dataset)
    return {
        "name": name,
        "seeds": seeds,
        "updates_per_s": steps * seeds / best,
        "compile_s": compile_seconds,
        "gflop_per_update": flops / 1e9,
        "gflops": flops * steps * seeds / best / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500, help="updates per timed chunk (per seed)")
    parser.add_argument("--only", nargs="*", help="subset of configurations")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    ceiling = matmul_ceiling()
    print(f"float32 matmul ceiling: {ceiling:.1f} GFLOP/s", flush=True)
    dataset = synthetic_dataset()
    rows = []
    for name, (algorithm, overrides) in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        for seeds in (1, 8):
            steps = args.steps if seeds == 1 else max(args.steps // 4, 50)
            row = measure(name, algorithm, overrides, dataset, seeds, steps)
            rows.append(row)
            print(row, flush=True)
    ceiling_after = matmul_ceiling()
    command = "python benchmarks/throughput.py" + (f" --steps {args.steps}" if args.steps != 500 else "")
    lines = [
        "# Training throughput: BC and BRAC",
        "",
        machine_header(command),
        f"- load average before the run: {load_before:.2f}",
        "",
        "Reference sizes: batch 256, two critics 300-300, policy 200-200 (dual critic 300-300), Hopper dims",
        "(obs 11, action 3); a synthetic 100k-transition dataset on the device, batches sampled inside the",
        "scan. Updates/s counts every seed's updates. FLOPs per update come from XLA's cost analysis of one",
        "jitted update; the ceiling is the best float32 2048x2048 matmul rate measured in the same run",
        f"({ceiling:.1f} GFLOP/s before the table, {ceiling_after:.1f} after).",
        "",
        "| configuration | seeds | updates/s | compile (s) | GFLOP/update | GFLOP/s | % of ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['seeds']} | {row['updates_per_s']:,.0f} | {row['compile_s']:.1f} | "
            f"{row['gflop_per_update']:.3f} | {row['gflops']:.1f} | {100 * row['gflops'] / ceiling:.0f}% |"
        )
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
