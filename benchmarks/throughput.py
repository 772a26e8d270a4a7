"""Training throughput of BC and BRAC at the reference sizes, against this machine's matmul ceiling.

Reference sizes (BRAC paper): batch 256, critics 300-300 (two), policy 200-200, Hopper dims (obs 11,
action 3). For each configuration: updates/s for 1 seed and for 8 vmapped seeds (after warm-up,
compile time reported separately), FLOPs per update from XLA's cost analysis, achieved GFLOP/s, and
that as a fraction of the float32 matmul ceiling measured in the same run. A thin wrapper over
``brackit.bench`` (also ``brackit bench``).

    python benchmarks/throughput.py [--steps 500] [--only NAME ...] [--out benchmarks/results/throughput.md]
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from brackit.xla_setup import request_host_devices

request_host_devices()  # before JAX starts: one CPU device per core, for the rows that shard the seeds

from brackit.bench import bench_report, default_device_counts  # noqa: E402
from brackit.files import atomic_write_text  # noqa: E402

CONFIGS = ["BC", "BRAC-v KL primal", "BRAC-v MMD primal", "BRAC-p KL dual", "BRAC-p W dual"]

NOTES = [
    "Reference sizes: batch 256, two critics 300-300, policy 200-200 (dual critic 300-300), Hopper dims",
    "(obs 11, action 3); a synthetic 100k-transition dataset on the device, batches sampled inside the",
    "scan, timed as `brackit.train` runs a chunk (`brackit.train.over_runs`: vmapped over the seeds, one",
    "seed unbatched; the step counter unbatched); with 2 devices, the seeds are sharded across them, 4 per",
    "device, as `train(devices=2)` / `--devices auto` runs them.",
    "Updates/s counts every seed's updates: the best of 2 timed chunks after a warm-up chunk (median in",
    "brackets); with 8 seeds a chunk has a quarter of the steps. FLOPs per update come from XLA's cost",
    "analysis of one jitted update.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="updates per timed chunk (per seed)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8], help="vmapped seed counts")
    parser.add_argument("--only", nargs="*", choices=CONFIGS, help="subset of configurations")
    parser.add_argument(
        "--devices", nargs="+", type=int, default=None, help="device counts (default: 1 and all)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.md")
    args = parser.parse_args()
    command = "python benchmarks/throughput.py" + (f" --steps {args.steps}" if args.steps != 500 else "")
    command += "".join(f" --only {shlex.quote(name)}" for name in args.only or [])
    command += " --seeds " + " ".join(map(str, args.seeds)) if args.seeds != [1, 8] else ""
    command += " --devices " + " ".join(map(str, args.devices)) if args.devices else ""
    report = bench_report(
        args.only or CONFIGS,
        args.seeds,
        args.steps,
        repeats=2,
        command=command,
        title="Training throughput: BC and BRAC",
        notes=NOTES,
        on_row=lambda row: print(row, flush=True),
        devices=args.devices or default_device_counts(),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, report)
    print(report)


if __name__ == "__main__":
    main()
