"""``brackit data ...``: inspect and convert offline datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Offline datasets: inspect, convert, build.", no_args_is_help=True)


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="Dataset: brackit .npz, D4RL .hdf5 or a Minari directory.")],
    env_id: Annotated[str | None, typer.Option(help="Gymnasium id to check the dims against.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print the dataset card and statistics."""
    from brackit.data import detect_format, load_dataset

    fmt = detect_format(path)
    dataset = load_dataset(path, env_id=env_id)
    stats = dataset.stats()
    if as_json:
        print(json.dumps({**stats, "format": fmt, "card": dataset.card.to_dict()}, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path} ({fmt})", show_header=False)
    card = dataset.card.to_dict()
    for key in ("env_id", "source_format", "behavior", "sha256"):
        table.add_row(key, str(card[key]))
    table.add_row("action bounds", f"{card['action_low']} .. {card['action_high']}")
    for key, value in stats.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    if card["extra"]:
        table.add_row("extra", json.dumps(card["extra"], sort_keys=True))
    Console().print(table)


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Source dataset (any readable format).")],
    dst: Annotated[Path, typer.Argument(help="Destination file (npz) or directory (minari).")],
    format: Annotated[str, typer.Option(help="Output format: npz or minari.")] = "npz",
    env_id: Annotated[str | None, typer.Option(help="Gymnasium id to check and record.")] = None,
) -> None:
    """Convert a dataset between formats (the write is atomic)."""
    from brackit.data import load_dataset, save_dataset

    dataset = load_dataset(src, env_id=env_id)
    out = save_dataset(dataset, dst, format=format)
    print(f"wrote {out} ({dataset.card.num_transitions} transitions, sha256 {dataset.card.sha256[:12]})")


@app.command()
def build(
    name: Annotated[
        str, typer.Argument(help="TASK-MIX, e.g. hopper-eps1 (tasks: ant, halfcheetah, hopper, walker2d).")
    ],
    size: Annotated[int, typer.Option(help="Transitions in all.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of resets and action noise.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Output path (default: TASK-MIX.npz, or TASK-MIX for minari).")
    ] = None,
    format: Annotated[str, typer.Option(help="Output format: npz or minari.")] = "npz",
    num_envs: Annotated[
        int | None,
        typer.Option(
            help="Environments stepped together (part of the recipe; default: 16, up to 64 for 1M)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Subprocesses stepping a share of them (data unchanged; default: 1 from 240k)."),
    ] = None,
    behavior_dir: Annotated[Path | None, typer.Option(help="Where the behavior policies are.")] = None,
) -> None:
    """Build a dataset by the BRAC protocol from a shipped behavior policy (atomic write)."""

    from brackit.data import save_dataset
    from brackit.data.build import build as build_dataset
    from brackit.data.build import build_command, default_num_envs, default_workers, parse_name

    task, mix = parse_name(name)
    num_envs = default_num_envs(size) if num_envs is None else num_envs
    workers = default_workers(size) if workers is None else workers
    out = out or Path(f"{name}.npz" if format == "npz" else name)
    extra = ["--format", format, "--out", str(out)]
    extra += [] if behavior_dir is None else ["--behavior-dir", str(behavior_dir)]
    command = build_command(name, size, seed, num_envs, *extra)
    dataset = build_dataset(
        task,
        mix,
        size=size,
        seed=seed,
        behavior_dir=behavior_dir,
        num_envs=num_envs,
        workers=workers,
        command=command,
    )
    path = save_dataset(dataset, out, format=format)
    segments = ", ".join(
        f"{s['name']} {s['size']} (return {s['mean_episode_return'] or float('nan'):.1f})"
        for s in dataset.card.extra["segments"]
    )
    print(
        f"wrote {path} ({dataset.card.num_transitions} transitions, sha256 {dataset.card.sha256[:12]}): {segments}"
    )
