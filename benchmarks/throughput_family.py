"""Updates per second of BEAR, BCQ, TD3+BC and ReBRAC at the issue's reference sizes, against the
machine's float32 matmul ceiling and d3rlpy's numbers on this kind of machine (REFERENCE.md section 6).

Sizes: batch 256, every network 2x256 (critics, actors, VAEs), 10 sampled actions in the BCQ/BEAR critic
targets, 5 MMD samples per state in BEAR; HalfCheetah-like dimensions (obs 17, action 6) on a synthetic
dataset of 100k transitions held on the device. Each configuration is timed as ``brackit.train`` runs it:
one jitted ``lax.scan`` chunk of updates with batches sampled inside, ``jit(vmap(chunk))`` over the seeds
with the step counter unbatched. Compile time is reported separately; the update rate is the best of
``--repeats`` timed chunks after one warm-up chunk. FLOPs per update come from XLA's cost analysis of one
jitted update (the scan's cost analysis counts its body once, so the update is compiled alone for that).
A thin wrapper over ``brackit.bench`` (also ``brackit bench --only bear ...``).

    nice -n 10 .venv/bin/python benchmarks/throughput_family.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from brackit.bench import bench_report

ALGOS = ["bear", "bcq", "td3bc", "rebrac"]

NOTES = [
    "- sizes: batch 256, every network 2x256, obs 17 / action 6, 10 sampled actions in the BCQ and BEAR"
    " targets, 5 MMD samples per state (BEAR), LayerNorm critics (ReBRAC); TD3+BC and ReBRAC update the"
    " actor every 2nd step",
    "- updates/s: best of the timed chunks after one warm-up chunk (median in brackets); with 8 seeds,"
    " updates of all seeds together; GFLOP per update from XLA's cost analysis of one update (for TD3+BC"
    " and ReBRAC it includes the actor step, which runs every 2nd step: ``lax.cond`` on the unbatched step"
    " counter skips it, with 1 seed and vmapped over seeds alike, so for these two the GFLOP/s column"
    " overstates the work done)",
]
FOOTER = [
    "d3rlpy 2.8.1 on a 2-core CPU (REFERENCE.md section 6): BEAR ~31, BCQ (10 samples) ~30, TD3+BC ~100"
    " updates/s; the issue's targets are >= 60% of the ceiling and >= 2.5x d3rlpy.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=ALGOS, choices=ALGOS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--chunk-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="directory for throughput_family.md")
    args = parser.parse_args(argv)
    command = "nice -n 10 .venv/bin/python benchmarks/throughput_family.py " + " ".join(argv or sys.argv[1:])
    report = bench_report(
        args.algos,
        args.seeds,
        args.chunk_steps,
        args.repeats,
        command=command.strip(),
        title="Throughput of the BRAC family (BEAR, BCQ, TD3+BC, ReBRAC)",
        notes=NOTES,
        footer=FOOTER,
        on_row=lambda row: print(row, flush=True),
    )
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "throughput_family.md").write_text(report)


if __name__ == "__main__":
    main()
