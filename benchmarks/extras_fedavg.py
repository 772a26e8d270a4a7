"""Rounds per second of brackit's vmapped FedAvg round vs a plain sequential per-client Python loop.

Both run Algorithm 1 of McMahan et al. (2017) on the same model, data, partition and hyperparameters:
the vmapped version is ``brackit.extras.fedavg.server_round`` (one jitted program per round); the baseline,
written here, loops in Python over the selected clients, their epochs and minibatches and calls one jitted
SGD step per minibatch, then averages the returned weights with the n_k weights.

    nice -n 10 .venv/bin/python benchmarks/extras_fedavg.py --rounds 20 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from brackit.extras import data, fedavg


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


def benchmark(config: fedavg.FedConfig, rounds: int, learning_rate: float = 0.1) -> dict[str, float]:
    """Time ``rounds`` rounds of each implementation (after one warm-up round each); rounds per second."""
    dataset = data.load_mnist5k()
    partition = fedavg.client_partition(config, dataset.y_train)
    clients = fedavg.stack_clients(dataset.x_train, dataset.y_train, partition)
    model = fedavg.make_model(config)
    params = model.init(jax.random.key(0), jnp.asarray(dataset.x_train[:1]))
    lr = jnp.float32(learning_rate)

    vmapped = jax.jit(lambda params, key: fedavg.server_round(model.apply, config, params, clients, key, lr))
    keys = jax.random.split(jax.random.key(1), rounds + 1)
    current = jax.block_until_ready(vmapped(params, keys[0]))
    start = time.perf_counter()
    for key in keys[1:]:
        current = vmapped(current, key)
    jax.block_until_ready(current)
    vmapped_rps = rounds / (time.perf_counter() - start)

    @jax.jit
    def sgd_step(params, images, labels):
        mask = jnp.ones(labels.shape, bool)
        grads = jax.grad(fedavg.masked_loss, argnums=1)(model.apply, params, images, labels, mask)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    average = jax.jit(fedavg.weighted_average)
    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
    rng = np.random.default_rng(0)
    args = (model.apply, sgd_step, average, config)
    current = jax.block_until_ready(_sequential_round(*args, params, x_train, y_train, partition, rng))
    start = time.perf_counter()
    for _ in range(rounds):
        current = _sequential_round(*args, current, x_train, y_train, partition, rng)
    jax.block_until_ready(current)
    sequential_rps = rounds / (time.perf_counter() - start)
    return {"vmapped": vmapped_rps, "sequential": sequential_rps, "speedup": vmapped_rps / sequential_rps}


CASES = (
    fedavg.FedConfig(model="2nn", local_epochs=5, batch_size=10),
    fedavg.FedConfig(model="2nn", local_epochs=1, batch_size=None),
    fedavg.FedConfig(model="cnn", local_epochs=5, batch_size=10, cnn_widths=(8, 16, 64)),
)


def _machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return (
        f"{model}, {len(jax.devices('cpu'))} JAX CPU device(s), os.cpu_count()={__import__('os').cpu_count()}"
    )


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def run(
    rounds: int, out: pathlib.Path | None, command: str, cases: tuple[fedavg.FedConfig, ...] = CASES
) -> list[tuple[str, dict[str, float]]]:
    """Benchmark every case; write ``extras_fedavg_bench.md`` under ``out`` when given."""
    results = []
    for config in cases:
        label = f"{config.model} {config.name}, K={config.num_clients}, C={config.client_fraction}, IID"
        results.append((label, benchmark(config, rounds)))
        print(f"{label}: {results[-1][1]}", flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            "# FedAvg round throughput: vmapped (brackit) vs sequential per-client loop",
            "",
            f"- machine: {_machine()}",
            f"- git commit: {_commit()}",
            f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
            f"- command: `{command}`",
            f"- rounds timed per implementation: {rounds} (after one warm-up/compile round); MNIST 5k, "
            "4000 training images, 40 per client",
            "",
            "| configuration | vmapped rounds/s | sequential rounds/s | speedup |",
            "|---|---|---|---|",
        ]
        for label, result in results:
            lines.append(
                f"| {label} | {result['vmapped']:.2f} | {result['sequential']:.2f} | {result['speedup']:.1f}x |"
            )
        (out / "extras_fedavg_bench.md").write_text("\n".join(lines) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    run(args.rounds, args.out, "nice -n 10 .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
