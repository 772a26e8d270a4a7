"""The ``brackit`` command line: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from brackit.errors import BrackitError

app = typer.Typer(
    help="brackit: offline reinforcement learning in JAX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from brackit.data.cli import app as data_app
    from brackit.extras.cli import app as extras_app

    app.add_typer(data_app, name="data")
    app.add_typer(extras_app, name="extras")


_register()


@app.command("train")
def train_command(
    algorithm: Annotated[str, typer.Argument(help="Algorithm name (brackit.algos.ALGORITHMS).")],
    data: Annotated[
        str,
        typer.Option(
            help="Dataset path (brackit .npz, D4RL .hdf5, Minari directory) or TASK-MIX (e.g. hopper-eps1: "
            "built by the BRAC protocol on first use and cached in $BRACKIT_DATA_DIR or ~/.cache/brackit)."
        ),
    ],
    data_size: Annotated[
        int | None, typer.Option(help="Transitions of a TASK-MIX dataset (default 1,000,000).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Training updates per run.")] = 100_000,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..K-1), run as one vmapped program.")] = 1,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Config field: key=value (repeatable).")
    ] = None,
    logdir: Annotated[Path, typer.Option(help="Run directory (config, metrics, checkpoints).")] = Path(
        "runs/run"
    ),
    chunk_steps: Annotated[int, typer.Option(help="Updates per jitted chunk.")] = 1000,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps (0: only at the end).")] = 0,
    eval_episodes: Annotated[int, typer.Option(help="Episodes per seed and evaluation.")] = 10,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: only at the end).")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue the run in LOGDIR from its checkpoint.")] = False,
    env_id: Annotated[str | None, typer.Option(help="Gymnasium id (default: the dataset card's).")] = None,
    devices: Annotated[
        str,
        typer.Option(
            help="Shard the seeds across this many devices (jax.sharding; 1: none), or 'auto': the most "
            "devices that divide the runs (on CPU one per core, see brackit/hostdevices.py)."
        ),
    ] = "1",
    tensorboard: Annotated[
        bool | None,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="TensorBoard events (default: if tensorboardX is installed).",
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="host:port of process 0, to span hosts with jax.distributed (with --num-processes)."
        ),
    ] = None,
    num_processes: Annotated[int, typer.Option(help="Processes in a multi-host run.")] = 1,
    process_id: Annotated[int, typer.Option(help="This process's index in a multi-host run.")] = 0,
) -> None:
    """Train an algorithm on an offline dataset; K seeds run as one vmapped program."""
    if coordinator is not None:
        import jax

        # CPU devices of different processes need a collectives backend for the gathers (GPUs use NCCL).
        if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    from brackit.data.resolve import resolve_data
    from brackit.progress import TrainProgressBar
    from brackit.run import parse_overrides, run_training

    overrides = parse_overrides(algorithm, set_ or [])
    data = str(resolve_data(data, size=data_size))
    with TrainProgressBar(steps) as bar:
        result = run_training(
            algorithm,
            data,
            logdir=logdir,
            steps=steps,
            seeds=tuple(range(seeds)),
            overrides=overrides,
            chunk_steps=chunk_steps,
            eval_every=eval_every or steps,
            eval_episodes=eval_episodes,
            checkpoint_every=checkpoint_every,
            resume=resume,
            env_id=env_id,
            logger=bar.update,
            devices=parse_devices(devices),
            tensorboard=tensorboard,
        )
    final = result.final_eval()
    if final is not None:
        returns = final["eval/return_mean"]
        print(f"final return over {len(returns)} seeds: {returns.mean():.1f} ± {returns.std():.1f}")
    import jax

    if jax.process_index() == 0:
        print(f"run directory: {logdir}")
    else:  # a multi-host run: process 0 writes the logdir
        print(f"process {jax.process_index()} of {jax.process_count()}: done; process 0 wrote {logdir}")


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint.npz written by `brackit train`.")],
    episodes: Annotated[int, typer.Option(help="Episodes per run.")] = 10,
    mode: Annotated[str, typer.Option(help="Action selection: mode, sample or max_q.")] = "mode",
    seed: Annotated[int, typer.Option(help="Evaluation seed.")] = 0,
) -> None:
    """Evaluate a saved policy: raw and D4RL-normalized returns per run."""
    from brackit.algos import get_algorithm
    from brackit.errors import ConfigError
    from brackit.evaluation import evaluate
    from brackit.run import load_run
    from brackit.train import batched_act, run_grid

    spec, config, states = load_run(checkpoint)
    if spec.env_id is None:
        raise ConfigError(f"{checkpoint}: the run has no env id to evaluate on")
    act = batched_act(get_algorithm(spec.algorithm), config)
    result = evaluate(act, states, spec.env_id, episodes, seed=seed, mode=mode)
    summary = result.summary()
    for index, run in enumerate(run_grid(spec.seeds, spec.sweep)):
        line = f"{run}: return {summary['eval/return_mean'][index]:.1f} ± {summary['eval/return_std'][index]:.1f}"
        if "eval/score_mean" in summary:
            line += f", normalized score {summary['eval/score_mean'][index]:.1f}"
        print(line)


@app.command("report")
def report_command(
    logdirs: Annotated[
        list[Path], typer.Argument(help="Run directories, or directories searched recursively for run.json.")
    ],
    out: Annotated[Path, typer.Option(help="Where report.md, report.json and the PNG curves go.")] = Path(
        "report"
    ),
    bootstrap_samples: Annotated[int, typer.Option(help="Bootstrap resamples for the IQM intervals.")] = 2000,
) -> None:
    """Tables (final and best return, D4RL score, IQM with 95% CIs) and learning curves of runs."""
    from brackit.report import load_runs, write_report

    path = write_report(load_runs(logdirs), out, bootstrap_samples=bootstrap_samples)
    print(path.read_text(), end="")
    print(f"report: {path}")


@app.command("bench")
def bench_command(
    only: Annotated[
        list[str] | None,
        typer.Option(help="Preset to run (repeatable; default: all of brackit.bench.PRESETS)."),
    ] = None,
    seeds: Annotated[
        list[int] | None, typer.Option(help="Seed count, vmapped (repeatable; default: 1 and 8).")
    ] = None,
    steps: Annotated[
        int, typer.Option(help="Updates per timed chunk with one seed (2/S of it with S).")
    ] = 100,
    repeats: Annotated[int, typer.Option(help="Timed chunks after one warm-up chunk.")] = 3,
    devices: Annotated[
        list[int] | None,
        typer.Option(help="Device count to shard the seeds across (repeatable; default: 1 and all)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the markdown report to this file.")] = None,
    tiny: Annotated[
        bool,
        typer.Option("--tiny", help="Smoke test: 8-8 networks, 1,000 transitions; the numbers mean nothing."),
    ] = False,
) -> None:
    """Training throughput: updates/s, GFLOP/s and % of the float32 matmul ceiling for named presets."""
    from brackit.bench import bench_report

    report = bench_report(only, seeds or (1, 8), steps, repeats, tiny=tiny, devices=devices or None)
    print(report, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)


@app.command("study")
def study_command(
    spec: Annotated[str, typer.Argument(help="A study TOML file or a preset name (brac-paper).")],
    out: Annotated[Path | None, typer.Option(help="Output directory (default: runs/<study name>).")] = None,
    budget: Annotated[str, typer.Option(help="tiny, laptop or paper (the study's own values).")] = "paper",
    tasks: Annotated[str | None, typer.Option(help="Only these tasks, e.g. hopper,walker2d.")] = None,
    mixes: Annotated[str | None, typer.Option(help="Only these mixes, e.g. eps1,gaussian3.")] = None,
    variants: Annotated[
        str | None, typer.Option(help="Only these variants: names or globs (brac-v-*).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Cache of built TASK-MIX datasets.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan and each group's state; train nothing.")
    ] = False,
    steps: Annotated[int | None, typer.Option(help="Cap the training steps (beside the budget).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Cap the seeds.")] = None,
    dataset_size: Annotated[int | None, typer.Option(help="Cap the TASK-MIX dataset size.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Cap the evaluation interval.")] = None,
    eval_episodes: Annotated[int | None, typer.Option(help="Cap the evaluation episodes.")] = None,
    devices: Annotated[
        str, typer.Option(help="Shard each group's runs across devices: a count or 'auto' (see train).")
    ] = "1",
) -> None:
    """Run a study: variants x datasets x seeds, batched into vmapped programs; finished groups are skipped."""
    import dataclasses

    from brackit.errors import ConfigError
    from brackit.study import BUDGETS, load_spec, plan_study, print_plan, rich_group_progress, run_study

    study = load_spec(spec)
    caps = {
        "steps": steps,
        "seeds": seeds,
        "dataset_size": dataset_size,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
    }
    if any(value is not None for value in caps.values()):
        if budget not in BUDGETS:
            raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
        named = BUDGETS[budget]
        budget = dataclasses.replace(  # type: ignore[assignment]
            named,
            name=f"{named.name}+caps",
            **{
                key: min(value, getattr(named, key) or value)
                for key, value in caps.items()
                if value is not None
            },
        )
    out = out or Path("runs") / study.name

    def split(text: str | None) -> list[str] | None:
        return [item.strip() for item in text.split(",") if item.strip()] if text else None

    filters = {"tasks": split(tasks), "mixes": split(mixes), "variants": split(variants)}
    if dry_run:
        print_plan(plan_study(study, out, budget=budget, **filters), data_dir=data_dir)
        return
    results = run_study(
        study,
        out,
        budget=budget,
        data_dir=data_dir,
        progress=rich_group_progress,
        devices=parse_devices(devices),
        **filters,
    )
    done = sum(result.status != "skipped" for result in results)
    print(f"{done} groups trained, {len(results) - done} already finished; index: {out / 'study.json'}")


def parse_devices(text: str) -> int | str:
    """``--devices``: a positive count or ``auto``."""
    from brackit.errors import ConfigError
    from brackit.hostdevices import positive_int

    if text.strip() == "auto":
        return "auto"
    count = positive_int(text)
    if count is None:
        raise ConfigError(f"--devices {text!r}: expected a positive integer or 'auto'")
    return count


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``BrackitError`` becomes one line on stderr and exit status 2."""
    from brackit.determinism import request_deterministic_gpu_ops
    from brackit.hostdevices import request_host_devices

    request_deterministic_gpu_ops()  # bit-identical reruns on GPUs too (brackit/determinism.py)
    try:
        request_host_devices()  # one CPU device per core, for --devices (brackit/hostdevices.py)
        app(args=argv, standalone_mode=False)
    except BrackitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except typer.Exit as exit_:
        return exit_.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    except Exception as error:  # click usage errors carry their own exit code
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
