"""Several seeds on one CPU device: vmapped (as ``brackit.train.over_runs`` runs them) vs one after another
(``lax.map`` over the run axis, each seed's whole chunk unbatched). A measurement for a possible run-order
option; brackit itself always vmaps.

For each preset named, both programs are compiled with brackit's training options (``brackit.xla_setup``) and
timed alternately, chunk after chunk, so that the drifting speed of a shared machine hits both alike.

    .venv/bin/python -m benchmarks.experiments.run_order_ab --out benchmarks/results/experiments
"""

from __future__ import annotations

import argparse
import pathlib

import jax

from benchmarks.benchmarks_common import (
    emit_report,
    gain_cell,
    machine_header,
    preset_runs,
    rate_cell,
    script_command,
    time_alternately,
)
from brackit import xla_setup
from brackit.bench import PRESETS
from brackit.train import over_runs

DEFAULT = ["BC", "BRAC-v KL primal", "BRAC-v MMD primal", "BRAC-p KL dual", "bear", "bcq", "td3bc", "rebrac"]
STEPS = {"BC": 125, "bear": 12, "bcq": 12}  # per chunk, per seed (default 25), as brackit bench with 8 seeds


def compare(name: str, num_seeds: int, steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    fns, states, dataset = preset_runs(name, num_seeds, steps)

    def one_after_another(states, dataset, step):
        return jax.lax.map(lambda state: fns.chunk(state, dataset, step), states)

    programs = {
        "vmap": (xla_setup.training_jit(over_runs(fns.chunk, num_seeds)), states, dataset),
        "map": (xla_setup.training_jit(one_after_another), states, dataset),
    }
    return time_alternately(programs, steps, steps * num_seeds, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=DEFAULT, choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    lines = [
        f"# {args.seeds} seeds on one device: vmapped vs one after another (`lax.map`)",
        "",
        machine_header(script_command(__file__, argv)),
        f"- 1 {jax.default_backend()} device; chunks timed alternately, {args.repeats} of each after a warm-up;"
        " updates/s of all seeds together, best chunk (median in brackets); both compiled with"
        " `brackit.xla_setup`",
        "",
        "| configuration | steps/chunk per seed | vmap | one after another | gain (best / median) |",
        "|---|---|---|---|---|",
    ]
    for name in args.only:
        steps = STEPS.get(name, 25)
        rates = compare(name, args.seeds, steps, args.repeats)
        lines.append(
            f"| {name} | {steps} | {rate_cell(rates['vmap'])} | {rate_cell(rates['map'])}"
            f" | {gain_cell(rates['map'], rates['vmap'])} |"
        )
        print(lines[-1], flush=True)
    emit_report(lines, args.out, "run_order_ab.md")


if __name__ == "__main__":
    main()
