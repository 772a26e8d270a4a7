"""Time to build a dataset by the BRAC protocol (``brackit.protocol.build``), per task: transitions/s.

Uses the shipped behavior policy where ``brackit/protocol_data/behavior/<task>.npz`` exists, else a
randomly initialised actor of the same size (the table says which). The build is timed without the file
write; a short warm-up build compiles the policy call first. With ``--size`` below 1M the 1M time is extrapolated linearly (said
so in the table). The load average is read before and after each build (the machine may be shared).

    python benchmarks/dataset_build.py --size 1000000 --mix eps1 [--workers 0,1] [--num-envs 64]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from benchmarks_common import machine_header

from brackit.protocol.behavior import (
    TASKS,
    default_dir,
    load_task_policy,
    policy_paths,
    random_behavior_policy,
)
from brackit.protocol.build import build, default_num_envs, default_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--mix", default="eps1")
    parser.add_argument("--tasks", default="hopper,halfcheetah,walker2d,ant")
    parser.add_argument("--num-envs", type=int, default=None, help="default: brackit's for the size")
    parser.add_argument(
        "--workers",
        default=None,
        help="comma-separated worker counts to compare (default: brackit data build's)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dataset_build.md")
    args = parser.parse_args()
    args.num_envs = args.num_envs or default_num_envs(args.size)
    args.workers = args.workers or str(default_workers(args.size))
    command = shlex.join(["python", "benchmarks/dataset_build.py", *sys.argv[1:]])
    rows = []
    for task in args.tasks.split(","):
        npz_path, _ = policy_paths(default_dir(), task)
        if npz_path.exists():
            policy, source = load_task_policy(task), "shipped"
        else:
            policy, source = random_behavior_policy(TASKS[task][0]), "random init (no shipped policy)"
        for workers in (int(w) for w in args.workers.split(",")):
            build(
                task,
                args.mix,
                size=2 * args.num_envs,
                policy=policy,
                num_envs=args.num_envs,
                workers=workers,
                progress=False,
            )
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            dataset = build(
                task,
                args.mix,
                size=args.size,
                policy=policy,
                num_envs=args.num_envs,
                workers=workers,
                progress=False,
            )
            seconds = time.perf_counter() - start
            load_after = os.getloadavg()[0]
            rate = args.size / seconds
            row = (
                f"| {task} | {source} | {workers} | {args.size:,} | {seconds:.1f} | {rate:,.0f} | "
                f"{1_000_000 / rate / 60:.1f}{'' if args.size == 1_000_000 else ' (extrapolated)'} | "
                f"{load_before:.1f} / {load_after:.1f} | {dataset.card.sha256[:12]} |"
            )
            print(row, flush=True)
            rows.append(row)
    text = "\n".join(
        [
            "# Dataset build benchmark (BRAC protocol)",
            "",
            machine_header(command),
            "",
            f"Mix `{args.mix}`, {args.num_envs} environments stepped together (one batched policy call per "
            "vector step), `workers` subprocesses stepping them (0: all in the main process). Time of "
            "`brackit.protocol.build` without the file write, after a warm-up build that compiles the policy call.",
            "",
            "| task | behavior policy | workers | transitions | seconds | transitions/s | minutes per 1M | "
            "load avg (1 min) before / after | sha256 |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
