"""Wall time per learning run, brackit against d3rlpy, on the same dataset file, steps and evaluation.

The learning benchmark's third target: brackit's wall time per run, evaluation included, is at most half
of d3rlpy's for the same algorithm and steps, measured one after the other on the same idle machine.

    .venv/bin/python benchmarks/learning_walltime.py --peer-python /work/peer/bin/python \\
        --data $BRACKIT_DATA_DIR/halfcheetah-eps1-1000000-s0.npz --out benchmarks/results/learning

For each algorithm: ``brackit train`` runs ``--seeds`` seeds as one vmapped program (how the benchmark
runs them; ``--devices auto`` shards them one device per core, as ``brackit study --devices auto`` does),
then ``benchmarks/learning_peer.py`` runs d3rlpy's seed 0 (torch with every core); both with
``--steps`` updates and an evaluation of ``--eval-episodes`` episodes every ``--eval-every`` steps, each
process timed from start to exit (import, JIT compilation, data loading, training and evaluation). BEAR's
warm start is scaled to ``--steps`` on both sides, as the study's budgets and the peer scale it. brackit's
time per run is its group's wall time divided by the seeds. The machine must be otherwise idle: before each
command the script waits (up to 3 minutes) for the load of the previous one to decay to 0.5 per core, records
the load average beside it, and the file says so when it was still above 0.5 per core.
The two processes' run directories are temporary; the results file is ``OUT/FILE`` (``--file``, default
``walltime.md``; the benchmark's BCQ and BEAR rows, 2 seeds as the ``cpu`` budget runs them, are in
``walltime_bcq_bear.md``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brackit.algos import ALGORITHMS
from brackit.files import atomic_write_text
from brackit.provenance import command_line, machine_header
from brackit.study import STEP_FIELDS

PRESET_STEPS = 500_000
"""The steps the learning preset's configs are written for (``brackit/studies/learning.toml``): its budgets
scale the step-counting fields by their steps over these, and so does this script (and the peer)."""

HERE = Path(__file__).resolve().parent


SETTLE_SECONDS = 180
"""How long to wait, before each timed command, for the load of the one before it to decay."""


def settle(limit: float) -> None:
    """Wait until the 1-minute load average is at most ``limit`` (the previous command's load decays with a
    time constant of a minute), or ``SETTLE_SECONDS`` have passed: the load recorded is then what other
    processes put on the machine, not the command just timed."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        time.sleep(5)


def scaled_step_fields(algo: str, steps: int) -> list[str]:
    """``--set`` options scaling the algorithm's step-counting fields (``STEP_FIELDS``: BEAR's and BRAC's
    warm start, BRAC's behavior-policy steps) to ``steps``, as a study budget does."""
    config = ALGORITHMS[algo].config_cls()
    return [
        f"--set={name}={max(1, round(value * steps / PRESET_STEPS))}"
        for name in STEP_FIELDS
        if isinstance(value := getattr(config, name, None), int) and value > 0
    ]


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, 1-minute load average just before) of one process, which must succeed; waits first for
    the load to settle to 0.5 per core."""
    settle(0.5 * (os.cpu_count() or 1))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", required=True, help="a Python with torch and d3rlpy")
    parser.add_argument("--data", type=Path, required=True, help="a brackit .npz dataset")
    parser.add_argument("--algos", default="td3bc,bc,bcq,bear")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--devices",
        default="1",
        help="brackit train --devices: 1 (one vmapped program) or auto (one per core)",
    )
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"))
    parser.add_argument("--file", default="walltime.md", help="the results file's name under --out")
    args = parser.parse_args()
    brackit = Path(sys.executable).parent / "brackit"
    rows, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algos.split(","):
            common = ["--steps", str(args.steps), "--eval-every", str(args.eval_every)]
            common += ["--eval-episodes", str(args.eval_episodes)]
            ours, load_ours = timed(
                [str(brackit), "train", algo, "--data", str(args.data), "--seeds", str(args.seeds),
                 "--devices", args.devices, "--logdir", f"{tmp}/brackit-{algo}", "--no-tensorboard",
                 *scaled_step_fields(algo, args.steps), *common]
            )  # fmt: skip
            peer, load_peer = timed(
                [args.peer_python, str(HERE / "learning_peer.py"), "--data", str(args.data), "--algo", algo,
                 "--seed", "0", "--out", f"{tmp}/d3rlpy-{algo}", *common]
            )  # fmt: skip
            loads += [load_ours, load_peer]
            per_run = ours / args.seeds
            rows.append(
                f"| {algo} | {ours:.1f} s ({args.seeds} seeds, devices {args.devices}) | {per_run:.1f} s | {peer:.1f} s | "
                f"{per_run / peer:.2f} | {'met' if per_run <= peer / 2 else 'missed'} | "
                f"{load_ours:.2f} / {load_peer:.2f} |"
            )
            print(rows[-1], flush=True)
    cores = os.cpu_count() or 1
    busy = max(loads) > 0.5 * cores
    lines = [
        "# Wall time per learning run: brackit against d3rlpy",
        "",
        machine_header(command_line("python benchmarks/learning_walltime.py", sys.argv[1:])),
        f"- dataset: `{args.data.name}`; {args.steps:,} updates, an evaluation of {args.eval_episodes} "
        f"episodes every {args.eval_every:,} steps; each process timed from start to exit",
        f"- the machine {'WAS NOT idle (load above 0.5 per core): these times are not the target measurement' if busy else 'was idle (1-minute load average at most 0.5 per core before every command)'}",
        "",
        "| algorithm | brackit group | brackit per run | d3rlpy run | per-run ratio | target (<= 0.5) | load before (brackit / d3rlpy) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / args.file, "\n".join(lines))
    print(f"wrote {args.out / args.file}")


if __name__ == "__main__":
    main()
