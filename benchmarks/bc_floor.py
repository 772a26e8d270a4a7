"""How close brackit's BC update is to the matmul floor of its shapes, on this machine.

Three jitted ``lax.scan`` chunks at the BRAC paper's BC size (batch 256, policy 200-200, Hopper dims obs 11 /
action 3, a 100k-transition synthetic dataset on the device), timed the same way:

- ``brackit``: ``brackit.algos.bc.update`` as ``brackit.train`` runs it (one seed, unbatched);
- ``minimal``: a hand-written BC step in plain ``jax.numpy`` (same math: tanh-Gaussian negative
  log-likelihood of clipped actions, Adam), no flax, no metrics;
- ``matmuls only``: nothing but the six matmuls of the policy's forward and backward pass at these shapes
  (input batch fixed, weights updated so nothing is hoisted): a floor no BC update of this size can beat
  with XLA's CPU matmuls.

    .venv/bin/python benchmarks/bc_floor.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from benchmarks_common import emit_report, machine_header, script_command

from brackit.algos import bc, get_algorithm
from brackit.bench import matmul_ceiling, synthetic_dataset
from brackit.train import make_train

OBS, ACT, BATCH, HIDDEN = 11, 3, 256, 200


def _rate(chunk, carry, steps: int, repeats: int) -> tuple[float, float]:
    carry = jax.block_until_ready(chunk(carry))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        carry = jax.block_until_ready(chunk(carry))
        times.append(time.perf_counter() - start)
    return steps / min(times), steps / float(np.median(times))


def measure(steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    dataset = synthetic_dataset(100_000, OBS, ACT)
    config = bc.BCConfig()
    fns = make_train(get_algorithm("bc"), config, OBS, ACT, chunk_steps=steps)
    brackit_chunk = jax.jit(lambda state: fns.chunk(state, dataset, jnp.int32(0))[0])
    rates = {"brackit": _rate(brackit_chunk, fns.init(jax.random.key(0)), steps, repeats)}

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
    rates["minimal"] = _rate(jax.jit(minimal_chunk), carry, steps, repeats)

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

    carry = (jnp.ones((BATCH, OBS)), params["w1"], params["w2"], params["w3"])
    rates["matmuls only"] = _rate(jax.jit(matmul_chunk), carry, steps, repeats)
    return rates


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
        f"- chunks of {args.steps} updates, best of {args.repeats} after a warm-up chunk (median in brackets);"
        " batch 256, policy 200-200, obs 11 / action 3",
        "",
        "| chunk | updates/s (median) | of the matmul floor |",
        "|---|---|---|",
    ]
    floor = rates["matmuls only"][0]
    for name, (best, median) in rates.items():
        lines.append(f"| {name} | {best:,.0f} ({median:,.0f}) | {100 * best / floor:.0f}% |")
    emit_report(lines, args.out, "bc_floor.md")


if __name__ == "__main__":
    main()
