"""``brackit extras fedavg ...``: FedAvg vs FedSGD (McMahan et al. 2017) on MNIST 5k, over seeds.

``table`` reproduces the shape of the paper's Table 2 (rounds to a target test accuracy, learning rate tuned
per configuration over a small grid, speedup relative to FedSGD, IID and pathological non-IID; each (E, B)
row with its local work ``u = E n / B`` beside the paper's); ``csweep`` its Table 1 (the client fraction C,
2NN, E = 1, B = 10 and B = inf, speedup relative to C = 0); ``bench`` runs ``benchmarks/extras_fedavg.py``
(vmapped vs sequential clients). ``table`` and ``csweep`` run every seed of ``--seeds`` (each a new data
split, partition, initialization and client sampling), report each number as a ``Spread`` over the seeds and
each claim of the paper with a ``verdict``, and write a JSON sidecar of every seed's numbers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from brackit.errors import ConfigError
from brackit.extras import cli_common
from brackit.provenance import command_line

app = typer.Typer(help="FedAvg vs FedSGD (McMahan et al. 2017).", no_args_is_help=True)

# (E, B) pairs after FedSGD = (1, None); B = None is the paper's B = infinity. E = 15, B = 10 on 40 images per client
# has u = E n / B = 60, the paper's u for E = 1, B = 10 on 600 images (Table 2).
PAIRS = ((1, None), (5, None), (1, 10), (5, 10), (15, 10))
GRIDS = {
    "tiny": dict(rounds=2, clients=10, train=400, test=200, pairs=((1, None), (1, 10)), rates=(0.1,)),
    "small": dict(rounds=100, clients=100, train=None, test=None, pairs=PAIRS[:4], rates=(0.1, 0.3)),
    "full": dict(rounds=200, clients=100, train=None, test=None, pairs=PAIRS, rates=(0.05, 0.1, 0.2, 0.4)),
}

# The client fractions C of the paper's Table 1 (2NN, E = 1), with B = inf and B = 10; the full budget tunes
# the learning rate over two values where the small one uses one.
C_SMALL = dict(
    rounds=300,
    clients=100,
    train=None,
    test=None,
    fractions=(0.0, 0.1, 0.2, 0.5, 1.0),
    batches=(None, 10),
    rates=(0.3,),
)
C_GRIDS = {
    "tiny": dict(
        rounds=2, clients=10, train=400, test=200, fractions=(0.0, 0.5), batches=(None, 10), rates=(0.1,)
    ),
    "small": C_SMALL,
    "full": {**C_SMALL, "rates": (0.1, 0.3)},
}

BENCH_ROUNDS = {"tiny": 1, "small": 10, "full": 30}
"""``bench``'s rounds per timed block per budget."""

PARTITIONS = {True: "iid", False: "noniid"}
PARTITION_TITLES = {True: "IID", False: "non-IID"}


@dataclasses.dataclass(frozen=True)
class Bound:
    """A number known to lie in ``[lo, hi]``: rounds to a target not reached within ``N`` rounds are
    ``[N + 1, inf]``, and a speedup computed from such a count is a bound too. A claim that compares two of
    them is decided only when their intervals do not overlap."""

    lo: float
    hi: float

    @classmethod
    def rounds(cls, rounds: int | None, cap: int) -> Bound:
        """Rounds to the target (``None``: not reached within ``cap`` rounds)."""
        return cls(float(rounds), float(rounds)) if rounds is not None else cls(cap + 1.0, math.inf)

    @property
    def exact(self) -> bool:
        return self.lo == self.hi

    def less(self, other: Bound) -> bool | None:
        """``self < other``: True or False where the intervals decide it, None where they do not."""
        if self.hi < other.lo:
            return True
        if self.lo >= other.hi:
            return False
        return None

    def __truediv__(self, other: Bound) -> Bound:
        return Bound(_divide(self.lo, other.hi), _divide(self.hi, other.lo))


def _divide(a: float, b: float) -> float:
    return 0.0 if math.isinf(b) else a / b


@dataclasses.dataclass(frozen=True)
class Run:
    """One configuration at one seed, at its best learning rate."""

    rounds: Bound
    """Rounds to the target (1-based), exact or (not reached within the budget's rounds) a lower bound."""
    rate: float
    best_accuracy: float
    curve: np.ndarray


def _target_option() -> Any:
    """The ``--target`` option of ``table`` and ``csweep``: the test accuracy of 'rounds to target'."""
    return typer.Option(0.9, help="Target test accuracy for 'rounds to target'.")


def _clients_option() -> Any:
    """The ``--clients`` option of ``table`` and ``csweep`` (checked by ``_check_clients``)."""
    return typer.Option(None, help="Clients K (default: the budget's, 100 but for tiny).")


def _check_target(target: float) -> None:
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"--target: expected an accuracy in (0, 1], got {target}")


def _check_clients(clients: int | None, grid: dict) -> int:
    """``--clients`` (K) or the budget's; the pathological split needs 2 K shards of at least one image."""
    num_train = grid["train"] or 4000  # load_mnist5k's 4000 training images (test fraction 0.2)
    if clients is None:
        return grid["clients"]
    if not 1 <= clients <= num_train // 2:
        raise ConfigError(
            f"--clients: expected a number of clients K in [1, {num_train // 2}], got {clients}"
        )
    return clients


def _checked_options(
    grids: dict[str, dict], budget: str, target: float, clients: int | None, seeds: str
) -> tuple[dict, int, tuple[int, ...]]:
    """The budget's grid, the number of clients K and the seeds of ``table`` and ``csweep``, each option
    checked."""
    grid = cli_common.for_budget(grids, budget)
    _check_target(target)
    return grid, _check_clients(clients, grid), cli_common.parse_seeds(seeds)


def _run_config(config, dataset, grid: dict, target: float) -> Run:
    from brackit.extras import fedavg

    x_train, y_train = dataset.x_train[: grid["train"]], dataset.y_train[: grid["train"]]
    x_test, y_test = dataset.x_test[: grid["test"]], dataset.y_test[: grid["test"]]
    accuracies = fedavg.run_learning_rates(
        config, x_train, y_train, x_test, y_test, grid["rates"], target=target
    )
    best = fedavg.best_rate(accuracies, target)
    return Run(
        rounds=Bound.rounds(fedavg.rounds_to_target(accuracies[best], target), config.num_rounds),
        rate=grid["rates"][best],
        best_accuracy=float(accuracies[best].max()),
        curve=accuracies[best],
    )


def _rounds_cell(values: Sequence[Bound]) -> str:
    """A Spread of the rounds over seeds, or each seed's value when a seed missed the target (``>N``)."""
    if all(v.exact for v in values):
        return cli_common.spread([v.lo for v in values]).format(0)
    return ", ".join(f"{v.lo:.0f}" if v.exact else f">{v.lo - 1:.0f}" for v in values)


def _speedup_cell(values: Sequence[Bound]) -> str:
    """A Spread of the speedups over seeds, or each seed's value or bound (``?``: no bound)."""
    if all(v.exact for v in values):
        spread = cli_common.spread([v.lo for v in values])
        return f"{spread.mean:.1f}x" + ("" if spread.n == 1 else f" ({spread.low:.1f}-{spread.high:.1f})")

    def one(v: Bound) -> str:
        if v.exact:
            return f"{v.lo:.1f}x"
        if math.isinf(v.hi) and v.lo > 0.0:
            return f">={math.floor(v.lo * 10) / 10:.1f}x"
        if math.isfinite(v.hi):
            return f"<={math.ceil(v.hi * 10) / 10:.1f}x"
        return "?"

    return ", ".join(one(v) for v in values)


def _metric(value: Bound) -> float:
    """A metric for the JSON sidecar: its value, or NaN where only a bound is known (a target missed)."""
    return value.lo if value.exact else math.nan


def _verdict(holds: Sequence[bool | None]) -> str:
    """``cli_common.verdict``, or how often the claim held and in how many seeds it was undecided (a target
    not reached within the budget's rounds leaves only a bound)."""
    undecided = sum(h is None for h in holds)
    if not undecided:
        return cli_common.verdict([bool(h) for h in holds])
    held, n = sum(h is True for h in holds), len(holds)
    return f"held in {held}/{n} seeds, undecided in {undecided}/{n} (a target not reached)"


def _claim_row(claim: str, holds: Sequence[bool | None]) -> str:
    per_seed = " ".join({True: "yes", False: "no", None: "?"}[h] for h in holds)
    return f"| {claim} | {_verdict(holds)} | {per_seed} |"


def _run_seeds(
    configs: dict[tuple, Any], seeds: Sequence[int], grid: dict, target: float
) -> tuple[dict[tuple, dict[int, Run]], dict[str, int]]:
    """Every config at every seed (each seed loads its own data split): runs[key][seed], and the numbers of
    training and test images used."""
    from brackit.extras import data

    runs: dict[tuple, dict[int, Run]] = {key: {} for key in configs}
    sizes: dict[str, int] = {}
    for seed in seeds:
        dataset = data.load_mnist5k(seed=seed)
        sizes.update(train=len(dataset.y_train[: grid["train"]]), test=len(dataset.y_test[: grid["test"]]))
        for key, config in configs.items():
            runs[key][seed] = _run_config(dataclasses.replace(config, seed=seed), dataset, grid, target)
    return runs, sizes


@app.command()
def table(
    budget: str = cli_common.budget_option(
        "tiny | small (FedSGD, E=5 B=inf, E=1 and 5 B=10; 100 rounds; 2 rates) | full (adds E=15 B=10; 200 rounds;"
        " 4 rates)"
    ),
    out: pathlib.Path = cli_common.out_option(),
    model: str = typer.Option("2nn", help="2nn | cnn"),
    target: float = _target_option(),
    clients: int = _clients_option(),
    seeds: str = cli_common.seeds_option(),
) -> None:
    """Rounds to reach --target for FedSGD and FedAvg (E, B) grids, IID and non-IID, with speedups (Table 2)."""
    from brackit.extras import fedavg

    if model not in fedavg.MODELS:
        raise ConfigError(f"--model: expected one of {fedavg.MODELS}, got {model!r}")
    grid, num_clients, seed_list = _checked_options(GRIDS, budget, target, clients, seeds)
    base = fedavg.FedConfig(model=model, num_clients=num_clients, num_rounds=grid["rounds"])
    configs = {
        (pair, iid): dataclasses.replace(base, local_epochs=pair[0], batch_size=pair[1], iid=iid)
        for pair in grid["pairs"]
        for iid in (True, False)
    }
    runs, sizes = _run_seeds(configs, seed_list, grid, target)
    client_size = sizes["train"] / num_clients
    fedsgd = (1, None)
    names = {pair: configs[(pair, True)].name for pair in grid["pairs"]}
    slugs = {pair: _slug(*pair) for pair in grid["pairs"]}
    speedups = {
        (pair, iid): [runs[(fedsgd, iid)][s].rounds / runs[(pair, iid)][s].rounds for s in seed_list]
        for pair in grid["pairs"]
        for iid in (True, False)
    }
    per_seed = {
        seed: {
            f"{slugs[pair]}/{PARTITIONS[iid]}/{field}": value
            for (pair, iid) in configs
            for field, value in (
                ("rounds", _metric(runs[(pair, iid)][seed].rounds)),
                ("lr", runs[(pair, iid)][seed].rate),
                ("best_acc", runs[(pair, iid)][seed].best_accuracy),
                *(() if pair == fedsgd else (("speedup", _metric(speedups[(pair, iid)][i])),)),
            )
        }
        for i, seed in enumerate(seed_list)
    }

    header = ["configuration", "u (ours)", "u (paper)", "IID rounds", "IID speedup", "non-IID rounds"]
    header += ["non-IID speedup", "lr IID / non-IID (per seed)"]
    rows = []
    for pair in grid["pairs"]:
        u_ours = fedavg.updates_per_round(*pair, client_size)
        u_paper = fedavg.updates_per_round(*pair, fedavg.PAPER_CLIENT_SIZE)
        cells = [names[pair], f"{u_ours:g}", f"{u_paper:g}"]
        for iid in (True, False):
            cells.append(_rounds_cell([runs[(pair, iid)][s].rounds for s in seed_list]))
            cells.append("-" if pair == fedsgd else _speedup_cell(speedups[(pair, iid)]))
        rates = [" ".join(f"{runs[(pair, iid)][s].rate:g}" for s in seed_list) for iid in (True, False)]
        cells.append(" / ".join(rates))
        rows.append(cells)

    claims = _table_claims(grid["pairs"], names, runs, speedups, seed_list)
    title = (
        f"{model.upper()}: rounds to {target:.0%} test accuracy (C={base.client_fraction}, K={num_clients})"
    )
    cli_common.print_table(Console(), title, header, rows)
    notes = [
        f"- {sizes['train']} training images over K = {num_clients} clients (n = {client_size:g} each; the paper:"
        f" 600), {sizes['test']} test images; C ="
        f" {base.client_fraction} (m = {base.clients_per_round} clients per round; the paper: 10); at most"
        f" {grid['rounds']} rounds; seeds {', '.join(map(str, seed_list))} (each: data split, partition,"
        " initialization, client sampling)",
        f"- learning rate tuned per configuration and seed over {grid['rates']} (the rate reaching the target"
        " first, as the paper reports each configuration at its best rate); speedup = FedSGD rounds / rounds,"
        " per seed",
        "- u = E n / B: a client's SGD steps per round (the paper's Table 2 column; B = inf: u = E);"
        " 'u (paper)' is the same (E, B) on the paper's 600 images per client",
        f"- plot (seed {seed_list[0]}): `extras_fedavg_{model}.png`; every seed's numbers:"
        f" `extras_fedavg_{model}.json`",
    ]
    heading = f"## FedAvg vs FedSGD, {model.upper()} on MNIST 5k: rounds to {target:.0%} test accuracy"
    full_budget = (
        f"The full budget adds E=15 B=10 (u = 60, the paper's u for E=1 B=10), runs 200 rounds and tunes over"
        f" {GRIDS['full']['rates']}: `brackit extras fedavg table --budget full --model {model} --target"
        f" {target:g} --seeds {seeds}`."
    )
    lines = _report(heading, notes, num_clients, (header, rows), 2, claims, budget, full_budget)
    out.mkdir(parents=True, exist_ok=True)
    curves = {(names[pair], iid): runs[(pair, iid)][seed_list[0]].curve for (pair, iid) in configs}
    _plot(curves, target, out / f"extras_fedavg_{model}.png", title)
    cli_common.write_results_files(
        out,
        f"extras_fedavg_{model}",
        lines,
        budget=budget,
        seeds=seed_list,
        per_seed=per_seed,
        extra={"target": target, "clients": num_clients, "rates": list(grid["rates"])},
    )


def _report(
    title: str,
    notes: Sequence[str],
    num_clients: int,
    table: tuple[list[str], list[list[str]]],
    paper_table: int,
    claims: Sequence[str],
    budget: str,
    full_budget: str,
) -> list[str]:
    """The results file of ``table`` or ``csweep``: ``title``, the provenance, the command's ``notes`` and
    the notes they share, the ``(header, rows)`` of rounds to the target, the claims of the paper's Table
    ``paper_table`` (McMahan et al. 2017, Section 3), one row each, and below a budget other than ``full``
    ``full_budget``, what the full budget runs and its command."""
    lines = [
        *cli_common.results_header(title),
        *notes,
        f"- non-IID: sorted by label, {2 * num_clients} shards, 2 per client",
        "- rounds: mean (min-max) over seeds; `>N`: not reached within N rounds in that seed;"
        " a speedup with such a count is a bound (`>=`, `<=`; `?`: both missed); a claim is undecided in a seed"
        " where the bounds overlap",
        "",
        *cli_common.markdown_table(*table),
        "",
        f"### Claims of the paper (McMahan et al. 2017, Section 3, Table {paper_table})",
        "",
        "| claim | verdict | held per seed |",
        "|---|---|---|",
        *claims,
    ]
    if budget != "full":
        lines += ["", f"Budget `{budget}`. {full_budget}"]
    return lines


def _slug(epochs: int, batch: int | None) -> str:
    if (epochs, batch) == (1, None):
        return "fedsgd"
    return f"fedavg_e{epochs}_b{'inf' if batch is None else batch}"


def _table_claims(pairs, names, runs, speedups, seeds) -> list[str]:
    """The paper's Table 2 claims, checked in every seed."""
    fedsgd = (1, None)
    lines = []

    def rounds(pair, iid):
        return [runs[(pair, iid)][s].rounds for s in seeds]

    for pair in pairs:
        if pair == fedsgd:
            continue
        for iid in (True, False):
            holds = [a.less(b) for a, b in zip(rounds(pair, iid), rounds(fedsgd, iid), strict=True)]
            lines.append(
                _claim_row(f"{names[pair]} needs fewer rounds than FedSGD, {PARTITION_TITLES[iid]}", holds)
            )
    for pair in pairs:
        if pair == fedsgd:
            continue
        holds = [b.less(a) for a, b in zip(speedups[(pair, True)], speedups[(pair, False)], strict=True)]
        lines.append(_claim_row(f"{names[pair]}: larger speedup IID than non-IID", holds))
    for more, less, claim in (
        ((5, 10), (1, 10), "E=5 needs fewer rounds than E=1 (B=10)"),
        ((15, 10), (5, 10), "E=15 needs fewer rounds than E=5 (B=10)"),
        ((5, 10), (5, None), "B=10 needs fewer rounds than B=inf (E=5)"),
    ):
        if more in pairs and less in pairs:
            for iid in (True, False):
                holds = [a.less(b) for a, b in zip(rounds(more, iid), rounds(less, iid), strict=True)]
                lines.append(_claim_row(f"{claim}, {PARTITION_TITLES[iid]}", holds))
    return lines


@app.command()
def csweep(
    budget: str = cli_common.budget_option(
        "tiny | small (C = 0, 0.1, 0.2, 0.5, 1; one rate) | full (the same C, 2 rates); 300 rounds"
    ),
    out: pathlib.Path = cli_common.out_option(),
    target: float = _target_option(),
    clients: int = _clients_option(),
    seeds: str = cli_common.seeds_option(),
) -> None:
    """Rounds to reach --target against the client fraction C (Table 1: 2NN, E=1, B=inf and B=10)."""
    from brackit.extras import fedavg

    grid, num_clients, seed_list = _checked_options(C_GRIDS, budget, target, clients, seeds)
    base = fedavg.FedConfig(model="2nn", num_clients=num_clients, num_rounds=grid["rounds"], local_epochs=1)
    configs = {
        (batch, iid, fraction): dataclasses.replace(base, batch_size=batch, iid=iid, client_fraction=fraction)
        for iid in (True, False)
        for batch in grid["batches"]
        for fraction in grid["fractions"]
    }
    runs, sizes = _run_seeds(configs, seed_list, grid, target)
    first = grid["fractions"][0]
    speedups = {
        key: [runs[(key[0], key[1], first)][s].rounds / runs[key][s].rounds for s in seed_list]
        for key in configs
    }

    def batch_name(batch: int | None) -> str:
        return "inf" if batch is None else str(batch)

    per_seed = {
        seed: {
            f"{PARTITIONS[iid]}/b{batch_name(batch)}/c{fraction:g}/{field}": value
            for (batch, iid, fraction) in configs
            for field, value in (
                ("rounds", _metric(runs[(batch, iid, fraction)][seed].rounds)),
                ("lr", runs[(batch, iid, fraction)][seed].rate),
                ("best_acc", runs[(batch, iid, fraction)][seed].best_accuracy),
                ("speedup", _metric(speedups[(batch, iid, fraction)][i])),
            )
        }
        for i, seed in enumerate(seed_list)
    }
    header = [
        "partition",
        "B",
        *(
            f"C={fraction:g} (m={configs[(None, True, fraction)].clients_per_round})"
            for fraction in grid["fractions"]
        ),
    ]
    rows = []
    for iid in (True, False):
        for batch in grid["batches"]:
            cells = [PARTITION_TITLES[iid], batch_name(batch)]
            for fraction in grid["fractions"]:
                key = (batch, iid, fraction)
                cell = _rounds_cell([runs[key][s].rounds for s in seed_list])
                if fraction != first:
                    cell += f" ({_speedup_cell(speedups[key])})"
                cells.append(cell)
            rows.append(cells)
    claims = _c_claims(grid, runs, speedups, seed_list)
    title = f"2NN, E=1: rounds to {target:.0%} test accuracy against C (K={num_clients})"
    cli_common.print_table(Console(), title, header, rows)
    notes = [
        f"- {sizes['train']} training images over K = {num_clients} clients (n = {sizes['train'] / num_clients:g}"
        f" each; the paper: 600), {sizes['test']} test images; E = 1; m = max(C K, 1) clients per round; at"
        f" most {grid['rounds']} rounds; seeds {', '.join(map(str, seed_list))}",
        f"- learning rate tuned per cell and seed over {grid['rates']}; in brackets the speedup over"
        f" C = {first:g} (rounds at C = {first:g} / rounds), per seed",
        "- every seed's numbers: `extras_fedavg_c.json`",
    ]
    heading = f"## FedAvg, 2NN on MNIST 5k: the client fraction C, rounds to {target:.0%} test accuracy"
    full_budget = (
        f"The full budget runs the same C and tunes the rate over {C_GRIDS['full']['rates']}:"
        f" `brackit extras fedavg csweep --budget full --target {target:g} --seeds {seeds}`."
    )
    lines = _report(heading, notes, num_clients, (header, rows), 1, claims, budget, full_budget)
    cli_common.write_results_files(
        out,
        "extras_fedavg_c",
        lines,
        budget=budget,
        seeds=seed_list,
        per_seed=per_seed,
        extra={"target": target, "clients": num_clients, "rates": list(grid["rates"])},
    )


def _c_claims(grid: dict, runs, speedups, seeds) -> list[str]:
    """The paper's Table 1 claims (Section 3, 'Increasing parallelism'), checked in every seed."""
    fractions, batches = grid["fractions"], grid["batches"]
    lines = []
    if 0.1 not in fractions or 10 not in batches:
        return ["| (the claims need C = 0.1 and B = 10 in the grid) | - | - |"]
    top = max(fractions)

    def rounds(batch, iid, fraction):
        return [runs[(batch, iid, fraction)][s].rounds for s in seeds]

    for iid in (True, False):
        part = PARTITION_TITLES[iid]
        holds = [a.less(b) for a, b in zip(rounds(10, iid, 0.1), rounds(10, iid, fractions[0]), strict=True)]
        lines.append(_claim_row(f"B=10: C=0.1 needs fewer rounds than C=0, {part}", holds))
        if top > 0.1:
            holds = [a.less(b) for a, b in zip(rounds(10, iid, top), rounds(10, iid, 0.1), strict=True)]
            lines.append(_claim_row(f"B=10: C={top:g} needs fewer rounds than C=0.1, {part}", holds))
            # Diminishing returns: the speedup from C=0.1 to the largest C is below the one from C=0 to C=0.1.
            holds = [
                (b / a).less(c / b)
                for a, b, c in zip(
                    rounds(10, iid, top), rounds(10, iid, 0.1), rounds(10, iid, fractions[0]), strict=True
                )
            ]
            lines.append(
                _claim_row(
                    f"B=10: C=0.1 -> {top:g} saves a smaller factor than C=0 -> 0.1 (diminishing returns), {part}",
                    holds,
                )
            )
        if None in batches:
            holds = [
                a.less(b) for a, b in zip(speedups[(None, iid, 0.1)], speedups[(10, iid, 0.1)], strict=True)
            ]
            lines.append(_claim_row(f"C=0.1 helps B=inf less than B=10 (speedup over C=0), {part}", holds))
    holds = [b.less(a) for a, b in zip(speedups[(10, False, 0.1)], speedups[(10, True, 0.1)], strict=True)]
    lines.append(_claim_row("B=10: C=0.1 helps more non-IID than IID (speedup over C=0)", holds))
    return lines


def _plot(curves: dict[tuple[str, bool], np.ndarray], target: float, path: pathlib.Path, title: str) -> None:
    plt = cli_common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True)
    for axis, iid in zip(axes, (True, False), strict=True):
        for (name, curve_iid), curve in curves.items():
            if curve_iid == iid:
                axis.plot(np.arange(1, curve.size + 1), curve, label=name)
        axis.axhline(target, color="gray", linestyle="--", linewidth=0.8)
        axis.set_title("IID" if iid else "pathological non-IID")
        axis.set_xlabel("communication rounds (a run stops once the target is reached)")
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
