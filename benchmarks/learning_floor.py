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
  ``walltime_bcq_bear.md``): what it leaves the training once the evaluation and the compilation are paid,
  and the share of the ceiling the training would need to run at to fit in it.

Run it on an otherwise idle machine (it times chunks):

    .venv/bin/python benchmarks/learning_floor.py --peer bcq=512.8 --peer bear=863.0 \\
        --out benchmarks/results/learning
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

from brackit.xla_setup import request_host_devices

request_host_devices()  # before JAX starts: one CPU device per core, for the sharded rows

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from benchmarks_common import emit_report, machine_header, script_command  # noqa: E402

from brackit.algos import get_algorithm, make_config  # noqa: E402
from brackit.bench import matmul_ceiling, measure, synthetic_dataset, update_flops  # noqa: E402
from brackit.data.dataset import env_spaces  # noqa: E402
from brackit.evaluation import evaluate  # noqa: E402
from brackit.protocol.behavior import TASKS  # noqa: E402
from brackit.train import batched_act, initial_states, make_train, run_grid  # noqa: E402

EVAL_MODE = "max_q"  # BCQ's and BEAR's reference evaluation rule, as the learning benchmark runs them


def acting(algo_name: str, config, num_seeds: int, dims: tuple[int, int]):
    """(initial states of ``num_seeds`` runs, their jitted batched act), as an evaluation during training
    uses them."""
    algo = get_algorithm(algo_name)
    fns = make_train(algo, config, *dims, chunk_steps=1)
    return initial_states(fns, run_grid(range(num_seeds), None)), batched_act(algo, config)


def act_flops(algo_name: str, config, num_seeds: int, episodes: int, dims: tuple[int, int]) -> float:
    """FLOPs of one evaluation step: the batched act on [seeds, episodes, obs] (XLA's cost analysis)."""
    states, act = acting(algo_name, config, num_seeds, dims)
    obs = jnp.zeros((num_seeds, episodes, dims[0]))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    cost = act.lower(states, obs, keys, EVAL_MODE).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


def eval_seconds_per_step(
    algo_name: str, config, num_seeds: int, episodes: int, env_id: str, dims: tuple[int, int], steps: int
) -> tuple[float, float]:
    """(seconds per evaluation step with the algorithm acting, seconds per step with a constant action):
    ``steps`` steps of ``num_seeds`` x ``episodes`` real environments, after one warm-up step."""
    states, act = acting(algo_name, config, num_seeds, dims)

    def zero_act(states, obs, keys, mode):
        return jnp.zeros((*obs.shape[:-1], dims[1]))

    out = []
    for policy in (act, zero_act):
        evaluate(policy, states, env_id, episodes, mode=EVAL_MODE, max_steps=1)  # compile, make the envs
        start = time.perf_counter()
        evaluate(policy, states, env_id, episodes, mode=EVAL_MODE, max_steps=steps)
        out.append((time.perf_counter() - start) / steps)
    return out[0], out[1]


def peer_seconds(text: str) -> tuple[str, float]:
    """``--peer ALGO=SECONDS``."""
    name, _, seconds = text.partition("=")
    try:
        return name, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ALGO=SECONDS, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="bcq,bear")
    parser.add_argument("--task", default="halfcheetah", choices=sorted(TASKS))
    parser.add_argument("--steps", type=int, default=10_000, help="updates per run (as walltime_bcq_bear.md)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=2, help="evaluations per run (10k / every 5k)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--eval-steps", type=int, default=100, help="evaluation steps timed")
    parser.add_argument("--chunk", type=int, default=100, help="updates per timed chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--peer", action="append", default=[], type=peer_seconds, help="ALGO=SECONDS: d3rlpy's time per run"
    )
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    peer = dict(args.peer)
    env_id = TASKS[args.task][0]
    dims = env_spaces(env_id)[:2]
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
        rows.append((name, update, act, arithmetic, rates, acting, stepping))
    ceilings.append(matmul_ceiling())
    ceiling = max(ceilings) * 1e9
    lines = [
        "# A BCQ or BEAR run on this machine: its arithmetic, its parts, and half of d3rlpy's time",
        "",
        machine_header(script_command(__file__, argv)),
        f"- a run as `walltime_bcq_bear.md` times it: {args.task} dimensions (obs {dims[0]}, action {dims[1]}), "
        f"each algorithm's default config (the reference sizes), {args.steps:,} updates, {args.evaluations} "
        f"evaluations of {args.eval_episodes} episodes x {args.horizon} steps ({EVAL_MODE!r} acting), "
        f"{args.seeds} seeds vmapped",
        f"- float32 matmul ceiling (2048^3, best of YNNPACK and Eigen): {ceilings[0]:.1f} GFLOP/s before, "
        f"{ceilings[1]:.1f} after; the larger is used",
        f"- 1-minute load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
        "",
        "| algorithm | GFLOP per update | GFLOP per eval step (all seeds) | TFLOP per run | floor per run "
        "(at the ceiling) | training, 1 device: updates/s of all seeds (% of ceiling) | training, 2 devices | "
        "compile per group | evaluation per run (acting + MuJoCo) | parts summed, per run | d3rlpy per run | "
        "target (half) | training share of the ceiling the target needs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, update, act, arithmetic, rates, acting, stepping in rows:
        floor = arithmetic / ceiling
        cells = []
        for d in (1, 2):
            if d in rates:
                r = rates[d]
                cells.append(f"{r['updates_per_s']:.1f} ({100 * r['gflops'] * 1e9 / ceiling:.0f}%)")
            else:
                cells.append("-")
        fastest = max(rates.values(), key=lambda r: r["updates_per_s"])
        compile_s = fastest["compile_s"]
        evaluation = args.evaluations * args.horizon * acting / args.seeds
        # per run as walltime_bcq_bear.md counts it: the group's wall time over its seeds
        parts = args.steps / fastest["updates_per_s"] + evaluation + compile_s / args.seeds
        target = peer.get(name, float("nan")) / 2
        left = target - evaluation - compile_s / args.seeds  # what the target leaves the training
        need = (
            f"{100 * args.steps * update / left / ceiling:.0f}%" if np.isfinite(target) and left > 0 else "-"
        )
        lines.append(
            f"| {name} | {update / 1e9:.3f} | {act / 1e9:.3f} | {arithmetic / 1e12:.1f} | {floor:.0f} s | "
            f"{cells[0]} | {cells[1]} | {compile_s:.0f} s | {evaluation:.0f} s ({evaluation * (acting - stepping) / acting:.0f} + "
            f"{evaluation * stepping / acting:.0f}) | {parts:.0f} s | {peer.get(name, float('nan')):.1f} s | "
            f"{target:.1f} s | {need} |"
        )
    lines += [
        "",
        "- floor per run: the run's arithmetic (updates and the evaluations' acting, per seed) at the ceiling, "
        "with nothing else (no MuJoCo, no compilation, no start-up): a lower bound on any run's wall time here",
        "- training: the chunks timed as `brackit.train` runs them (`brackit.bench.measure`, on a synthetic "
        f"100k-transition dataset, best of {args.repeats} chunks of {args.chunk} updates after one warm-up), every "
        "seed's updates counted (per run, as the wall-time file counts it, the group's time over its seeds); "
        "% of ceiling: the update's FLOPs at that rate over the ceiling",
        "- compile per group: the training chunk's compilation (the faster placement's), shared by the group's seeds",
        "- evaluation per run: one evaluation step of every seed's episodes on the real environment "
        f"(`brackit.evaluation.evaluate`, {args.eval_steps} steps timed after one), times the run's evaluation "
        "steps, over the seeds; split into acting (the batched act) and MuJoCo stepping (the same loop with a "
        "constant action)",
        "- parts summed: training at the faster placement's rate + evaluation + compilation, per run (process "
        "start-up and data loading not included)",
        "- training share of the ceiling the target needs: the run's update arithmetic over what half of "
        "d3rlpy's time leaves after the evaluation and the compilation, as a share of the ceiling; to compare "
        "with the training's measured share",
    ]
    emit_report(lines, args.out, "walltime_floor.md")


if __name__ == "__main__":
    main()
