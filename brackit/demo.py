"""``make demo``: the main job on the embedded default, end to end on a 2-core CPU in about 10 minutes.

1. Builds a HalfCheetah-v5 ``eps1`` dataset (100,000 transitions) by the BRAC protocol from the shipped
   SAC behavior policy (20% uniform random, 40% policy samples, 40% epsilon-greedy) and writes it as
   brackit npz. The card records each segment's mean episode return: the bars the algorithms are held to.
2. Loads it back and prints its card and statistics.
3. Trains BC, TD3+BC, BRAC-v (KL primal) and BCQ with 2 vmapped seeds each (one program per algorithm),
   each a run directory under ``OUT/runs/`` (config, metrics.jsonl, checkpoint), evaluating on
   HalfCheetah-v5 by each algorithm's reference rule. Updates per algorithm (``DEMO_STEPS``): 10,000 for
   BC, TD3+BC and BRAC-v, 3,000 for BCQ (whose update costs about four times theirs); ``--steps N``
   gives every algorithm N. BRAC-v fits its behavior policy for as many steps as it trains and warm-starts
   for a tenth of them (the reference: 300k and 20k, longer than the whole demo) with alpha 1.0 (the
   reference's primal default 0.1 learns more slowly in the first 10k updates). BCQ keeps flax's
   initialisation (``net_init='flax'``): with its reference's (PyTorch's, its default) the VAE's posterior
   collapses on this data within the demo's 3,000 updates (KL to 0; final return -1.9 against 2180.0 with
   flax's, 2 seeds). ``--devices auto`` (the
   default) shards the seeds across the CPU's cores (``brackit.xla_setup``).
4. Writes the report (``brackit report``: tables with mean ± std and IQM, learning curves), puts in front
   of it a table of each algorithm's final return against the dataset's random and policy segments, and
   prints it and its path.

    python -m brackit.demo [--out demo_out] [--steps N] [--transitions 100000] [--eval-every 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

TASK = "halfcheetah"
ENV_ID = "HalfCheetah-v5"
DEMO_STEPS = {"BC": 10_000, "TD3+BC": 10_000, "BRAC-v (KL primal)": 10_000, "BCQ": 3_000}
"""Updates per algorithm when ``--steps`` is not given."""
SEGMENTS = ("random", "policy")
"""The dataset segments (``card.extra['segments']``) the final returns are compared with."""


def algorithms(steps: dict[str, int]) -> dict[str, tuple[str, dict[str, Any]]]:
    """label -> (algorithm, config overrides). BRAC's step-counting fields scale with its steps."""
    brac_steps = steps["BRAC-v (KL primal)"]
    return {
        "BC": ("bc", {}),
        "TD3+BC": ("td3bc", {}),
        "BRAC-v (KL primal)": (
            "brac",
            {
                "penalty": "value",
                "divergence": "kl",
                "form": "primal",
                "alpha": 1.0,
                "behavior_steps": brac_steps,
                "warm_start_steps": brac_steps // 10,
            },
        ),
        "BCQ": ("bcq", {"net_init": "flax"}),
    }


def segment_returns(card_extra: dict[str, Any]) -> dict[str, float | None]:
    """Mean episode return of each named segment of a BRAC-protocol dataset (None: no complete episode,
    e.g. in a toy-sized dataset)."""
    return {
        s["name"]: None if s.get("mean_episode_return") is None else float(s["mean_episode_return"])
        for s in card_extra.get("segments", [])
    }


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def comparison_table(
    finals: dict[str, np.ndarray], steps: dict[str, int], segments: dict[str, float | None]
) -> str:
    """Markdown: each algorithm's final return (mean ± std over seeds) against the segments' returns
    (n/a where a segment has no complete episode)."""
    bars = [(name, segments[name]) for name in SEGMENTS if name in segments]
    lines = [
        "## Against the dataset's segments: final return, mean ± std over seeds",
        "",
        "Beats: the mean over seeds is above the segment's mean episode return (deterministic evaluation, "
        "the algorithm's reference rule). "
        + ", ".join(f"{name} segment {_number(value)}" for name, value in bars)
        + ".",
        "",
        "| algorithm | updates | final return | "
        + " | ".join(f"beats {name} ({_number(value)})" for name, value in bars)
        + " | % of policy |",
        "|---|---|---|" + "---|" * len(bars) + "---|",
    ]
    policy = segments.get("policy")
    for label, returns in finals.items():
        mean = float(returns.mean())
        cells = [
            "n/a" if value is None else f"{'yes' if mean > value else 'no'} ({mean - value:+.1f})"
            for _, value in bars
        ]
        share = f"{100 * mean / policy:.0f}%" if policy else "-"
        lines.append(
            f"| {label} | {steps[label]} | {mean:.1f} ± {float(returns.std()):.1f} | "
            + " | ".join(cells)
            + f" | {share} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="updates for every algorithm (default: "
        + ", ".join(f"{label} {n}" for label, n in DEMO_STEPS.items())
        + ")",
    )
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument(
        "--eval-every", type=int, default=1000, help="0: only at the end (capped at each algorithm's steps)"
    )
    parser.add_argument("--devices", default="auto", help="a device count or auto (see brackit train)")
    args = parser.parse_args(argv)
    steps = {label: args.steps or n for label, n in DEMO_STEPS.items()}

    from brackit.xla_setup import request_host_devices

    request_host_devices()  # one CPU device per core; effective only before JAX starts its backend
    from rich.console import Console

    from brackit.cli import parse_devices
    from brackit.data import load_dataset, save_dataset
    from brackit.files import atomic_write_text
    from brackit.protocol.build import build
    from brackit.report import load_runs, write_report
    from brackit.run import run_training

    console = Console()
    total_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{TASK}-eps1.npz"
    runs_dir = args.out / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)  # the demo's own earlier runs: every demo starts afresh

    console.rule("1. dataset")
    start = time.perf_counter()
    dataset = build(TASK, "eps1", size=args.transitions, seed=0, command="python -m brackit.demo")
    save_dataset(dataset, path)
    console.print(f"built {dataset.size} transitions in {time.perf_counter() - start:.1f} s -> {path}")

    console.rule("2. brackit data info")
    dataset = load_dataset(path)
    console.print_json(json.dumps(dataset.stats()))
    segments = segment_returns(dataset.card.extra)
    console.print(
        "segments (mean episode return): "
        + ", ".join(f"{name} {_number(value)}" for name, value in segments.items())
    )

    console.rule(f"3. training: {args.seeds} vmapped seeds per algorithm")
    seconds: dict[str, float] = {}
    finals: dict[str, np.ndarray] = {}
    eval_every: dict[str, int] = {}
    for label, (algorithm, overrides) in algorithms(steps).items():
        start = time.perf_counter()
        eval_every[label] = min(args.eval_every, steps[label]) or steps[label]

        def log(entry, label=label):
            if "eval/return_mean" in entry:
                returns = np.asarray(entry["eval/return_mean"])
                console.print(
                    f"  {label:<20} step {entry['step']:>6}: return {returns.mean():7.1f} ± {returns.std():6.1f}"
                    f"  ({entry['time/updates_per_s']:.0f} updates/s)"
                )

        result = run_training(
            algorithm,
            path,
            logdir=runs_dir / algorithm,
            steps=steps[label],
            seeds=tuple(range(args.seeds)),
            overrides=overrides,
            eval_every=eval_every[label],
            eval_episodes=args.eval_episodes,
            logger=log,
            label=label,
            tensorboard=False,
            devices=parse_devices(args.devices),
        )
        final = result.final_eval()
        if final is not None:
            finals[label] = np.asarray(final["eval/return_mean"], dtype=float)
        seconds[label] = time.perf_counter() - start
        console.print(f"  {label}: {seconds[label]:.0f} s")

    console.rule("4. report")
    report = write_report(load_runs([runs_dir]), args.out)
    text = report.read_text()
    behavior_return = dataset.stats()["episode_return_mean"]
    brac = algorithms(steps)["BRAC-v (KL primal)"][1]
    preface = (
        f"Dataset: {path.name}, {dataset.size} transitions (BRAC-protocol eps1 mix of the shipped SAC policy; "
        f"mean episode return in the data {behavior_return:.1f}). Training: "
        + ", ".join(f"{label} {n}" for label, n in steps.items())
        + f" updates, {args.seeds} seeds vmapped per algorithm; evaluation every "
        + ", ".join(f"{label} {n}" for label, n in eval_every.items())
        + f" updates, {args.eval_episodes} episodes per seed, each algorithm's reference evaluation rule "
        "(BC, TD3+BC, BRAC-v: the policy's deterministic action; BCQ: argmax Q1 over its candidates). "
        f"BRAC-v is scaled down for the demo: behavior policy fitted for {brac['behavior_steps']} steps and "
        f"warm start {brac['warm_start_steps']} steps (the reference's 300k and 20k are longer than the whole "
        f"demo), alpha {brac['alpha']} (the reference's primal default 0.1 learns more slowly this early). "
        "BCQ starts from flax's initialisation (net_init 'flax'; its reference's, the default, collapses the "
        "VAE's posterior on this data within 3,000 updates). "
        "Wall time per algorithm (s): "
        + ", ".join(f"{label} {s:.0f}" for label, s in seconds.items())
        + f"; the whole demo {time.perf_counter() - total_start:.0f} s.\n\n"
    )
    comparison = comparison_table(finals, steps, segments) + "\n" if finals and segments else ""
    title, _, rest = text.partition("\n")
    atomic_write_text(report, f"{title}\n\n{preface}{comparison}{rest.lstrip()}")
    print(report.read_text(), flush=True)  # plain: rich would take [..] in the markdown for markup
    console.print(f"report: {report}")
    return report


if __name__ == "__main__":
    main()
