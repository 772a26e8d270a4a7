"""``brackit extras fedavg ...``: FedAvg vs FedSGD (McMahan et al. 2017) on MNIST 5k.

``table`` reproduces the shape of the paper's Table 2 (rounds to a target test accuracy, learning rate tuned
per configuration over a small grid, speedup relative to FedSGD, IID and pathological non-IID) and plots test
accuracy against rounds; ``bench`` runs ``benchmarks/extras_fedavg.py`` (vmapped vs sequential clients).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from brackit.errors import ConfigError
from brackit.extras import cli_common
from brackit.provenance import command_line

app = typer.Typer(help="FedAvg vs FedSGD (McMahan et al. 2017).", no_args_is_help=True)

# (E, B) pairs after FedSGD = (1, None); B = None is the paper's B = infinity.
GRIDS = {
    "tiny": dict(rounds=2, clients=10, train=400, test=200, pairs=((1, None), (1, 10)), rates=(0.1,)),
    "small": dict(
        rounds=100,
        clients=100,
        train=None,
        test=None,
        pairs=((1, None), (1, 10), (5, 10)),
        rates=(0.1, 0.3, 1.0),
    ),
    "full": dict(
        rounds=200,
        clients=100,
        train=None,
        test=None,
        pairs=((1, None), (5, None), (1, 10), (5, 10)),
        rates=(0.1, 0.3, 1.0),
    ),
}

BENCH_ROUNDS = {"tiny": 1, "small": 10, "full": 30}
"""``bench``'s rounds per timed block per budget."""


@app.command()
def table(
    budget: str = cli_common.budget_option(),
    out: pathlib.Path = cli_common.out_option(),
    model: str = typer.Option("2nn", help="2nn | cnn"),
    target: float = typer.Option(0.9, help="Target test accuracy for 'rounds to target'."),
    seed: int = cli_common.seed_option(),
) -> None:
    """Rounds to reach --target for FedSGD and FedAvg (E, B) grids, IID and non-IID, with speedups."""
    grid = cli_common.for_budget(GRIDS, budget)
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"--target: expected an accuracy in (0, 1], got {target}")
    from brackit.extras import data, fedavg

    dataset = data.load_mnist5k(seed=seed)
    x_train, y_train = dataset.x_train[: grid["train"]], dataset.y_train[: grid["train"]]
    x_test, y_test = dataset.x_test[: grid["test"]], dataset.y_test[: grid["test"]]
    base = fedavg.FedConfig(model=model, num_clients=grid["clients"], num_rounds=grid["rounds"], seed=seed)
    curves: dict[tuple[str, bool], np.ndarray] = {}
    results = []
    for iid in (True, False):
        for epochs, batch in grid["pairs"]:
            config = dataclasses.replace(base, local_epochs=epochs, batch_size=batch, iid=iid)
            accuracies = fedavg.run_learning_rates(config, x_train, y_train, x_test, y_test, grid["rates"])
            rounds = [fedavg.rounds_to_target(row, target) for row in accuracies]
            reached = [(r, i) for i, r in enumerate(rounds) if r is not None]
            best = min(reached)[1] if reached else int(np.argmax(accuracies.max(axis=1)))
            curves[(config.name, iid)] = accuracies[best]
            results.append(
                (config.name, iid, rounds[best], grid["rates"][best], float(accuracies[best].max()))
            )
    fedsgd = {iid: r for name, iid, r, _, _ in results if name == "FedSGD"}

    def cell(name: str, iid: bool, rounds: int | None) -> str:
        if rounds is None:
            return f"> {grid['rounds']}"
        if name == "FedSGD" or fedsgd[iid] is None:
            return str(rounds)
        return f"{rounds} ({fedsgd[iid] / rounds:.1f}x)"

    title = f"{model.upper()}: rounds to {target:.0%} test accuracy (C={base.client_fraction}, K={base.num_clients})"
    rich_table = Table(title=title)
    for column in ("configuration", "IID", "IID lr", "non-IID", "non-IID lr"):
        rich_table.add_column(column, justify="right")
    lines = [
        *cli_common.results_header(
            f"## FedAvg vs FedSGD, {model.upper()} on MNIST 5k: rounds to {target:.0%} test accuracy"
        ),
        f"- {len(y_train)} training images over K = {base.num_clients} clients, {len(y_test)} test images;"
        f" C = {base.client_fraction}; at most {grid['rounds']} rounds; learning rate tuned over {grid['rates']}"
        " (the rate reaching the target first is shown; if none does, the one with the best accuracy);"
        " speedup = FedSGD rounds / rounds",
        f"- non-IID: sorted by label, {2 * base.num_clients} shards, 2 per client",
        f"- plot: `extras_fedavg_{model}.png`",
        "",
        "| configuration | IID rounds | IID lr | IID best acc | non-IID rounds | non-IID lr | non-IID best acc |",
        "|---|---|---|---|---|---|---|",
    ]
    by_name: dict[str, dict[bool, tuple]] = {}
    for name, iid, rounds, rate, best_accuracy in results:
        by_name.setdefault(name, {})[iid] = (cell(name, iid, rounds), rate, best_accuracy)
    for name, row in by_name.items():
        (iid_cell, iid_rate, iid_acc), (non_cell, non_rate, non_acc) = row[True], row[False]
        rich_table.add_row(name, iid_cell, str(iid_rate), non_cell, str(non_rate))
        lines.append(
            f"| {name} | {iid_cell} | {iid_rate} | {iid_acc:.3f} | {non_cell} | {non_rate} | {non_acc:.3f} |"
        )
    Console().print(rich_table)
    out.mkdir(parents=True, exist_ok=True)
    _plot(curves, target, out / f"extras_fedavg_{model}.png", title)
    cli_common.write_results(out, f"extras_fedavg_{model}.md", lines)


def _plot(curves: dict[tuple[str, bool], np.ndarray], target: float, path: pathlib.Path, title: str) -> None:
    plt = cli_common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True)
    for axis, iid in zip(axes, (True, False), strict=True):
        for (name, curve_iid), curve in curves.items():
            if curve_iid == iid:
                axis.plot(np.arange(1, curve.size + 1), curve, label=name)
        axis.axhline(target, color="gray", linestyle="--", linewidth=0.8)
        axis.set_title("IID" if iid else "pathological non-IID")
        axis.set_xlabel("communication rounds")
        axis.set_ylim(max(0.0, target - 0.3), 1.0)
    axes[0].set_ylabel("test accuracy (best lr)")
    axes[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


@app.command()
def bench(
    budget: str = cli_common.budget_option("tiny (1 round, FedSGD only) | small (10 rounds) | full (30)"),
    out: pathlib.Path = cli_common.out_option(),
) -> None:
    """Rounds per second: vmapped clients vs a sequential per-client loop (benchmarks/extras_fedavg.py)."""
    rounds = cli_common.for_budget(BENCH_ROUNDS, budget)
    script = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "extras_fedavg.py"
    if not script.is_file():
        raise ConfigError(f"{script}: the benchmark ships with the repository, not the installed package")
    spec = importlib.util.spec_from_file_location("extras_fedavg_benchmark", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = module.CASES[1:2] if budget == "tiny" else module.CASES
    results = module.run(rounds, out, command_line(), cases, repeats=1 if budget == "tiny" else 3)
    rich_table = Table(title="FedAvg rounds per second")
    for column in ("configuration", "vmapped", "sequential", "speedup"):
        rich_table.add_column(column, justify="right")
    for label, result in results:
        rich_table.add_row(
            label, f"{result['vmapped']:.2f}", f"{result['sequential']:.2f}", f"{result['speedup']:.1f}x"
        )
    Console().print(rich_table)
