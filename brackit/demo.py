"""``make demo``: the main job on the embedded default, end to end on a 2-core CPU in about 10 minutes.

1. Builds a small Hopper-v5 ``eps1`` dataset by the BRAC protocol from the shipped SAC behavior policy
   (20% uniform random, 40% policy samples, 40% epsilon-greedy) and writes it as brackit npz.
2. Loads it back and prints its card and statistics.
3. Trains BRAC-v (KL, primal), BEAR, BCQ and BC with 2 vmapped seeds each (one program per algorithm),
   each a run directory under ``OUT/runs/`` (config, metrics.jsonl, checkpoint), evaluating on Hopper-v5.
   ``--devices auto`` (the default) shards the seeds across the CPU's cores (``brackit.hostdevices``).
4. Writes the report (``brackit report``: tables with mean ± std and IQM, learning curves) and prints
   its path.

    python -m brackit.demo [--out demo_out] [--steps 2000] [--transitions 20000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

ENV_ID = "Hopper-v5"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--eval-every", type=int, default=500, help="0: only at the end")
    parser.add_argument("--devices", default="auto", help="a device count or auto (see brackit train)")
    args = parser.parse_args(argv)

    from brackit.hostdevices import request_host_devices

    request_host_devices()  # one CPU device per core; effective only before JAX starts its backend
    from rich.console import Console

    from brackit.cli import parse_devices
    from brackit.data import build, load_dataset, save_dataset
    from brackit.files import atomic_write_text
    from brackit.report import load_runs, write_report
    from brackit.run import run_training

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "hopper-eps1.npz"
    runs_dir = args.out / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)  # the demo's own earlier runs: every demo starts afresh

    console.rule("1. dataset")
    start = time.perf_counter()
    dataset = build("hopper", "eps1", size=args.transitions, seed=0, command="python -m brackit.demo")
    save_dataset(dataset, path)
    console.print(f"built {dataset.size} transitions in {time.perf_counter() - start:.1f} s -> {path}")

    console.rule("2. brackit data info")
    dataset = load_dataset(path)
    console.print_json(json.dumps(dataset.stats()))

    console.rule(f"3. training: {args.seeds} vmapped seeds per algorithm, {args.steps} updates")
    chunk = min(500, args.steps)
    warm = {"warm_start_steps": chunk}  # the reference 20k warm start is longer than the whole demo
    runs = {
        "BRAC-v (KL primal)": (
            "brac",
            {"penalty": "value", "divergence": "kl", "form": "primal", "behavior_steps": 2 * chunk, **warm},
        ),
        "BEAR": ("bear", warm),
        "BCQ": ("bcq", {}),
        "BC": ("bc", {}),
    }
    seconds = {}
    for label, (algorithm, overrides) in runs.items():
        start = time.perf_counter()

        def log(entry, label=label):
            if "eval/return_mean" in entry:
                returns = np.asarray(entry["eval/return_mean"])
                console.print(
                    f"  {label:<20} step {entry['step']:>6}: return {returns.mean():7.1f} ± {returns.std():5.1f}"
                    f"  ({entry['time/updates_per_s']:.0f} updates/s)"
                )

        run_training(
            algorithm,
            path,
            logdir=runs_dir / algorithm,
            steps=args.steps,
            seeds=tuple(range(args.seeds)),
            overrides=overrides,
            chunk_steps=chunk,
            eval_every=args.eval_every or args.steps,
            eval_episodes=args.eval_episodes,
            logger=log,
            label=label,
            tensorboard=False,
            devices=parse_devices(args.devices),
        )
        seconds[label] = time.perf_counter() - start
        console.print(f"  {label}: {seconds[label]:.0f} s")

    console.rule("4. report")
    report = write_report(load_runs([runs_dir]), args.out)
    text = report.read_text()
    behavior_return = dataset.stats()["episode_return_mean"]
    preface = (
        f"Dataset: {path.name}, {dataset.size} transitions (BRAC-protocol eps1 mix of the shipped SAC policy; "
        f"mean episode return in the data {behavior_return:.1f}). Training: {args.steps} updates, "
        f"{args.seeds} seeds vmapped per algorithm; evaluation every {args.eval_every or args.steps} updates, "
        f"{args.eval_episodes} episodes per seed, deterministic actions. Wall time per algorithm (s): "
        + ", ".join(f"{label} {s:.0f}" for label, s in seconds.items())
        + ".\n\n"
    )
    title, _, rest = text.partition("\n")
    atomic_write_text(report, f"{title}\n\n{preface}{rest.lstrip()}")
    print(report.read_text(), flush=True)  # plain: rich would take [..] in the markdown for markup
    console.print(f"report: {report}")
    return report


if __name__ == "__main__":
    main()
