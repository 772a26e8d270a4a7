"""The ``brackit`` command line: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from brackit.errors import BrackitError

app = typer.Typer(
    help="brackit: offline reinforcement learning in JAX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from brackit.data.cli import convert, info
    from brackit.extras.cli import app as extras_app
    from brackit.protocol.cli import build

    data_app = typer.Typer(help="Offline datasets: inspect, convert, build.", no_args_is_help=True)
    for command in (info, convert, build):
        data_app.command()(command)
    app.add_typer(data_app, name="data")
    app.add_typer(extras_app, name="extras")


_register()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"brackit {version('brackit')}")
        except PackageNotFoundError:  # a source tree that was never installed
            print("brackit (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """brackit: offline reinforcement learning in JAX."""


def act_rule_option(what: str, default: str) -> Any:
    """The option of a command that picks the action rule (an ``act`` mode: ``--eval-mode``, ``--mode``),
    its help saying ``WHAT``, the rules, and what the rule is by ``default``."""
    return typer.Option(help=f"{what}: mode, sample or max_q; default: {default}")


@app.command("algos")
def algos_command(
    name: Annotated[
        str | None,
        typer.Argument(
            help="An algorithm: print its config fields (type, default, valid range, meaning) and rules."
        ),
    ] = None,
) -> None:
    """List the algorithms, or one algorithm's config fields (set them with `brackit train --set`)."""
    from brackit.algos import ALGORITHMS, get_algorithm

    if name is None:
        width = max(map(len, ALGORITHMS))
        for algorithm in ALGORITHMS.values():
            print(f"{algorithm.name:<{width}}  {algorithm.description}")
        return
    from brackit.config_checks import field_facts, rule_texts

    algorithm = get_algorithm(name)
    print(f"{algorithm.name}: {algorithm.description} ({algorithm.config_cls.__name__})")
    facts = field_facts(algorithm.config_cls)
    rows = [
        (f"{key}: {facts[key][0]} = {default}", facts[key][1], doc)
        for key, default, doc in config_field_docs(algorithm.config_cls)
    ]
    width = max(len(field) for field, _, _ in rows)
    range_width = max(len(valid) for _, valid, _ in rows)
    print(f"  {'field: type = default':<{width}}  {'range':<{range_width}}  meaning")
    for field, valid, doc in rows:
        print(f"  {field:<{width}}  {valid:<{range_width}}  {doc}".rstrip())
    rules = rule_texts(algorithm.config_cls)
    if rules:
        print("rules:")
        for rule in rules:
            print(f"  {rule}")


def config_field_docs(config_cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(name, default, one-line doc) of every field of a config dataclass, nested configs as
    ``outer.inner``; the doc is the string literal under the field in the class body (the first class
    along the MRO that documents it)."""
    import ast
    import dataclasses
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):  # subclasses override their bases' docs
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, [*body[1:], None], strict=True):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    rows = []
    for field in dataclasses.fields(config_cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        if dataclasses.is_dataclass(default):
            rows += config_field_docs(type(default), f"{prefix}{field.name}.")
            continue
        text = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        rows.append((f"{prefix}{field.name}", text, docs.get(field.name, "")))
    return rows


@app.command("train")
def train_command(
    algorithm: Annotated[str, typer.Argument(help="Algorithm name (brackit.algos.ALGORITHMS).")],
    data: Annotated[
        str,
        typer.Option(
            help="Dataset path (brackit .npz, D4RL .hdf5, Minari directory), TASK-MIX (e.g. hopper-eps1: "
            "built by the BRAC protocol on first use and cached in $BRACKIT_DATA_DIR or ~/.cache/brackit/datasets), or "
            "a Minari dataset id (e.g. mujoco/hopper/medium-v0) already in the local Minari cache "
            "($MINARI_DATASETS_PATH or ~/.minari/datasets; never downloaded)."
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
    logdir: Annotated[
        Path | None,
        typer.Option(
            help="Run directory (config, metrics, checkpoints); default: "
            "runs/ALGORITHM-DATASET-YYYYmmdd-HHMMSS (UTC)."
        ),
    ] = None,
    chunk_steps: Annotated[
        int | None,
        typer.Option(
            help="Updates per jitted chunk; default: the largest that divides --steps, --eval-every and "
            "--checkpoint-every, at most 1000."
        ),
    ] = None,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps (0: only at the end).")] = 0,
    eval_episodes: Annotated[
        int, typer.Option(help="Episodes per seed and evaluation (0: no evaluation).")
    ] = 10,
    eval_mode: Annotated[
        str | None, act_rule_option("Action rule for evaluation", "the algorithm's reference rule")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: only at the end).")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue the run in LOGDIR from its checkpoint.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run in LOGDIR, even a different one (its files are deleted).")
    ] = False,
    env_id: Annotated[str | None, typer.Option(help="Gymnasium id (default: the dataset card's).")] = None,
    devices: Annotated[
        str,
        typer.Option(
            help="Shard the seeds across this many devices (jax.sharding; 1: none), or 'auto': the most "
            "devices that divide the runs (on CPU one per core, see brackit/xla_setup.py)."
        ),
    ] = "1",
    tensorboard: Annotated[
        bool | None,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="TensorBoard events (default: if tensorboardX is installed).",
        ),
    ] = None,
    log: Annotated[
        str | None,
        typer.Option(
            help="Outputs beside metrics.jsonl (always written), comma-separated: csv, tensorboard, wandb "
            "(default: tensorboard if tensorboardX is installed)."
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
    from brackit.config_checks import MAX_EPISODES, MAX_RUNS, check_option
    from brackit.errors import ConfigError

    check_processes(coordinator, num_processes, process_id)
    if coordinator is not None:
        import jax

        # CPU devices of different processes need a collectives backend for the gathers (GPUs use NCCL).
        if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    from brackit.algos import get_algorithm, make_config
    from brackit.loggers import choose_loggers, parse_loggers
    from brackit.protocol.resolve import is_task_mix, resolve_data
    from brackit.run import check_run_arguments, default_logdir, parse_overrides, run_training

    if eval_mode is not None:
        get_algorithm(algorithm).check_act_mode(eval_mode, "--eval-mode")
    check_option("--seeds", seeds, f"[1, {MAX_RUNS}]")
    check_option("--eval-episodes", eval_episodes, f"[0, {MAX_EPISODES}]")
    if data_size is not None:
        check_option("--data-size", data_size, ">= 1")
        if Path(data).expanduser().exists() or not is_task_mix(data):
            raise ConfigError(
                f"--data-size {data_size}: the size of a TASK-MIX dataset (e.g. hopper-eps1), which {data!r} "
                "is not; leave the option out"
            )
    if logdir is None:
        if resume:
            raise ConfigError("--resume needs --logdir: the run directory to continue")
        logdir = default_logdir(algorithm, data)
    overrides = parse_overrides(algorithm, set_ or [])
    # the schedule and the config's ranges first: resolving a TASK-MIX name may build (write) a dataset
    check_run_arguments(
        steps=steps,
        seeds=tuple(range(seeds)),
        chunk_steps=chunk_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        checkpoint_every=checkpoint_every,
    )
    make_config(algorithm, **overrides)
    loggers = parse_loggers(log) if log is not None else None
    choose_loggers(loggers, tensorboard)  # a missing package is refused before anything is written
    data = str(resolve_data(data, size=data_size))
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
        overwrite=overwrite,
        env_id=env_id,
        progress=True,  # the bar counts the pretraining phase too
        devices=parse_devices(devices),
        tensorboard=tensorboard,
        loggers=loggers,
        eval_mode=eval_mode,  # None: the algorithm's reference rule
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
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A checkpoint.npz written by `brackit train`, or a policy file written by `brackit export`."
        ),
    ],
    episodes: Annotated[int, typer.Option(help="Episodes per run.")] = 10,
    mode: Annotated[
        str | None,
        act_rule_option(
            "Action selection",
            "the rule the run was evaluated with (an exported policy has its rule built in).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Evaluation seed.")] = 0,
) -> None:
    """Evaluate a saved policy: raw and normalized returns per run."""
    from brackit.config_checks import COMMON_RANGES, MAX_EPISODES, check_option
    from brackit.errors import ConfigError
    from brackit.evaluation import evaluate
    from brackit.policy import is_exported_policy

    check_option("--episodes", episodes, f"[1, {MAX_EPISODES}]")
    check_option("--seed", seed, COMMON_RANGES["seed"])

    if is_exported_policy(checkpoint):
        import numpy as np

        from brackit.evaluation import exported_act
        from brackit.policy import load_policy

        policy = load_policy(checkpoint)
        env_id, rule = policy.card.get("env_id"), policy.card.get("eval_mode")
        if env_id is None:
            raise ConfigError(f"{checkpoint}: its card ({checkpoint}.json) names no env id to evaluate on")
        if mode is not None and mode != rule:
            raise ConfigError(f"--mode {mode}: {checkpoint} was exported with the rule {rule!r} built in")
        reference = policy.card.get("score_reference")
        act, states, mode, runs = exported_act(policy), np.zeros(1), rule, [policy.card.get("run", {})]
        env_units = True
        dims = (policy.obs_dim, policy.action_dim)
    else:
        from brackit.algos import get_algorithm
        from brackit.checkpoint import load_obs_stats, read_record
        from brackit.run import load_run
        from brackit.train import batched_act, run_grid

        spec, config, states = load_run(checkpoint)
        if spec.env_id is None:
            raise ConfigError(f"{checkpoint}: the run has no env id to evaluate on")
        if mode is not None:
            get_algorithm(spec.algorithm).check_act_mode(mode, "--mode")
        env_id, mode, runs = spec.env_id, mode or spec.eval_mode, run_grid(spec.seeds, spec.sweep)
        act = batched_act(get_algorithm(spec.algorithm), config, load_obs_stats(checkpoint))
        record = read_record(checkpoint)
        reference = record["metadata"].get("score_reference")
        env_units = False
        dims = tuple(int(d) for d in record["metadata"]["dims"])  # load_run checked they are there
    check_env_dims(env_id, dims, checkpoint)
    result = evaluate(
        act,
        states,
        env_id,
        episodes,
        seed=seed,
        mode=mode,
        env_units=env_units,
        reference=None if reference is None else tuple(reference),
    )
    summary = result.summary()
    for index, run in enumerate(runs):
        line = f"{run}: return {summary['eval/return_mean'][index]:.1f} ± {summary['eval/return_std'][index]:.1f}"
        if "eval/score_mean" in summary:
            line += f", normalized score {summary['eval/score_mean'][index]:.1f}"
        print(line)


def check_processes(coordinator: str | None, num_processes: int, process_id: int) -> None:
    """``--coordinator``, ``--num-processes`` and ``--process-id``: a multi-host run names all three
    consistently (HOST:PORT, a count >= 1, an index below it); without a coordinator the others keep their
    defaults."""
    from brackit.config_checks import check_option
    from brackit.errors import ConfigError

    if coordinator is None:
        if (num_processes, process_id) != (1, 0):
            raise ConfigError(
                "--num-processes and --process-id describe a multi-host run: pass --coordinator HOST:PORT too"
            )
        return
    host, colon, port = coordinator.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--coordinator {coordinator!r}: expected HOST:PORT of process 0 (e.g. 10.0.0.1:1234)"
        )
    check_option("--num-processes", num_processes, ">= 1")
    check_option("--process-id", process_id, f"[0, {num_processes - 1}]")


def check_env_dims(env_id: str, dims: tuple[int, ...], where: object) -> None:
    """Refuses, in one line, an environment id that gymnasium does not know or whose observation and
    action widths are not ``dims`` (what the policy at ``where`` was trained for)."""
    from brackit.data.dataset import env_spaces
    from brackit.errors import ConfigError

    env_dims = env_spaces(env_id, where)[:2]
    if tuple(env_dims) != tuple(dims):
        raise ConfigError(
            f"{where}: the policy takes observations of width {dims[0]} and gives actions of width "
            f"{dims[1]}, but {env_id} has {env_dims[0]} and {env_dims[1]}: evaluate it on the "
            "environment it was trained for"
        )


@app.command("export")
def export_command(
    logdir: Annotated[Path, typer.Argument(help="A run directory written by `brackit train`.")],
    out: Annotated[
        Path,
        typer.Option(help="The policy file to write (a serialized jax.export program); its card: OUT.json."),
    ],
    seed: Annotated[
        int, typer.Option(help="Which run of the logdir: its index in the run grid (seeds x sweep), 0..R-1.")
    ] = 0,
    mode: Annotated[
        str | None, act_rule_option("Action rule to build in", "the run's evaluation rule.")
    ] = None,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx", help="Also write OUT.onnx (deterministic rules; needs jax2onnx, the onnx extra)."
        ),
    ] = False,
) -> None:
    """Export one trained run as a standalone policy: obs -> actions, loadable with jax and numpy alone."""
    from brackit.export import export_policy, onnx_path
    from brackit.policy import card_path

    card = export_policy(logdir, out, seed=seed, mode=mode, onnx=onnx)
    inputs = ", ".join(card["inputs"])
    print(
        f"policy: {out} ({card['algorithm']}, run {card['run']}, rule {card['eval_mode']}; inputs: {inputs})"
    )
    print(f"card: {card_path(out)}")
    if onnx:
        print(f"onnx: {onnx_path(out)}")


@app.command("report")
def report_command(
    logdirs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories, or directories searched recursively for run.json; or one report.json "
            "to re-render (e.g. a committed benchmark result)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Where report.md, report.json and the PNG plots go.")] = Path(
        "report"
    ),
    bootstrap_samples: Annotated[
        int | None,
        typer.Option(
            help="Bootstrap resamples for the confidence intervals [default: 2000, or report.json's own]."
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="Also plot this logged metric (a metrics.jsonl key, e.g. critic/loss, alpha/value) against "
            "steps, per dataset; repeatable.",
        ),
    ] = None,
) -> None:
    """Tables (final and best return, D4RL score; mean, median, IQM and optimality gap with 95% CIs;
    probability of improvement), performance profiles and learning curves of runs."""
    from brackit.report import report

    path = report(logdirs, out, bootstrap_samples=bootstrap_samples, metrics=metric or ())
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
    from brackit.config_checks import MAX_RUNS, check_option
    from brackit.errors import ConfigError

    for count in seeds or ():
        check_option("--seeds", count, f"[1, {MAX_RUNS}]")
    for count in devices or ():
        check_option("--devices", count, ">= 1")
    if out is not None and out.is_dir():  # refused before the timing, not after it
        raise ConfigError(f"--out {out}: a directory; --out names the markdown file to write")

    report = bench_report(only, seeds or (1, 8), steps, repeats, tiny=tiny, devices=devices or None)
    print(report, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)


@app.command("study")
def study_command(
    spec: Annotated[str, typer.Argument(help="A study TOML file or a preset name (brac-paper).")],
    out: Annotated[Path | None, typer.Option(help="Output directory (default: runs/<study name>).")] = None,
    budget: Annotated[
        str, typer.Option(help="tiny, laptop, cpu, gpu or paper (the study's own values).")
    ] = "paper",
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
    first_seed: Annotated[
        int,
        typer.Option(
            help="Run seeds N..N+seeds-1, not 0..seeds-1: more seeds for a finished study, in logdirs "
            "GROUP+seedsN-M labelled GROUP (reports pool them)."
        ),
    ] = 0,
    dataset_size: Annotated[int | None, typer.Option(help="Cap the TASK-MIX dataset size.")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Cap the evaluation interval.")] = None,
    eval_episodes: Annotated[int | None, typer.Option(help="Cap the evaluation episodes.")] = None,
    devices: Annotated[
        str, typer.Option(help="Shard each group's runs across devices: a count or 'auto' (see train).")
    ] = "1",
) -> None:
    """Run a study: variants x datasets x seeds, batched into vmapped programs; finished groups are skipped."""
    from brackit.config_checks import check_option
    from brackit.study import (
        FIRST_SEED_RANGE,
        load_spec,
        plan_study,
        print_plan,
        resolve_budget,
        rich_group_progress,
        run_study,
    )

    study = load_spec(spec)
    parsed_devices = parse_devices(devices)  # refused before a dry run too
    check_option("--first-seed", first_seed, FIRST_SEED_RANGE)
    caps = {
        "steps": steps,
        "seeds": seeds,
        "dataset_size": dataset_size,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
    }
    capped = resolve_budget(budget, caps)
    out = out or Path("runs") / study.name

    def split(text: str | None) -> list[str] | None:
        return [item.strip() for item in text.split(",") if item.strip()] if text else None

    filters = {"tasks": split(tasks), "mixes": split(mixes), "variants": split(variants)}
    if dry_run:
        print_plan(plan_study(study, out, budget=capped, first_seed=first_seed, **filters), data_dir=data_dir)
        return
    results = run_study(
        study,
        out,
        budget=capped,
        data_dir=data_dir,
        progress=rich_group_progress,
        devices=parsed_devices,
        first_seed=first_seed,
        **filters,
    )
    done = sum(result.status != "skipped" for result in results)
    print(f"{done} groups trained, {len(results) - done} already finished; index: {out / 'study.json'}")


def parse_devices(text: str) -> int | str:
    """``--devices``: a positive count or ``auto``."""
    from brackit.errors import ConfigError
    from brackit.xla_setup import positive_int

    if text.strip() == "auto":
        return "auto"
    count = positive_int(text)
    if count is None:
        raise ConfigError(f"--devices {text!r}: expected a positive integer or 'auto'")
    return count


USER_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EEXIST,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENOENT,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
    }
)
"""The ``OSError``s that a user's paths and disks cause (permissions, a file where a directory goes or the
reverse, a missing path, a full, read-only or size-limited file system): one line, not a traceback."""


def user_error_line(error: BaseException) -> str | None:
    """The one line that reports ``error`` if it is a user's error rather than a bug, else None: brackit's
    own errors, the predictable ``OSError``s (``USER_ERRNOS``, naming the path), and gymnasium's refusal of
    an environment id (unknown, malformed, deprecated, or missing its dependencies)."""
    if isinstance(error, BrackitError):
        text = str(error)
    elif isinstance(error, OSError) and error.errno in USER_ERRNOS:
        reason = error.strerror or str(error)
        if error.filename is None:
            text = reason
        elif error.filename2 is None:
            text = f"{error.filename}: {reason}"
        else:
            text = f"{error.filename} -> {error.filename2}: {reason}"
    elif _is_gymnasium_env_error(error):
        text = f"gymnasium: {error}"
    else:
        return None
    return " ".join(text.split())


def _is_gymnasium_env_error(error: BaseException) -> bool:
    gym_error = sys.modules.get("gymnasium.error")
    if gym_error is None:  # not imported: the error is not gymnasium's
        return False
    refusals = tuple(
        getattr(gym_error, name)
        for name in ("UnregisteredEnv", "DeprecatedEnv", "DependencyNotInstalled")
        if hasattr(gym_error, name)
    )
    # a plain ``gymnasium.error.Error`` is what gymnasium raises for a malformed id
    return isinstance(error, refusals) or type(error) is getattr(gym_error, "Error", None)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a user's error (``user_error_line``: a ``BrackitError``, a permission, path or disk
    ``OSError``, an unknown gymnasium id) becomes one line on stderr and exit status 2; any other exception
    is a bug and shows its traceback. SIGINT (Ctrl-C) and SIGTERM stop it as an error would, after one
    line, with status 130 and 143 (``brackit.interrupts``)."""
    from brackit.interrupts import Interrupted, StopSignals
    from brackit.xla_setup import setup_process

    try:
        # the CLI's global side effects, before JAX starts: deterministic GPU ops, one CPU device per core
        setup_process()
        with StopSignals():
            # standalone_mode=False: typer returns the status of a typer.Exit (and of a KeyboardInterrupt,
            # as 130) instead of exiting; a command's own return value is None
            status = app(args=argv, prog_name="brackit", standalone_mode=False)
    except Interrupted as interrupted:
        print(
            f"{interrupted}; stopped (a run's last checkpoint is intact: --resume continues it)",
            file=sys.stderr,
        )
        return interrupted.exit_status
    except BrackitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except typer.Exit as exit_:
        return exit_.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    except typer.TyperException as error:  # usage errors (typer's own click copy): one line, exit 2
        format_message = getattr(error, "format_message", None)
        message = " ".join(str(format_message() if callable(format_message) else error).split())
        context = getattr(error, "ctx", None)
        if not message:  # a group called without a command (no_args_is_help): its help
            show = getattr(error, "show", None)
            if callable(show):
                show()
        else:
            command = getattr(context, "command_path", None) or "brackit"
            print(f"error: {message} (see '{command} --help')", file=sys.stderr)
        return int(getattr(error, "exit_code", 2))
    except Exception as error:
        line = user_error_line(error)
        if line is None:  # a bug: its traceback
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    if isinstance(status, int) and not isinstance(status, bool) and status:
        if status == 130:
            print("aborted", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
