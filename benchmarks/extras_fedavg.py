"""Rounds per second of brackit's vmapped FedAvg round vs a plain sequential per-client Python loop.

Both run Algorithm 1 of McMahan et al. (2017) on the same model, data, partition and hyperparameters:
the vmapped version is ``brackit.extras.fedavg.server_round`` (one jitted program per round); the baseline,
written here, loops in Python over the selected clients, their epochs and minibatches and calls one jitted
SGD step per minibatch, then averages the returned weights with the n_k weights.

    nice -n 10 .venv/bin/python benchmarks/extras_fedavg.py --rounds 20 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from brackit.extras import data, fedavg
from brackit.provenance import command_line, machine_header


def _sequential_round(apply_fn, sgd_step, average, config, params, x_train, y_train, partition, rng):
    selected = rng.choice(config.num_clients, config.clients_per_round, replace=False)
    returned, weights = [], []
    for client in selected:
        rows = partition[client]
        local = params
        batch = len(rows) if config.batch_size is None else config.batch_size
        for _ in range(config.local_epochs):
            order = rng.permutation(rows)
            for start in range(0, len(order), batch):
                index = order[start : start + batch]
                local = sgd_step(local, x_train[index], y_train[index])
        returned.append(local)
        weights.append(len(rows))
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *returned)
    return average(stacked, jnp.asarray(weights, jnp.float32))


def _best_rate(run_rounds, rounds: int, repeats: int) -> tuple[float, float]:
    """(best, median) rounds per second over ``repeats`` timed blocks of ``rounds`` rounds each."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_rounds(rounds)
        rates.append(rounds / (time.perf_counter() - start))
    return max(rates), float(np.median(rates))


def benchmark(
    config: fedavg.FedConfig, rounds: int, learning_rate: float = 0.1, repeats: int = 3, warmup: int = 2
) -> dict[str, float]:
    """Rounds per second of each implementation: ``warmup`` untimed rounds (compilation, first-call
    allocations), then the best (and median) of ``repeats`` timed blocks of ``rounds`` rounds, the same
    protocol for both."""
    dataset = data.load_mnist5k()
    partition = fedavg.client_partition(config, dataset.y_train)
    clients = fedavg.stack_clients(dataset.x_train, dataset.y_train, partition)
    model = fedavg.make_model(config)
    params = model.init(jax.random.key(0), jnp.asarray(dataset.x_train[:1]))
    lr = jnp.float32(learning_rate)

    vmapped = jax.jit(lambda params, key: fedavg.server_round(model.apply, config, params, clients, key, lr))
    keys = iter(jax.random.split(jax.random.key(1), warmup + rounds * repeats))
    state = {"vmapped": params, "sequential": params}

    def run_vmapped(count: int) -> None:
        current = state["vmapped"]
        for _ in range(count):
            current = vmapped(current, next(keys))
        state["vmapped"] = jax.block_until_ready(current)

    @jax.jit
    def sgd_step(params, images, labels):
        mask = jnp.ones(labels.shape, bool)
        grads = jax.grad(fedavg.masked_loss, argnums=1)(model.apply, params, images, labels, mask)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    average = jax.jit(fedavg.weighted_average)
    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    rng = np.random.default_rng(0)
    args = (model.apply, sgd_step, average, config)

    def run_sequential(count: int) -> None:
        current = state["sequential"]
        for _ in range(count):
            current = _sequential_round(*args, current, x_train, y_train, partition, rng)
        state["sequential"] = jax.block_until_ready(current)

    run_vmapped(warmup)
    vmapped_rps, vmapped_median = _best_rate(run_vmapped, rounds, repeats)
    run_sequential(warmup)
    sequential_rps, sequential_median = _best_rate(run_sequential, rounds, repeats)
    return {
        "vmapped": vmapped_rps,
        "sequential": sequential_rps,
        "speedup": vmapped_rps / sequential_rps,
        "vmapped_median": vmapped_median,
        "sequential_median": sequential_median,
        "speedup_median": vmapped_median / sequential_median,
    }


CASES = (
    fedavg.FedConfig(model="2nn", local_epochs=5, batch_size=10),
    fedavg.FedConfig(model="2nn", local_epochs=1, batch_size=None),
    fedavg.FedConfig(model="cnn", local_epochs=5, batch_size=10, cnn_widths=(8, 16, 64)),
)


def run(
    rounds: int,
    out: pathlib.Path | None,
    command: str,
    cases: tuple[fedavg.FedConfig, ...] = CASES,
    repeats: int = 3,
) -> list[tuple[str, dict[str, float]]]:
    """Benchmark every case; write ``extras_fedavg_bench.md`` under ``out`` when given."""
    results = []
    for config in cases:
        label = f"{config.model} {config.name}, K={config.num_clients}, C={config.client_fraction}, IID"
        count = rounds if config.model == "2nn" else max(1, rounds // 5)  # the CNN's rounds are far slower
        results.append((label, {**benchmark(config, count, repeats=repeats), "rounds": count}))
        print(f"{label}: {results[-1][1]}", flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            "# FedAvg round throughput: vmapped (brackit) vs sequential per-client loop",
            "",
            machine_header(command),
            f"- load average (1, 5, 15 min) after the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            f"- protocol, the same for both implementations: 2 untimed rounds (compilation, first-call"
            f" allocations), then {repeats} timed blocks of {rounds} rounds ({max(1, rounds // 5)} for the CNN);"
            " rounds/s of the best block"
            " (median block in brackets); MNIST 5k, 4000 training images, 40 per client",
            "",
            "| configuration | vmapped rounds/s | sequential rounds/s | speedup (median) |",
            "|---|---|---|---|",
        ]
        for label, result in results:
            lines.append(
                f"| {label} | {result['vmapped']:.2f} ({result['vmapped_median']:.2f}) |"
                f" {result['sequential']:.2f} ({result['sequential_median']:.2f}) |"
                f" {result['speedup']:.1f}x ({result['speedup_median']:.1f}x) |"
            )
        (out / "extras_fedavg_bench.md").write_text("\n".join(lines) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(".venv/bin/python benchmarks/extras_fedavg.py", argv)
    run(args.rounds, args.out, command, repeats=args.repeats)


if __name__ == "__main__":
    main()
