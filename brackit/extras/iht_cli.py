"""``brackit extras iht ...``: the IHT experiments of Bafna, Murtagh & Vyas (2018).

``recovery`` draws the synthetic phase diagram (exact recovery rate over a (k, t) grid); ``defense`` trains
the top-k DCT classifier on MNIST 5k, attacks it with L0 attacks and compares the undefended and IHT-defended
pipelines on the same attacked images. Both print a rich table and write a markdown report (and a PNG).
"""

from __future__ import annotations

import pathlib

import typer
from rich.console import Console

from brackit.extras import cli_common

app = typer.Typer(help="L0-robust sparse Fourier transform (IHT) experiments.", no_args_is_help=True)

RECOVERY_GRIDS = {
    "tiny": dict(height=8, width=8, ks=(1, 16), ts=(1, 16), trials=2, num_iters=10),
    "small": dict(ks=(4, 16, 64, 128, 256), ts=(4, 16, 64, 128, 256), trials=10),
    "full": dict(ks=(2, 8, 32, 64, 96, 128, 192, 256), ts=(2, 8, 32, 64, 96, 128, 192, 256), trials=20),
}
"""``recovery``'s (k, t) grid and trials per budget (``iht.RecoveryConfig`` fields)."""

DEFENSE_SETTINGS = {
    "tiny": dict(epochs=1, hidden=(32,), budgets=(5,), num_attack_images=16, num_iters=3),
    "small": dict(budgets=(10, 20, 40), num_attack_images=300),
    "full": dict(budgets=(10, 20, 40), num_attack_images=1000),
}
"""``defense``'s classifier, L0 budgets and attacked images per budget (``iht.DefenseConfig`` fields)."""


@app.command()
def recovery(
    budget: str = cli_common.budget_option(),
    out: pathlib.Path = cli_common.out_option(),
    seed: int = cli_common.seed_option(),
) -> None:
    """Exact-recovery rate of IHT on synthetic k-sparse images with t spikes, over a (k, t) grid."""
    grid = cli_common.for_budget(RECOVERY_GRIDS, budget)
    from brackit.extras import iht

    config = iht.RecoveryConfig(seed=seed, **grid)
    rates = iht.recovery_rates(config)
    out.mkdir(parents=True, exist_ok=True)
    plot = out / "extras_iht_recovery.png"
    iht.plot_phase_diagram(rates, config, str(plot))
    header = ["k \\ t", *(str(t) for t in config.ts)]
    rows = [[str(k), *(f"{rate:.2f}" for rate in row)] for k, row in zip(config.ks, rates, strict=True)]
    cli_common.print_table(
        Console(),
        f"IHT exact recovery rate ({config.height}x{config.width}, T={config.num_iters})",
        header,
        rows,
    )
    lines = [
        *cli_common.results_header("## IHT exact recovery (synthetic)"),
        f"- images {config.height}x{config.width}; x = IDCT(a), a k-sparse (uniform random support, N(0, 1) values);"
        f" e: t spikes of magnitude U[1, {config.spike_scale}] x max|x|, random sign; T = {config.num_iters};"
        f" success: ||a_hat - a|| <= {config.tolerance} ||a||; {config.trials} trials per cell",
        f"- plot: `{plot.name}`",
        "",
        *cli_common.markdown_table(header, rows),
    ]
    cli_common.write_results(out, "extras_iht_recovery.md", lines)


@app.command()
def defense(
    budget: str = cli_common.budget_option(),
    out: pathlib.Path = cli_common.out_option(),
    seed: int = cli_common.seed_option(),
) -> None:
    """Undefended vs IHT-defended accuracy on MNIST 5k under JSMA, greedy and random L0 attacks."""
    settings = cli_common.for_budget(DEFENSE_SETTINGS, budget)
    from brackit.extras import data, iht

    dataset = data.load_mnist5k(seed=seed)
    config = iht.DefenseConfig(seed=seed, **settings)
    rows, metrics = iht.run_defense(config, dataset)
    header = ["attack", "L0 budget", "undefended", "IHT-defended"]
    cells = [[row.attack, str(row.budget), f"{row.undefended:.3f}", f"{row.defended:.3f}"] for row in rows]
    cli_common.print_table(
        Console(), f"IHT defence, MNIST 5k ({config.num_attack_images} attacked test images)", header, cells
    )
    lines = [
        *cli_common.results_header("## IHT defence on MNIST 5k"),
        f"- classifier: MLP {config.hidden} trained {config.epochs} epochs (Adam {config.learning_rate}, batch"
        f" {config.batch_size}) on top-{config.k} DCT projections of 4000 training images",
        f"- IHT: k = {config.k}, t = {config.t}, T = {config.num_iters} (our choices, not read from the paper)",
        f"- threat model: attacks computed on the undefended classifier (raw image in); the same attacked images"
        f" go through IHT -> classifier; {config.num_attack_images} test images",
        f"- classifier on exact top-k projections of the clean test images: "
        f"{metrics['clean/projection_accuracy']:.3f}; training accuracy {metrics['train/accuracy']:.3f}",
        "",
        *cli_common.markdown_table(header, cells),
    ]
    cli_common.write_results(out, "extras_iht_defense.md", lines)
