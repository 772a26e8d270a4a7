"""Does BCQ's number of acting candidates explain a return? Re-evaluates a trained BCQ checkpoint with each
``num_act_samples`` given (the BCQ reference's ``select_action`` takes the best of 100 perturbed VAE
candidates, brackit's default; d3rlpy acts on the best of ``n_action_samples``, 10 in the learning benchmark),
with the same episodes and evaluation seed for each, and prints every run's mean return and std.

    BRACKIT_DATA_DIR=... .venv/bin/python -m benchmarks.experiments.bcq_act_samples \\
        benchmarks/results/learning/runs/hopper-eps1/bcq/checkpoint.npz --samples 100 10 --episodes 30 --seed 1

Checkpoints are not committed: run it where the study ran.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from brackit.algos import get_algorithm
from brackit.checkpoint import load_obs_stats
from brackit.evaluation import evaluate
from brackit.run import load_run
from brackit.train import batched_act, run_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--samples", type=int, nargs="+", default=[100, 10])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    spec, config, states = load_run(args.checkpoint)
    if spec.algorithm != "bcq" or spec.env_id is None:
        parser.error(f"{args.checkpoint}: expected a BCQ run with an env id, got {spec.algorithm!r}")
    runs = run_grid(spec.seeds, spec.sweep)
    stats = load_obs_stats(args.checkpoint)
    for samples in args.samples:
        act = batched_act(get_algorithm("bcq"), dataclasses.replace(config, num_act_samples=samples), stats)
        result = evaluate(act, states, spec.env_id, args.episodes, seed=args.seed, mode=spec.eval_mode)
        summary = result.summary()
        for index, run in enumerate(runs):
            mean, std = summary["eval/return_mean"][index], summary["eval/return_std"][index]
            print(
                f"num_act_samples {samples}, {run}: return {mean:.1f} ± {std:.1f} ({args.episodes} episodes)"
            )


if __name__ == "__main__":
    main()
