"""``brackit extras iht ...``: the IHT experiments of Bafna, Murtagh & Vyas (2018).

``recovery`` draws the synthetic phase diagram (exact recovery rate over a (k, t) grid); ``defense`` trains
the top-k DCT classifier on MNIST 5k, attacks it with L0 attacks and compares the undefended and IHT-defended
pipelines on the same attacked images. Both print a rich table and write a markdown report (and a PNG).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import shlex
import subprocess
import sys

import typer
from rich.console import Console
from rich.table import Table

from brackit.errors import ConfigError

app = typer.Typer(help="L0-robust sparse Fourier transform (IHT) experiments.", no_args_is_help=True)

BUDGETS = ("tiny", "small", "full")


def _check_budget(budget: str) -> None:
    if budget not in BUDGETS:
        raise ConfigError(f"--budget: expected one of {BUDGETS}, got {budget!r}")


def provenance(command: str) -> list[str]:
    """Markdown lines naming the machine, the git commit, the date and the command."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
            "?",
        )
    except OSError:
        cpu = "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return [
        f"- machine: {cpu}, {os.cpu_count()} CPU cores, JAX CPU backend",
        f"- git commit: {commit.stdout.strip() or 'unknown'}",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- command: `{command}`",
    ]


def _command() -> str:
    return "brackit " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) if sys.argv else "brackit"


@app.command()
def recovery(
    budget: str = typer.Option("small", help="tiny | small | full"),
    out: pathlib.Path = typer.Option(pathlib.Path("benchmarks/results"), help="Output folder."),
    seed: int = typer.Option(0),
) -> None:
    """Exact-recovery rate of IHT on synthetic k-sparse images with t spikes, over a (k, t) grid."""
    _check_budget(budget)
    from brackit.extras import iht

    grid = {
        "tiny": dict(height=8, width=8, ks=(1, 16), ts=(1, 16), trials=2, num_iters=10),
        "small": dict(ks=(4, 16, 64, 128, 256), ts=(4, 16, 64, 128, 256), trials=10),
        "full": dict(ks=(2, 8, 32, 64, 96, 128, 192, 256), ts=(2, 8, 32, 64, 96, 128, 192, 256), trials=20),
    }[budget]
    config = iht.RecoveryConfig(seed=seed, **grid)
    rates = iht.recovery_rates(config)
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "extras_iht_recovery.png"
    iht.plot_phase_diagram(rates, config, str(plot))
    table = Table(title=f"IHT exact recovery rate ({config.height}x{config.width}, T={config.num_iters})")
    table.add_column("k \\ t")
    for t in config.ts:
        table.add_column(str(t), justify="right")
    lines = [
        "## IHT exact recovery (synthetic)",
        "",
        *provenance(_command()),
        f"- images {config.height}x{config.width}; x = IDCT(a), a k-sparse (uniform random support, N(0, 1) values);"
        f" e: t spikes of magnitude U[1, {config.spike_scale}] x max|x|, random sign; T = {config.num_iters};"
        f" success: ||a_hat - a|| <= {config.tolerance} ||a||; {config.trials} trials per cell",
        f"- plot: `{plot.name}`",
        "",
        "| k \\ t | " + " | ".join(str(t) for t in config.ts) + " |",
        "|---" * (len(config.ts) + 1) + "|",
    ]
    for k, row in zip(config.ks, rates, strict=True):
        table.add_row(str(k), *(f"{rate:.2f}" for rate in row))
        lines.append(f"| {k} | " + " | ".join(f"{rate:.2f}" for rate in row) + " |")
    Console().print(table)
    (out / "extras_iht_recovery.md").write_text("\n".join(lines) + "\n")


@app.command()
def defense(
    budget: str = typer.Option("small", help="tiny | small | full"),
    out: pathlib.Path = typer.Option(pathlib.Path("benchmarks/results"), help="Output folder."),
    seed: int = typer.Option(0),
) -> None:
    """Undefended vs IHT-defended accuracy on MNIST 5k under JSMA, greedy and random L0 attacks."""
    _check_budget(budget)
    from brackit.extras import data, iht

    dataset = data.load_mnist5k(seed=seed)
    settings = {
        "tiny": dict(epochs=1, hidden=(32,), budgets=(5,), num_attack_images=16, num_iters=3),
        "small": dict(budgets=(10, 20, 40), num_attack_images=300),
        "full": dict(budgets=(10, 20, 40), num_attack_images=1000),
    }[budget]
    config = iht.DefenseConfig(seed=seed, **settings)
    rows, metrics = iht.run_defense(config, dataset)
    table = Table(title=f"IHT defence, MNIST 5k ({config.num_attack_images} attacked test images)")
    for column in ("attack", "L0 budget", "undefended", "IHT-defended"):
        table.add_column(column, justify="right")
    lines = [
        "## IHT defence on MNIST 5k",
        "",
        *provenance(_command()),
        f"- classifier: MLP {config.hidden} trained {config.epochs} epochs (Adam {config.learning_rate}, batch"
        f" {config.batch_size}) on top-{config.k} DCT projections of 4000 training images",
        f"- IHT: k = {config.k}, t = {config.t}, T = {config.num_iters} (our choices, not read from the paper)",
        f"- threat model: attacks computed on the undefended classifier (raw image in); the same attacked images"
        f" go through IHT -> classifier; {config.num_attack_images} test images",
        f"- classifier on exact top-k projections of the clean test images: "
        f"{metrics['clean/projection_accuracy']:.3f}; training accuracy {metrics['train/accuracy']:.3f}",
        "",
        "| attack | L0 budget | undefended | IHT-defended |",
        "|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.attack, str(row.budget), f"{row.undefended:.3f}", f"{row.defended:.3f}")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    Console().print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extras_iht_defense.md").write_text("\n".join(lines) + "\n")
