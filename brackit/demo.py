"""``make demo``: the main job on the embedded default, end to end on a 2-core CPU in a few minutes.

1. Builds a small Hopper-v5 ``eps1`` dataset by the BRAC protocol from the shipped SAC behavior policy
   (20% uniform random, 40% policy samples, 40% epsilon-greedy) and writes it as brackit npz.
2. Loads it back and prints its card and statistics.
3. Trains BC and BRAC-v (KL, primal) with 2 vmapped seeds each, evaluates them on Hopper-v5, and writes a
   Markdown report whose path it prints.

    python -m brackit.demo [--out demo_out] [--steps 3000] [--transitions 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ENV_ID = "Hopper-v5"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--transitions", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=5)
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from brackit.algos import bc, brac
    from brackit.data import build, load_dataset, save_dataset
    from brackit.files import atomic_write_text
    from brackit.train import train

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "hopper-eps1.npz"

    console.rule("1. dataset")
    start = time.perf_counter()
    dataset = build("hopper", "eps1", size=args.transitions, seed=0, command="python -m brackit.demo")
    save_dataset(dataset, path)
    console.print(f"built {dataset.size} transitions in {time.perf_counter() - start:.1f} s -> {path}")

    console.rule("2. brackit data info")
    dataset = load_dataset(path)
    console.print_json(json.dumps(dataset.stats()))

    console.rule("3. training (vmapped seeds)")
    seeds = tuple(range(args.seeds))
    chunk = min(1000, args.steps)
    common = {"steps": args.steps, "chunk_steps": chunk, "seeds": seeds, "eval_every": args.steps}
    common["eval_episodes"] = args.eval_episodes
    runs = {
        "BC": ("bc", bc.BCConfig()),
        "BRAC-v (KL primal)": (
            "brac",
            brac.BRACConfig(
                penalty="value", divergence="kl", form="primal", behavior_steps=chunk, warm_start_steps=chunk
            ),
        ),
    }
    rows = []
    for label, (algorithm, config) in runs.items():
        start = time.perf_counter()

        def log(entry, label=label):
            if entry["phase"] == "train":
                metric = "bc/loss" if "bc/loss" in entry else "critic/loss"
                console.print(f"  {label} step {entry['step']}: {metric} {np.mean(entry[metric]):.3f}")

        result = train(algorithm, dataset, config, logger=log, **common)
        final = result.final_eval()
        returns = final["eval/return_mean"]
        scores = final.get("eval/score_mean", np.full_like(returns, np.nan))
        rows.append((label, returns, scores, time.perf_counter() - start))

    behavior_return = dataset.stats()["episode_return_mean"]
    table = Table(
        title=f"{ENV_ID} eps1, {dataset.size} transitions, {args.steps} updates, {len(seeds)} seeds"
    )
    for column in ("algorithm", "return (mean ± std over seeds)", "D4RL score", "wall time (s)"):
        table.add_column(column)
    lines = [
        f"# brackit demo: {ENV_ID}",
        "",
        f"Dataset: {path} ({dataset.size} transitions, BRAC-protocol eps1 mix of the shipped SAC policy; "
        f"mean episode return {behavior_return:.1f}).",
        f"Training: {args.steps} updates, seeds {list(seeds)} vmapped; evaluation: {args.eval_episodes} episodes "
        "per seed, deterministic (mode) actions.",
        "",
        "| algorithm | return (mean ± std over seeds) | D4RL-normalized score | wall time (s) |",
        "|---|---|---|---|",
    ]
    for label, returns, scores, seconds in rows:
        cells = (
            label,
            f"{returns.mean():.1f} ± {returns.std():.1f}",
            f"{np.mean(scores):.1f}",
            f"{seconds:.0f}",
        )
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    report = args.out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    console.print(f"report: {report}")
    return report


if __name__ == "__main__":
    main()
