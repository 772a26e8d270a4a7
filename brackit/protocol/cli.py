"""``brackit data build``: a dataset by the BRAC protocol (``brackit.protocol.build``). ``brackit.cli`` puts
it in the ``data`` group, beside ``info`` and ``convert`` (``brackit.data.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT (and an npz's card beside it) if it exists.")
    ] = False,
) -> None:
    """Build a dataset by the BRAC protocol from a shipped behavior policy (atomic write)."""
    from brackit.config_checks import COMMON_RANGES, check_option
    from brackit.data import save_dataset
    from brackit.data.formats import check_destination
    from brackit.protocol.build import build as build_dataset
    from brackit.protocol.build import build_command, default_num_envs, default_workers, parse_name

    task, mix = parse_name(name)
    check_option("--size", size, ">= 1")
    check_option("--seed", seed, COMMON_RANGES["seed"])
    check_option("--num-envs", num_envs, f"[1, {size}]")  # every environment adds transitions
    check_option("--workers", workers, ">= 0")
    num_envs = default_num_envs(size) if num_envs is None else num_envs
    workers = default_workers(size) if workers is None else workers
    out = out or Path(f"{name}.npz" if format == "npz" else name)
    check_destination(out, format, overwrite)  # before the build: it takes minutes
    extra = ["--format", format, "--out", str(out)]
    extra += [] if behavior_dir is None else ["--behavior-dir", str(behavior_dir)]
    command = build_command(name, size, seed, num_envs, *extra)
    dataset = build_dataset(
        task,
        mix,
        size,
        seed,
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
