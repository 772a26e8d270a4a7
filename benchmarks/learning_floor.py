"""Why BCQ and BEAR miss the wall-time target: each run's arithmetic against this machine's matmul ceiling.

The learning benchmark's third target asks brackit's wall time per run, evaluation included, to be at most
half of d3rlpy's for the same algorithm and steps. ``learning_walltime.py`` measured BCQ and BEAR at 0.62 and
0.59 of d3rlpy's time (``walltime_bcq_bear.md``). This script asks whether 0.5 is within reach at all:

- **arithmetic per run:** XLA's cost analysis of one update (``brackit.bench.update_flops``) times the
  steps, plus the acting of every evaluation step (the batched ``act`` of ``brackit.train.batched_act`` on
  ``--seeds`` x ``--eval-episodes`` states, times the horizon and the evaluations, divided by the seeds);
- **the floor:** that arithmetic at the float32 matmul ceiling (``brackit.bench.matmul_ceiling``, the best of
  a 2048^3 matmul, the larger of two readings before and after): no run on this machine can be faster;
- **what brackit reaches:** its training chunks timed as ``brackit.train`` runs them (``brackit.bench.measure``,
  ``--seeds`` vmapped seeds on 1 device and sharded on 2 where the process has 2), as % of the ceiling, and one
  evaluation's wall time per step on the real environment (``brackit.evaluation.evaluate``, ``--eval-steps``
  steps), split into acting and MuJoCo stepping;
- **the target:** half of d3rlpy's measured time per run (``--peer ALGO=SECONDS``, from
  ``walltime_bcq_bear.md``), and the share of the ceiling brackit's whole run would need to meet it.

Run it on an otherwise idle machine (it times chunks):

    .venv/bin/python benchmarks/learning_floor.py --peer bcq=512.8 --peer bear=863.0 \\
        --out benchmarks/results/learning
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from collections import Counter

from brackit.xla_setup import request_host_devices

request_host_devices()  # before JAX starts: one CPU device per core, for the sharded rows

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from benchmarks_common import emit_report, machine_header, script_command  # noqa: E402

from brackit import xla_setup  # noqa: E402
from brackit.algos import get_algorithm, make_config  # noqa: E402
from brackit.bench import matmul_ceiling, measure, synthetic_dataset, update_flops  # noqa: E402
from brackit.evaluation import evaluate  # noqa: E402
from brackit.train import batched_act, initial_states, make_train, run_grid  # noqa: E402

ENV_IDS = {"halfcheetah": ("HalfCheetah-v5", (17, 6)), "hopper": ("Hopper-v5", (11, 3))}
EVAL_MODE = "max_q"  # BCQ's and BEAR's reference evaluation rule, as the learning benchmark runs them


def act_flops(algo_name: str, config, num_seeds: int, episodes: int, dims: tuple[int, int]) -> float:
    """FLOPs of one evaluation step: the batched act on [seeds, episodes, obs] (XLA's cost analysis)."""
    algo = get_algorithm(algo_name)
    fns = make_train(algo, config, *dims, chunk_steps=1)
    states = initial_states(fns, run_grid(range(num_seeds), None))
    act = batched_act(algo, config)
    obs = jnp.zeros((num_seeds, episodes, dims[0]))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    cost = act.lower(states, obs, keys, EVAL_MODE).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


DOT = re.compile(
    r"stablehlo\.dot_general %\S+, %\S+, (?:batching_dims = \[([\d, ]*)\] x \[([\d, ]*)\], )?"
    r"contracting_dims = \[([\d, ]*)\] x \[([\d, ]*)\].*?: \(tensor<([\dx]+)xf32>, tensor<([\dx]+)xf32>\)"
)


def _ints(text: str | None, sep: str = ",") -> tuple[int, ...]:
    return tuple(int(part) for part in (text or "").replace(" ", "").split(sep) if part)


def update_dots(algo_name: str, config, num_seeds: int, dims: tuple[int, int]) -> Counter:
    """The float32 dots of one update of ``num_seeds`` vmapped seeds (1: unbatched), read from the lowered
    StableHLO: a Counter of (lhs shape, rhs shape, lhs batch, rhs batch, lhs contracting, rhs contracting)."""
    algo = get_algorithm(algo_name)
    dataset = synthetic_dataset(1_000, *dims)
    state = algo.init(config, jax.random.key(0), *dims)
    batch = dataset.sample(jax.random.key(1), config.batch_size)
    step = lambda s, b: algo.update(config, s, b)  # noqa: E731
    if num_seeds > 1:
        state = jax.tree.map(lambda x: jnp.stack([x] * num_seeds), state)
        batch = jax.tree.map(lambda x: jnp.stack([x] * num_seeds), batch)
        step = jax.vmap(step)
    text = jax.jit(step).lower(state, batch).as_text()
    if any("dot_general" in part for part in text.split("func.func private")[1:]):
        raise RuntimeError("a private function of the lowered update has dots: they would be miscounted")
    return Counter(
        (_ints(m[4], "x"), _ints(m[5], "x"), _ints(m[0]), _ints(m[1]), _ints(m[2]), _ints(m[3]))
        for m in DOT.findall(text)
    )


def dot_seconds(dots: Counter, loops: int = 50, repeats: int = 5) -> tuple[float, float]:
    """(FLOPs, seconds) of every dot in ``dots``, each timed alone at its own shape: a jitted loop of ``loops``
    dots (the lhs scaled by the loop index, so none is hoisted), best of ``repeats``, the faster of Eigen and
    XLA's default kernels."""
    flops = seconds = 0.0
    for (lhs, rhs, lb, rb, lc, rc), count in dots.items():
        a = jax.random.normal(jax.random.key(0), lhs)
        b = jax.random.normal(jax.random.key(1), rhs)

        def loop(a, b, lb=lb, rb=rb, lc=lc, rc=rc):
            def body(index, acc):
                return acc + jax.lax.dot_general(a * index.astype(a.dtype), b, ((lc, rc), (lb, rb)))

            shape = jax.eval_shape(lambda: jax.lax.dot_general(a, b, ((lc, rc), (lb, rb)))).shape
            return jax.lax.fori_loop(0, loops, body, jnp.zeros(shape))

        best = float("inf")
        for options in ({xla_setup.CPU_DOTS_OPTION: ""}, None):
            compiled = jax.jit(loop, compiler_options=options).lower(a, b).compile()
            jax.block_until_ready(compiled(a, b))
            for _ in range(repeats):
                start = time.perf_counter()
                jax.block_until_ready(compiled(a, b))
                best = min(best, (time.perf_counter() - start) / loops)
        out = np.prod([lhs[i] for i in range(len(lhs)) if i not in lc]) * np.prod(
            [rhs[i] for i in range(len(rhs)) if i not in rc and i not in rb]
        )
        flops += count * 2 * out * np.prod([lhs[i] for i in lc])
        seconds += count * best
    return float(flops), seconds


def dots_only(algo_name: str, num_seeds: int, task: str) -> dict[str, float]:
    """The dot floor of one update of ``num_seeds`` seeds in this process (``--dots-only``)."""
    flops, seconds = dot_seconds(update_dots(algo_name, make_config(algo_name), num_seeds, ENV_IDS[task][1]))
    return {"flops": flops, "seconds": seconds}


def dots_one_core(algo_name: str, task: str) -> dict[str, float]:
    """``dots_only`` for one seed in a child process pinned to one core (``taskset -c 0``): what each core
    could do for its own seed with the seeds sharded one per core."""
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, __file__, "--dots-only", algo_name, "--task", task],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, xla_setup.HOST_DEVICES_ENV: "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def eval_seconds_per_step(
    algo_name: str, config, num_seeds: int, episodes: int, env_id: str, dims: tuple[int, int], steps: int
) -> tuple[float, float]:
    """(seconds per evaluation step with the algorithm acting, seconds per step with a constant action):
    ``steps`` steps of ``num_seeds`` x ``episodes`` real environments, after one warm-up step."""
    algo = get_algorithm(algo_name)
    fns = make_train(algo, config, *dims, chunk_steps=1)
    states = initial_states(fns, run_grid(range(num_seeds), None))
    act = batched_act(algo, config)

    def zero_act(states, obs, keys, mode):
        return jnp.zeros((*obs.shape[:-1], dims[1]))

    out = []
    for policy in (act, zero_act):
        evaluate(policy, states, env_id, episodes, mode=EVAL_MODE, max_steps=1)  # compile, make the envs
        start = time.perf_counter()
        evaluate(policy, states, env_id, episodes, mode=EVAL_MODE, max_steps=steps)
        out.append((time.perf_counter() - start) / steps)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="bcq,bear")
    parser.add_argument("--task", default="halfcheetah", choices=sorted(ENV_IDS))
    parser.add_argument("--steps", type=int, default=10_000, help="updates per run (as walltime_bcq_bear.md)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=2, help="evaluations per run (10k / every 5k)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--eval-steps", type=int, default=100, help="evaluation steps timed")
    parser.add_argument("--chunk", type=int, default=100, help="updates per timed chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer", action="append", default=[], help="ALGO=SECONDS: d3rlpy's time per run")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--dots-only", metavar="ALGO", help=argparse.SUPPRESS)  # the one-core child
    args = parser.parse_args(argv)
    if args.dots_only:
        print(json.dumps(dots_only(args.dots_only, 1, args.task)))
        return
    peer = {name: float(seconds) for name, seconds in (item.split("=", 1) for item in args.peer)}
    env_id, dims = ENV_IDS[args.task]
    dataset = synthetic_dataset(100_000, *dims)
    devices = tuple(dict.fromkeys(d for d in (1, 2) if d <= jax.device_count() and args.seeds % d == 0))
    ceilings = [matmul_ceiling()]
    rows = []
    for name in args.algos.split(","):
        config = make_config(name)
        update = update_flops(name, config, dataset)
        act = act_flops(name, config, args.seeds, args.eval_episodes, dims)
        eval_steps_per_run = args.evaluations * args.horizon
        arithmetic = args.steps * update + eval_steps_per_run * act / args.seeds  # per run
        rates = {
            d: measure(name, {}, dataset, args.seeds, args.chunk, args.repeats, devices=d) for d in devices
        }
        acting, stepping = eval_seconds_per_step(
            name, config, args.seeds, args.eval_episodes, env_id, dims, args.eval_steps
        )
        dots = {
            "1 seed": dots_only(name, 1, args.task),
            f"{args.seeds} seeds vmapped": dots_only(name, args.seeds, args.task),
            "1 seed on 1 core": dots_one_core(name, args.task),
        }
        per_run = {
            "1 seed": dots["1 seed"]["seconds"],
            f"{args.seeds} seeds vmapped": dots[f"{args.seeds} seeds vmapped"]["seconds"] / args.seeds,
            # one seed per core, every core busy with its own seed at once
            "1 seed on 1 core": dots["1 seed on 1 core"]["seconds"] / max(1, os.cpu_count() // args.seeds),
        }
        rows.append((name, update, act, arithmetic, rates, acting, stepping, dots, per_run))
    ceilings.append(matmul_ceiling())
    ceiling = max(ceilings) * 1e9
    lines = [
        "# The floor of a BCQ or BEAR run on this machine, against half of d3rlpy's time",
        "",
        machine_header(script_command(__file__, argv)),
        f"- a run as `walltime_bcq_bear.md` times it: {args.task} dimensions (obs {dims[0]}, action {dims[1]}), "
        f"each algorithm's default config (the reference sizes), {args.steps:,} updates, {args.evaluations} "
        f"evaluations of {args.eval_episodes} episodes x {args.horizon} steps ({EVAL_MODE!r} acting), "
        f"{args.seeds} seeds vmapped",
        f"- float32 matmul ceiling (2048^3, best of YNNPACK and Eigen): {ceilings[0]:.1f} GFLOP/s before, "
        f"{ceilings[1]:.1f} after; the floor uses the larger",
        f"- 1-minute load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
        "",
        "| algorithm | GFLOP per update | GFLOP per eval step (all seeds) | TFLOP per run | floor per run "
        "(at the ceiling) | training, 1 device: updates/s per run (% of ceiling) | training, 2 devices | "
        "eval step: acting + MuJoCo s (all seeds) | d3rlpy per run | target (half) | ceiling share the "
        "target needs | floor per run, dots at their shapes' rates |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    dot_lines = []
    for name, update, act, arithmetic, rates, acting, stepping, dots, per_run in rows:
        floor = arithmetic / ceiling
        best = min(per_run, key=per_run.get)
        eval_floor = args.evaluations * args.horizon * act / args.seeds / ceiling
        dot_floor = args.steps * per_run[best] + eval_floor
        cells = []
        for d in (1, 2):
            if d in rates:
                r = rates[d]
                share = r["gflops"] * 1e9 / ceiling
                cells.append(f"{r['updates_per_s'] / args.seeds:.1f} ({100 * share:.0f}%)")
            else:
                cells.append("-")
        target = peer.get(name, float("nan")) / 2
        need = f"{100 * floor / target:.0f}%" if np.isfinite(target) else "-"
        lines.append(
            f"| {name} | {update / 1e9:.3f} | {act / 1e9:.3f} | {arithmetic / 1e12:.1f} | {floor:.0f} s | "
            f"{cells[0]} | {cells[1]} | {acting - stepping:.4f} + {stepping:.4f} | "
            f"{peer.get(name, float('nan')):.1f} s | {target:.1f} s | {need} | {dot_floor:.0f} s ({best}) |"
        )
        for label, dot in dots.items():
            dot_lines.append(
                f"| {name} | {label} | {dot['flops'] / 1e9:.3f} | {1e3 * dot['seconds']:.2f} ms | "
                f"{dot['flops'] / dot['seconds'] / 1e9:.1f} | {100 * dot['flops'] / dot['seconds'] / ceiling:.0f}% | "
                f"{1e3 * per_run[label]:.2f} ms |"
            )
    lines += [
        "",
        "- floor per run: the run's arithmetic (updates and the evaluations' acting, per seed) at the ceiling, "
        "with nothing else (no MuJoCo, no compilation, no start-up): a lower bound on any run's wall time here",
        "- ceiling share the target needs: the floor over the target; the whole run, evaluation and compilation "
        "included, would have to compute at that share of the 2048^3 matmul's rate, on this update's far "
        "smaller matmuls (batch 100-2560 rows, 300-750 wide), to reach half of d3rlpy's time",
        "- training: the chunks timed as `brackit.train` runs them (`brackit.bench.measure`, best of "
        f"{args.repeats} chunks of {args.chunk} updates after one warm-up), every seed's updates over the seeds",
        "- floor per run, dots at their shapes' rates: every float32 dot of one update (read from the lowered "
        "StableHLO) timed alone at its own shapes, in a jitted loop of 50, the faster of Eigen and XLA's default "
        "kernels; the update's dots at those rates, times the steps, plus the evaluations' acting at the "
        "ceiling. Nothing but the dots (no elementwise work, optimizer, sampling, MuJoCo or compilation): a "
        "lower bound at the rates these shapes reach here, from the best of the three ways below to run the seeds",
        "",
        "The update's dots alone, per way of running the seeds (per run: 1 seed as is; vmapped seeds over the "
        "seeds; one seed per core, every core at once, as `--devices auto` shards them):",
        "",
        "| algorithm | seeds | GFLOP in dots per update | dots' seconds per update | GFLOP/s | % of ceiling | "
        "per run and update |",
        "|---|---|---|---|---|---|---|",
        *dot_lines,
    ]
    emit_report(lines, args.out, "walltime_floor.md")


if __name__ == "__main__":
    main()
