"""How close brackit's BC update is to the matmul floor of its shapes, on this machine.

Three jitted ``lax.scan`` chunks at the BRAC paper's BC size (batch 256, policy 200-200, Hopper dims obs 11 /
action 3, a 100k-transition synthetic dataset on the device), timed the same way:

- ``brackit``: ``brackit.algos.bc.update`` as ``brackit.train`` runs it (one seed, unbatched);
- ``minimal``: a hand-written BC step in plain ``jax.numpy`` (same math: tanh-Gaussian negative
  log-likelihood of clipped actions, Adam), no flax, no metrics;
- ``matmuls only``: nothing but the six matmuls of the policy's forward and backward pass at these shapes
  (input batch fixed, weights updated so nothing is hoisted): a floor no BC update of this size can beat
  with XLA's CPU matmuls.

Each is compiled twice on CPU, with XLA's default dot kernels (YNNPACK fusions) and with the Eigen dots
brackit trains with (``brackit.xla_setup``), and all six are timed alternately, one chunk each in turn, so that
the machine's drifting speed hits all alike. The floor is the faster of the two ``matmuls only`` programs.

    .venv/bin/python -m benchmarks.experiments.bc_floor --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.benchmarks_common import emit_report, machine_header, script_command
from brackit import xla_setup
from brackit.algos import bc, get_algorithm
from brackit.bench import matmul_ceiling, synthetic_dataset
from brackit.train import make_train

OBS, ACT, BATCH, HIDDEN = 11, 3, 256, 200


def _time_alternately(
    programs: dict[Any, tuple[Any, Any]], steps: int, repeats: int
) -> dict[Any, tuple[float, float]]:
    """name -> (best, median) updates/s of ``programs`` (name -> (chunk, carry)), one chunk each in turn
    after a warm-up chunk each."""
    carries = {name: jax.block_until_ready(chunk(carry)) for name, (chunk, carry) in programs.items()}
    times: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(repeats):
        for name, (chunk, _) in programs.items():
            start = time.perf_counter()
            carries[name] = jax.block_until_ready(chunk(carries[name]))
            times[name].append(time.perf_counter() - start)
    return {name: (steps / min(t), steps / float(np.median(t))) for name, t in times.items()}


def measure(steps: int, repeats: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(chunk, dot kernels) -> (best, median) updates/s."""
    dataset = synthetic_dataset(100_000, OBS, ACT)
    config = bc.BCConfig()
    fns = make_train(get_algorithm("bc"), config, OBS, ACT, chunk_steps=steps)
    chunks = {
        "brackit": (lambda state: fns.chunk(state, dataset, jnp.int32(0))[0], fns.init(jax.random.key(0)))
    }

    def init(key):
        keys = jax.random.split(key, 3)
        dense = lambda k, i, o: jax.random.normal(k, (i, o)) / np.sqrt(i)  # noqa: E731
        return {
            "w1": dense(keys[0], OBS, HIDDEN),
            "b1": jnp.zeros(HIDDEN),
            "w2": dense(keys[1], HIDDEN, HIDDEN),
            "b2": jnp.zeros(HIDDEN),
            "w3": dense(keys[2], HIDDEN, 2 * ACT),
            "b3": jnp.zeros(2 * ACT),
        }

    def nll(params, obs, action):
        hidden = jax.nn.relu(obs @ params["w1"] + params["b1"])
        hidden = jax.nn.relu(hidden @ params["w2"] + params["b2"])
        out = hidden @ params["w3"] + params["b3"]
        mean, log_std = out[:, :ACT], jnp.clip(out[:, ACT:], -5.0, 0.0)
        raw = jnp.arctanh(jnp.clip(action, -1 + 1e-3, 1 - 1e-3))
        z = (raw - mean) * jnp.exp(-log_std)
        log_prob = -0.5 * z**2 - log_std - 2.0 * (jnp.log(2.0) - raw - jax.nn.softplus(-2.0 * raw))
        return -jnp.mean(jnp.sum(log_prob, axis=-1))

    optimizer = optax.adam(config.learning_rate)
    data = dataset.transitions

    def minimal_chunk(carry):
        def body(carry, _):
            params, opt_state, key = carry
            key, batch_key = jax.random.split(key)
            index = jax.random.randint(batch_key, (BATCH,), 0, data.obs.shape[0])
            grads = jax.grad(nll)(params, data.obs[index], data.action[index])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), None

        return jax.lax.scan(body, carry, None, length=steps)[0]

    params = init(jax.random.key(0))
    carry = (params, optimizer.init(params), jax.random.key(1))
    chunks["minimal"] = (minimal_chunk, carry)

    def matmul_chunk(carry):
        def body(carry, _):
            x, w1, w2, w3 = carry
            h1 = x @ w1
            h2 = h1 @ w2
            out = h2 @ w3
            d2 = out @ w3.T
            d1 = d2 @ w2.T
            return (x, w1 - 1e-9 * (x.T @ d1), w2 - 1e-9 * (h1.T @ d2), w3 - 1e-9 * (h2.T @ out)), None

        return jax.lax.scan(body, carry, None, length=steps)[0]

    chunks["matmuls only"] = (
        matmul_chunk,
        (jnp.ones((BATCH, OBS)), params["w1"], params["w2"], params["w3"]),
    )
    kernels = {"XLA default": None}
    if jax.default_backend() == "cpu":
        kernels["Eigen"] = {xla_setup.CPU_DOTS_OPTION: ""}
    programs = {
        (name, kernel): (jax.jit(chunk, compiler_options=options), carry)
        for name, (chunk, carry) in chunks.items()
        for kernel, options in kernels.items()
    }
    return _time_alternately(programs, steps, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    ceiling_before = matmul_ceiling()
    rates = measure(args.steps, args.repeats)
    ceiling_after = matmul_ceiling()
    lines = [
        "# BC update against the matmul floor of its shapes",
        "",
        machine_header(script_command(__file__, argv)),
        f"- float32 matmul ceiling (2048^3): {ceiling_before:.1f} GFLOP/s before, {ceiling_after:.1f} after",
        f"- chunks of {args.steps} updates, timed alternately: best of {args.repeats} after a warm-up chunk"
        " (median in brackets);"
        " batch 256, policy 200-200, obs 11 / action 3",
        "",
        "| chunk | dot kernels | updates/s (median) | of the matmul floor |",
        "|---|---|---|---|",
    ]
    floor = max(best for (name, _), (best, _) in rates.items() if name == "matmuls only")
    for (name, kernel), (best, median) in rates.items():
        lines.append(f"| {name} | {kernel} | {best:,.0f} ({median:,.0f}) | {100 * best / floor:.0f}% |")
    emit_report(lines, args.out, "bc_floor.md")


if __name__ == "__main__":
    main()
