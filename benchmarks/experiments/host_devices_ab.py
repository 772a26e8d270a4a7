"""Several seeds on one CPU device vs sharded across one device per core: the measurement behind
``brackit.xla_setup`` and ``--devices auto``.

The host is split into one XLA CPU device per core (``request_host_devices``, as the CLI does). For each
preset named, the same ``make_train`` chunk over ``--seeds`` runs is compiled twice, as ``brackit.train``
runs it: on one device (all the seeds vmapped in one program, every thread of the pool) and with the run
axis sharded across all the devices (``RunPlacement``: each device runs its share of the seeds). The two
are timed alternately, chunk after chunk, so that the drifting speed of a shared machine hits both alike.

    .venv/bin/python -m benchmarks.experiments.host_devices_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib

from brackit.xla_setup import request_host_devices

request_host_devices()  # before JAX starts

import jax  # noqa: E402

from benchmarks.benchmarks_common import (  # noqa: E402
    emit_report,
    gain_cell,
    machine_header,
    preset_runs,
    rate_cell,
    script_command,
    time_alternately,
)
from brackit.bench import PRESETS  # noqa: E402
from brackit.train import RunPlacement, over_runs  # noqa: E402

DEFAULT = ["BC", "BRAC-v KL primal", "BRAC-p KL dual", "bear", "bcq", "td3bc", "rebrac"]
STEPS = {"BC": 250, "bear": 25, "bcq": 25}  # per chunk, per seed (default 50)


def compare(name: str, num_seeds: int, steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    fns, states, dataset = preset_runs(name, num_seeds, steps)
    one = RunPlacement.create(1, num_seeds)
    sharded = RunPlacement.create(jax.device_count(), num_seeds)
    programs = {
        "one": (one.jit(over_runs(fns.chunk, num_seeds)), states, dataset),
        "sharded": (
            sharded.jit(over_runs(fns.chunk, num_seeds)),
            sharded.shard(states),
            sharded.replicate(dataset),
        ),
    }
    return time_alternately(programs, steps, steps * num_seeds, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=DEFAULT, choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    devices = jax.device_count()
    lines = [
        f"# {args.seeds} seeds: one device vs sharded across {devices} host devices",
        "",
        machine_header(script_command(__file__, argv)),
        f"- {devices} {jax.default_backend()} devices (`brackit.xla_setup`); chunks timed alternately,"
        f" {args.repeats} of each after a warm-up; updates/s of all seeds together, best chunk (median in"
        " brackets)",
        "",
        f"| configuration | steps/chunk | one device | {devices} devices | gain (best / median) |",
        "|---|---|---|---|---|",
    ]
    for name in args.only:
        steps = STEPS.get(name, 50)
        rates = compare(name, args.seeds, steps, args.repeats)
        one, sharded = rates["one"], rates["sharded"]
        lines.append(
            f"| {name} | {steps} | {rate_cell(one)} | {rate_cell(sharded)} | {gain_cell(sharded, one)} |"
        )
        print(lines[-1], flush=True)
    emit_report(lines, args.out, "host_devices_ab.md")


if __name__ == "__main__":
    main()
