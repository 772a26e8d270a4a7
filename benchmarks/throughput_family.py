"""Updates per second of BEAR, BCQ, TD3+BC and ReBRAC at the issue's reference sizes, against the
machine's float32 matmul ceiling and d3rlpy's numbers on this kind of machine (an earlier measurement with benchmarks/peer_d3rlpy.py).

Sizes: batch 256, every network 2x256 (critics, actors, VAEs), 10 sampled actions in the BCQ/BEAR critic
targets, 5 MMD samples per state in BEAR; HalfCheetah-like dimensions (obs 17, action 6) on a synthetic
dataset of 100k transitions held on the device. Each configuration is timed as ``brackit.train`` runs it:
one jitted ``lax.scan`` chunk of updates with batches sampled inside, ``jit(vmap(chunk))`` over the seeds
with the step counter unbatched. Compile time is reported separately; the update rate is the best of
``--repeats`` timed chunks after one warm-up chunk. FLOPs per update come from XLA's cost analysis of one
jitted update (the scan's cost analysis counts its body once, so the update is compiled alone for that).
A thin wrapper over ``brackit.bench`` (also ``brackit bench --only bear ...``).

``--peer-python PY`` first runs ``benchmarks/peer_d3rlpy.py`` with the interpreter ``PY`` (one that has torch
and d3rlpy; see that script) and adds a column comparing with d3rlpy measured on this machine, minutes
before, instead of the earlier d3rlpy figures only.

    nice -n 10 .venv/bin/python benchmarks/throughput_family.py --out benchmarks/results \
        --peer-python /tmp/peer/bin/python
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

from brackit.xla_setup import request_host_devices

request_host_devices()  # before JAX starts: one CPU device per core, for the rows that shard the seeds

from benchmarks_common import script_command  # noqa: E402

from brackit.bench import bench_report, default_device_counts  # noqa: E402
from brackit.files import atomic_write_text  # noqa: E402

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
    "- d3rlpy 2.8.1 on a 2-core CPU (an earlier measurement with benchmarks/peer_d3rlpy.py): BEAR ~31, BCQ (10 samples) ~30, TD3+BC ~100"
    " updates/s; the issue's targets are >= 60% of the ceiling and >= 2.5x d3rlpy.",
]


def peer_rates(
    python: str, algos: list[str], device: str = "cpu:0", processes: int = 1
) -> tuple[dict[str, float], dict]:
    """d3rlpy's ``update`` rates (preset name -> updates/s) from ``peer_d3rlpy.py`` run by ``python``, and
    its whole JSON result; ``processes`` > 1: that many copies side by side, rates summed."""
    script = pathlib.Path(__file__).with_name("peer_d3rlpy.py")
    wanted = [name for name in algos if name in ("bear", "bcq", "td3bc")]
    if not wanted:
        return {}, {}
    done = subprocess.run(
        [python, str(script), "--algos", *wanted, "--device", device, "--processes", str(processes)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: rates["update"] for name, rates in result["rates"].items()}, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=ALGOS, choices=ALGOS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--chunk-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="directory for throughput_family.md")
    parser.add_argument(
        "--peer-python", default=None, help="a Python with torch and d3rlpy (see peer_d3rlpy.py)"
    )
    parser.add_argument("--peer-device", default="cpu:0", help='torch device for d3rlpy, e.g. "cuda:0"')
    parser.add_argument(
        "--devices", nargs="+", type=int, default=None, help="device counts (default: 1 and all)"
    )
    args = parser.parse_args(argv)
    devices = args.devices or default_device_counts()
    peer, peer_runs, notes, footer = None, None, list(NOTES), list(FOOTER)
    if args.peer_python:
        try:
            peer, result = peer_rates(args.peer_python, args.algos, args.peer_device)
            sharded = max(devices)
            if sharded > 1 and max(args.seeds) > 1 and args.peer_device.startswith("cpu"):
                peer_runs, runs_result = peer_rates(args.peer_python, args.algos, args.peer_device, sharded)
        except subprocess.CalledProcessError as error:  # the peer is optional: report it and go on without
            print(
                f"peer_d3rlpy.py failed (exit {error.returncode}):\n{error.stderr}",
                file=sys.stderr,
                flush=True,
            )
            args.peer_python, peer, peer_runs = None, None, None  # no half-measured peer in the table
    if args.peer_python:
        print("d3rlpy measured here:", result, flush=True)
        footer.append(
            f"- d3rlpy here: d3rlpy {result['d3rlpy']}, torch {result['torch']} on {result.get('device', 'cpu:0')}"
            f" ({result['torch_threads']} CPU threads)"
            " measured by `benchmarks/peer_d3rlpy.py` on this machine just before the table, at the same sizes;"
            " `algo.update` on pre-sampled batches, best of "
            f"{result['repeats']} runs (with d3rlpy's own batch sampling before each update: "
            + ", ".join(f"{name} {rates['sample+update']:.1f}" for name, rates in result["rates"].items())
            + " updates/s)."
        )
    if peer_runs:
        print("d3rlpy side by side:", runs_result, flush=True)
        footer.append(
            f"- rows with several seeds are compared with d3rlpy's best way to train several seeds here:"
            f" {runs_result['processes']} copies of `peer_d3rlpy.py` side by side"
            f" (`--processes {runs_result['processes']}`, {runs_result['torch_threads']} torch thread(s)"
            " each), their `algo.update` rates summed: "
            + ", ".join(f"{name} {rate:.1f}" for name, rate in peer_runs.items())
            + " updates/s."
        )
    command = script_command(__file__, argv)
    report = bench_report(
        args.algos,
        args.seeds,
        args.chunk_steps,
        args.repeats,
        command=command.strip(),
        title="Throughput of the BRAC family (BEAR, BCQ, TD3+BC, ReBRAC)",
        notes=notes,
        footer=footer,
        on_row=lambda row: print(row, flush=True),
        peer=peer,
        peer_runs=peer_runs,
        devices=devices,
    )
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "throughput_family.md", report)


if __name__ == "__main__":
    main()
