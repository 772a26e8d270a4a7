"""``brackit data info`` and ``brackit data convert``: inspect and convert offline datasets. ``brackit.cli``
puts them in the ``data`` group, beside ``build`` (``brackit.protocol.cli``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


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


def convert(
    src: Annotated[Path, typer.Argument(help="Source dataset (any readable format).")],
    dst: Annotated[Path, typer.Argument(help="Destination file (npz) or directory (minari).")],
    format: Annotated[str, typer.Option(help="Output format: npz or minari.")] = "npz",
    env_id: Annotated[str | None, typer.Option(help="Gymnasium id to check and record.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace DST (and an npz's card beside it) if it exists.")
    ] = False,
) -> None:
    """Convert a dataset between formats (the write is atomic)."""
    from brackit.data import load_dataset, save_dataset
    from brackit.data.formats import check_destination

    check_destination(dst, format, overwrite)
    dataset = load_dataset(src, env_id=env_id)
    out = save_dataset(dataset, dst, format=format)
    print(f"wrote {out} ({dataset.card.num_transitions} transitions, sha256 {dataset.card.sha256[:12]})")
