"""Reports over training runs: tables of final and best returns, D4RL scores, robust aggregates with
bootstrap CIs, probability of improvement, performance profiles, curves.

``load_runs`` finds every ``run.json`` below the given directories and returns one ``RunRecord`` per run
(each seed of each sweep point) of each logdir. ``summarize`` groups them by (dataset, group) and computes
every number; ``render`` writes

    OUT/report.md                      per-dataset tables, a paper-style comparison table, aggregates,
                                       probability of improvement, warnings, plot links
    OUT/report.json                    the same numbers, machine readable, with the per-seed final values
                                       and curves: ``read_report`` re-renders a report from it alone
    OUT/curves_<dataset>.png           learning curves: mean over seeds, shaded 95% CI, one line per group
    OUT/profile_<score|return>.png     performance profiles of the final values, shaded 95% CI
    OUT/metric_<name>_<dataset>.png    any logged metric (``metrics``) against steps, as the curves

A group is the run's label (the algorithm name when the label is empty) plus its sweep values, e.g.
``brac alpha=0.1``; the label is its family, which shares a colour in the plots (line styles tell the
members apart). Final = the last evaluation, best = the maximum over evaluations, both per seed; then
mean ± std over seeds (numpy's std, ddof=0). The aggregates follow Agarwal et al. (2021), "Deep RL at the
Edge of the Statistical Precipice" (rliable; ``brackit.stats``): mean, median, interquartile mean and
optimality gap of the final D4RL-normalized score (the raw return for tasks without reference returns; no
optimality gap then) pooled over datasets, the probability of improvement of each group over each other,
and performance profiles, with 95% percentile confidence intervals from a stratified bootstrap (strata =
datasets, resampling seeds within each). A group evaluated on fewer than ``MIN_SEEDS`` seeds of a dataset
gets a warning in the report itself.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brackit.errors import BrackitError
from brackit.files import atomic_path, atomic_write_text
from brackit.protocol.resolve import dataset_label
from brackit.rundir import RunDir, RunError
from brackit.scores import normalized_score
from brackit.stats import (
    bootstrap_ci,
    bootstrap_interval,
    curve_ci,
    iqm,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
)
from brackit.train import run_grid

MIN_SEEDS = 5
"""Fewer evaluated seeds than this for a group on a dataset puts a warning in the report."""
GAMMA = 100.0
"""The optimality gap's target on the D4RL-normalized scale (the expert's score)."""
PROFILE_POINTS = 101
"""Thresholds tau of a performance profile, evenly spaced from the lowest to the highest final value."""


class ReportError(BrackitError, ValueError):
    """Runs that cannot be reported: the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Series:
    """One run's values of one logged metric: ``steps``, ``values``: [T], from the entries of ``phase``."""

    phase: str
    steps: np.ndarray
    values: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class RunRecord:
    """One run of a logdir (run ``index`` of ``run_grid(seeds, sweep)``) and its evaluation curve.

    ``steps``, ``returns``: [T], T = 0 for a run without any evaluation; ``scores``: [T] D4RL-normalized,
    or None for a task without reference returns. ``metrics``: the logged metrics asked of ``load_runs``
    that this run's logdir holds.
    """

    logdir: Path
    index: int
    label: str
    group: str
    dataset: str
    env_id: str | None
    seed: int
    sweep: dict[str, float]
    steps: np.ndarray
    returns: np.ndarray
    scores: np.ndarray | None
    metrics: dict[str, Series] = dataclasses.field(default_factory=dict)

    @property
    def evaluated(self) -> bool:
        return self.steps.size > 0


# ----------------------------------------------------------------------------------------- loading


def load_runs(paths: Sequence[str | Path], metrics: Sequence[str] = ()) -> list[RunRecord]:
    """Every run of every run directory at or below ``paths`` (``RunDir.find``: hidden directories are
    skipped), with the logged ``metrics`` (metrics.jsonl keys) of the logdirs that hold them; a metric no
    logdir holds is an error naming the keys they do hold."""
    found: dict[Path, RunDir] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"{path}: no such file or directory")
        for rundir in RunDir.find(path):
            found.setdefault(rundir.path.resolve(), rundir)
    if not found:
        raise ReportError(f"no {RunDir.SPEC} found under {', '.join(map(str, paths))}")
    records, logged = [], set()
    for rundir in found.values():
        logdir_records, keys = _load_logdir(rundir, metrics)
        records += logdir_records
        logged |= keys
    for name in metrics:
        if name not in logged:
            raise ReportError(
                f"unknown metric '{name}': the runs' metrics.jsonl files hold {', '.join(sorted(logged))}"
            )
    return _disambiguate(records)


def _load_logdir(rundir: RunDir, metrics: Sequence[str]) -> tuple[list[RunRecord], set[str]]:
    try:
        spec = rundir.read_spec()
        entries = rundir.metrics()
    except RunError as error:
        raise ReportError(str(error)) from None
    runs = run_grid(spec.seeds, spec.sweep)
    steps, returns, scores, series, keys = _read_metrics(entries, len(runs), spec.env_id, metrics)
    label = spec.label or spec.algorithm
    dataset = (spec.env_id or "unknown") if spec.data == "<in memory>" else dataset_label(spec.data)
    records = []
    for index, run in enumerate(runs):
        sweep = {name: value for name, value in run.items() if name != "seed"}
        records.append(
            RunRecord(
                logdir=rundir.path,
                index=index,
                label=label,
                group=label + "".join(f" {name}={value:g}" for name, value in sweep.items()),
                dataset=dataset,
                env_id=spec.env_id,
                seed=run["seed"],
                sweep=sweep,
                steps=steps,
                returns=returns[:, index],
                scores=None if scores is None else scores[:, index],
                metrics={name: runs_series[index] for name, runs_series in series.items()},
            )
        )
    return records, keys


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_metrics(
    entries: list[tuple[str, dict[str, Any]]], runs: int, env_id: str | None, metrics: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, list[Series]], set[str]]:
    """(steps [T], returns [T, R], scores [T, R] or None) of the train-phase evaluations among the entries of
    a metrics.jsonl (``RunDir.metrics``), the R runs' ``Series`` of each of ``metrics`` they hold, and every
    key they hold.

    A metric comes from the train-phase entries that hold it, or, where none does (e.g. BRAC's behavior
    cloning before training), from the first phase whose entries do. A single number (e.g. a chunk's time)
    is every run's value."""
    steps: list[int] = []
    returns: list[np.ndarray] = []
    scores: list[np.ndarray | None] = []
    keys: set[str] = set()
    logged: dict[str, dict[str, list[tuple[int, np.ndarray]]]] = {name: {} for name in metrics}
    for where, entry in entries:
        keys |= {
            k for k, v in entry.items() if k not in ("phase", "step") and isinstance(v, int | float | list)
        }
        wanted = [name for name in metrics if name in entry]
        if wanted or (entry.get("phase") == "train" and "eval/return_mean" in entry):
            if not _is_int(entry.get("step")):
                raise ReportError(f"{where}: field 'step': expected an integer, found {entry.get('step')!r}")
        for name in wanted:
            value = entry[name]
            value = [value] * runs if _is_number(value) else value
            phase = str(entry.get("phase"))
            logged[name].setdefault(phase, []).append(
                (entry["step"], _per_run({name: value}, name, runs, where))
            )
        if entry.get("phase") != "train" or "eval/return_mean" not in entry:
            continue
        steps.append(entry["step"])
        returns.append(_per_run(entry, "eval/return_mean", runs, where))
        scores.append(_per_run(entry, "eval/score_mean", runs, where) if "eval/score_mean" in entry else None)
    series = {}
    for name, phases in logged.items():
        if phases:
            phase = "train" if "train" in phases else next(iter(phases))
            metric_steps = np.array([step for step, _ in phases[phase]], int)
            values = np.array([v for _, v in phases[phase]], float)  # [T, R]
            series[name] = [Series(phase, metric_steps, values[:, index]) for index in range(runs)]
    steps_array, returns_array = np.asarray(steps, int), np.asarray(returns, float).reshape(len(steps), runs)
    if scores and all(s is not None for s in scores):
        return steps_array, returns_array, np.asarray(scores, float), series, keys
    if normalized_score(env_id, 0.0) is None:
        return steps_array, returns_array, None, series, keys
    # An older or partial file without eval/score_mean: the score is the same function of the mean return.
    to_score = np.vectorize(lambda r: normalized_score(env_id, r), otypes=[float])
    return steps_array, returns_array, to_score(returns_array), series, keys


def _per_run(entry: dict[str, Any], key: str, runs: int, where: str) -> np.ndarray:
    value = entry[key]
    if not (isinstance(value, list) and len(value) == runs and all(_is_number(v) for v in value)):
        raise ReportError(f"{where}: field '{key}': expected a list of {runs} numbers, found {value!r:.80}")
    return np.asarray(value, float)


def _disambiguate(records: list[RunRecord]) -> list[RunRecord]:
    """Two logdirs with the same (dataset, group, seed) get the logdir appended to their group names."""
    owners: dict[tuple[str, str, int], set[Path]] = defaultdict(set)
    for record in records:
        owners[(record.dataset, record.group, record.seed)].add(record.logdir)
    clashing = {logdir for dirs in owners.values() if len(dirs) > 1 for logdir in dirs}
    return [
        dataclasses.replace(r, group=f"{r.group} [{r.logdir}]") if r.logdir in clashing else r
        for r in records
    ]


# ----------------------------------------------------------------------------------------- summary


def summarize(records: Sequence[RunRecord], bootstrap_samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every number of the report, as ``report.json`` holds it: the per-seed data of the runs, then every
    statistic ``derive_statistics`` computes from it."""
    order = {r.group: (r.label, sorted(r.sweep.items()), r.group) for r in records}
    tree: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        tree[record.dataset][record.group].append(record)
    datasets: dict[str, Any] = {}
    for name in sorted(tree):
        evaluated = [r for group in tree[name].values() for r in group if r.evaluated]
        metric = "score" if evaluated and all(r.scores is not None for r in evaluated) else "return"
        groups = {}
        for group in sorted(tree[name], key=order.__getitem__):
            runs = sorted(tree[name][group], key=lambda r: r.seed)
            done = [r for r in runs if r.evaluated]
            entry: dict[str, Any] = {
                "seeds": [r.seed for r in runs],
                "evaluated_seeds": [r.seed for r in done],
            }
            if done:
                entry["final_step"] = [int(r.steps[-1]) for r in done]
                entry["final_return"] = {"values": [float(r.returns[-1]) for r in done]}
                entry["best_return"] = {"values": [float(r.returns.max()) for r in done]}
                if metric == "score":
                    entry["final_score"] = {"values": [float(r.scores[-1]) for r in done]}
                    entry["best_score"] = {"values": [float(r.scores.max()) for r in done]}
                entry["curve"] = _curve_data([(r.seed, r.steps, _metric(r, metric)) for r in done])
            groups[group] = entry
        env_ids = sorted({str(r.env_id) for group in tree[name].values() for r in group})
        datasets[name] = {"env_id": ", ".join(env_ids), "metric": metric, "groups": groups}
    metrics: dict[str, dict[str, Any]] = {}
    for metric_name in dict.fromkeys(name for r in records for name in r.metrics):
        per_dataset: dict[str, Any] = {}
        for name in sorted(tree):
            groups = {}
            for group in sorted(tree[name], key=order.__getitem__):
                runs = sorted(
                    (r for r in tree[name][group] if metric_name in r.metrics), key=lambda r: r.seed
                )
                if runs:
                    series = [r.metrics[metric_name] for r in runs]
                    groups[group] = {
                        "phase": ", ".join(sorted({s.phase for s in series})),
                        **_curve_data(
                            [(r.seed, s.steps, s.values) for r, s in zip(runs, series, strict=True)]
                        ),
                    }
            if groups:
                per_dataset[name] = {"groups": groups}
        metrics[metric_name] = per_dataset
    data = {
        "logdirs": sorted({str(r.logdir) for r in records}),
        "groups": sorted(order, key=order.__getitem__),
        "families": {r.group: r.label for r in sorted(records, key=lambda r: order[r.group])},
        "datasets": datasets,
        "metrics": metrics,
    }
    return derive_statistics(data, bootstrap_samples=bootstrap_samples, seed=seed)


def _metric(record: RunRecord, metric: str) -> np.ndarray:
    return record.scores if metric == "score" and record.scores is not None else record.returns


def _curve_data(runs: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """{steps [T], seeds [S], runs [S][T]} of (seed, steps, values) triples: T = every step any run has, a
    run's value null where it has none (seeds may stop at different steps)."""
    steps = sorted({int(s) for _, run_steps, _ in runs for s in run_steps})
    column = {step: t for t, step in enumerate(steps)}
    rows = []
    for _, run_steps, values in runs:
        row: list[float | None] = [None] * len(steps)
        for step, value in zip(run_steps, values, strict=True):
            row[column[int(step)]] = _finite_or_none(value)
        rows.append(row)
    return {"steps": steps, "seeds": [int(seed) for seed, _, _ in runs], "runs": rows}


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None  # JSON has no NaN or infinity: a missing value


def _floats(values: np.ndarray) -> list[float | None]:
    return [_finite_or_none(v) for v in np.asarray(values, float)]


def derive_statistics(data: dict[str, Any], bootstrap_samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The whole report from its data: ``logdirs``, ``groups`` (in report order), ``families`` (group ->
    label, optional), ``datasets`` (per group: seeds, per-seed final and best values, curve) and
    ``metrics`` (optional; per metric, dataset and group a curve), as ``summarize`` builds them and
    ``report.json`` holds them. Everything else (means, stds, intervals, aggregates, warnings) is
    recomputed here, so a report re-rendered from its ``report.json`` repeats its numbers."""
    interval = functools.partial(_interval, samples=bootstrap_samples, seed=seed)
    datasets: dict[str, Any] = {}
    strata: dict[str, dict[str, np.ndarray]] = defaultdict(dict)  # group -> dataset -> final metric values
    warnings_: list[str] = []
    for name, dataset in data["datasets"].items():
        metric = dataset["metric"]
        groups = {}
        few = []
        for group, raw in dataset["groups"].items():
            entry: dict[str, Any] = {"seeds": raw["seeds"], "evaluated_seeds": raw["evaluated_seeds"]}
            if len(raw["evaluated_seeds"]) < MIN_SEEDS:
                few.append(f"{group} ({len(raw['evaluated_seeds'])})")
            if "final_return" in raw:
                entry["final_step"] = raw["final_step"]
                for key in ("final_return", "best_return", "final_score", "best_score"):
                    if key in raw:
                        entry[key] = _stats(np.asarray(raw[key]["values"], float))
                final = np.asarray(raw[f"final_{metric}"]["values"], float)
                strata[group][name] = final
                entry["iqm"] = interval([final], iqm)
                if "curve" in raw:
                    entry["curve"] = _derive_curve(raw["curve"], bootstrap_samples, seed)
            groups[group] = entry
        if few:
            warnings_.append(
                f"{name}: fewer than {MIN_SEEDS} evaluated seeds for {', '.join(few)}; statistics over so few "
                "runs are unreliable and their bootstrap intervals too narrow"
            )
        plot = f"curves_{_file_part(name)}.png" if any("curve" in e for e in groups.values()) else None
        datasets[name] = {"env_id": dataset["env_id"], "metric": metric, "plot": plot, "groups": groups}
    aggregated = [g for g in data["groups"] if g in strata]
    aggregate = {}
    for group in aggregated:
        used = strata[group]
        metric = "score" if all(datasets[d]["metric"] == "score" for d in used) else "return"
        values = list(used.values())
        aggregate[group] = {
            "metric": metric,
            "datasets": list(used),
            "runs": sum(len(v) for v in values),
            "iqm": interval(values, iqm),
            "mean": interval(values, functools.partial(np.mean, axis=-1)),
            "median": interval(values, functools.partial(np.median, axis=-1)),
        }
        if metric == "score":
            aggregate[group]["optimality_gap"] = interval(
                values, functools.partial(optimality_gap, gamma=GAMMA)
            )
    improvement = []
    for i, x in enumerate(aggregated):
        for y in aggregated[i + 1 :]:
            shared = [d for d in strata[x] if d in strata[y]]
            if shared:
                x_strata, y_strata = [strata[x][d] for d in shared], [strata[y][d] for d in shared]
                low, high = probability_of_improvement_ci(
                    x_strata, y_strata, samples=bootstrap_samples, seed=seed
                )
                improvement.append(
                    {
                        "x": x,
                        "y": y,
                        "datasets": shared,
                        "value": probability_of_improvement(x_strata, y_strata),
                        "ci": [low, high],
                    }
                )
    profiles = {}
    for metric in ("score", "return"):
        members = [g for g in aggregated if aggregate[g]["metric"] == metric]
        if members:
            pooled = np.concatenate([v for g in members for v in strata[g].values()])
            taus = np.linspace(pooled.min(), pooled.max(), PROFILE_POINTS)
            profile = functools.partial(performance_profile, taus=taus)
            curves = {}
            for group in members:
                values = list(strata[group].values())
                low, high = bootstrap_interval(values, profile, samples=bootstrap_samples, seed=seed)
                curves[group] = {
                    "fraction": profile(np.concatenate(values)).tolist(),
                    "ci_low": low.tolist(),
                    "ci_high": high.tolist(),
                }
            profiles[metric] = {"plot": f"profile_{metric}.png", "tau": taus.tolist(), "groups": curves}
    metrics = {}
    for metric_name, per_dataset in data.get("metrics", {}).items():
        metrics[metric_name] = {
            name: {
                "plot": f"metric_{_file_part(metric_name)}_{_file_part(name)}.png",
                "groups": {
                    group: {"phase": curve["phase"], **_derive_curve(curve, bootstrap_samples, seed)}
                    for group, curve in entry["groups"].items()
                },
            }
            for name, entry in per_dataset.items()
        }
    return {
        "statistics": {
            "std": "numpy std over seeds (ddof=0)",
            "iqm": "scipy.stats.trim_mean(x, 0.25) of the final score (raw return without D4RL reference)",
            "mean": "mean of the final score over the runs of all datasets",
            "median": "median of the final score over the runs of all datasets",
            "optimality_gap": f"mean(max({GAMMA:g} - x, 0)) of the final D4RL score (scores only)",
            "probability_of_improvement": (
                "P(x > y): over the pairs of a run of x and a run of y on the same dataset, 1[x > y] + "
                "1[x = y] / 2, averaged over pairs, then over the datasets both ran; P(y > x) = 1 - P(x > y)"
            ),
            "performance_profile": "fraction of runs whose final value is above tau",
            "ci": "95% percentile interval, stratified bootstrap (strata: datasets; resampled: seeds)",
            "curve_ci": "95% percentile interval of the mean over seeds at each step, resampling seeds",
            "bootstrap_samples": bootstrap_samples,
            "bootstrap_seed": seed,
            "min_seeds": MIN_SEEDS,
        },
        "warnings": warnings_,
        "logdirs": data["logdirs"],
        "groups": data["groups"],
        "families": {g: data.get("families", {}).get(g, g) for g in data["groups"]},
        "datasets": datasets,
        "aggregate": aggregate,
        "probability_of_improvement": improvement,
        "profiles": profiles,
        "metrics": metrics,
    }


def _stats(values: np.ndarray) -> dict[str, Any]:
    return {"values": values.tolist(), "mean": float(values.mean()), "std": float(values.std())}


def _interval(
    strata: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], samples: int, seed: int
) -> dict[str, Any]:
    low, high = bootstrap_ci(strata, samples=samples, seed=seed, statistic=statistic)
    return {"value": float(statistic(np.concatenate(strata))), "ci": [low, high]}


def _derive_curve(raw: dict[str, Any], samples: int, seed: int) -> dict[str, Any]:
    """Mean, std and 95% CI of the mean over the seeds at each step; a curve of an older report.json
    without its runs keeps its mean and std."""
    if "runs" not in raw:
        return {key: raw[key] for key in ("steps", "mean", "std")}
    runs = np.array([[np.nan if v is None else v for v in run] for run in raw["runs"]], float)
    runs = runs.reshape(len(raw["runs"]), len(raw["steps"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where every value is missing: null
        mean, std = np.nanmean(runs, axis=0), np.nanstd(runs, axis=0)
    low, high = curve_ci(runs, samples=samples, seed=seed)
    return {
        "steps": raw["steps"],
        "mean": _floats(mean),
        "std": _floats(std),
        "ci_low": _floats(low),
        "ci_high": _floats(high),
        "seeds": raw["seeds"],
        "runs": raw["runs"],
    }


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


# ----------------------------------------------------------------------------------------- report.json


def read_report(
    path: str | Path, bootstrap_samples: int | None = None, metrics: Sequence[str] = ()
) -> dict[str, Any]:
    """The report a ``report.json`` holds, its statistics recomputed (``derive_statistics``) with its own
    bootstrap settings unless ``bootstrap_samples`` is given. Reads the layouts of earlier versions too
    (curves with mean and std only: their bands stay ± std). ``metrics``: the logged metrics to keep (all
    it holds when empty); one it does not hold is an error naming those it does."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: not valid JSON ({error})") from error
    _check_report(data, path)
    stored = data.get("metrics", {})
    for name in metrics:
        if name not in stored:
            held = ", ".join(stored) or "none"
            raise ReportError(
                f"{path}: no curves of metric '{name}' (it holds: {held}); report the run directories "
                "with --metric for others"
            )
    statistics = data.get("statistics", {})
    samples = (
        bootstrap_samples if bootstrap_samples is not None else statistics.get("bootstrap_samples", 2000)
    )
    return derive_statistics(
        {
            "logdirs": data.get("logdirs", []),
            "groups": data["groups"],
            "families": data.get("families", {}),
            "datasets": data["datasets"],
            "metrics": {name: stored[name] for name in (metrics or stored)},
        },
        bootstrap_samples=samples,
        seed=statistics.get("bootstrap_seed", 0),
    )


_MISSING = object()


def _field(obj: dict[str, Any], key: str, where: str, check: Callable[[Any], bool], expected: str) -> Any:
    """``obj[key]``, checked: a ReportError naming ``where`` (file and field) otherwise."""
    if key not in obj:
        raise ReportError(f"{where}['{key}']: field is missing")
    if not check(obj[key]):
        raise ReportError(f"{where}['{key}']: expected {expected}, found {obj[key]!r:.80}")
    return obj[key]


def _optional(obj: dict[str, Any], key: str, where: str, check: Callable[[Any], bool], expected: str) -> Any:
    return _field(obj, key, where, check, expected) if key in obj else _MISSING


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _list_of(check: Callable[[Any], bool], length: int | None = None) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and (length is None or len(v) == length) and all(map(check, v))


def _number_or_null(value: Any) -> bool:
    return value is None or _is_number(value)


def _check_report(data: Any, path: Path) -> None:
    """Every field ``read_report`` uses, with the type it needs."""
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    where = str(path)
    groups = _field(data, "groups", where, _list_of(lambda g: isinstance(g, str)), "a list of group names")
    _optional(data, "logdirs", where, _list_of(lambda d: isinstance(d, str)), "a list of strings")
    _optional(
        data,
        "families",
        where,
        lambda v: _is_object(v) and all(isinstance(f, str) for f in v.values()),
        "an object of group -> label",
    )
    statistics = _optional(data, "statistics", where, _is_object, "an object")
    if statistics is not _MISSING:
        _optional(
            statistics,
            "bootstrap_samples",
            f"{where}['statistics']",
            lambda v: _is_int(v) and v >= 1,
            "a positive integer",
        )
        _optional(statistics, "bootstrap_seed", f"{where}['statistics']", _is_int, "an integer")
    for name, dataset in _field(data, "datasets", where, _is_object, "an object of dataset -> entry").items():
        at = f"{where}['datasets']['{name}']"
        if not isinstance(dataset, dict):
            raise ReportError(f"{at}: expected an object, found {dataset!r:.80}")
        _field(dataset, "env_id", at, lambda v: isinstance(v, str), "a string")
        metric = _field(dataset, "metric", at, lambda v: v in ("score", "return"), "'score' or 'return'")
        for group, entry in _field(dataset, "groups", at, _is_object, "an object of group -> entry").items():
            _check_group(entry, f"{at}['groups']['{group}']", metric, group in groups)
    metrics = _optional(data, "metrics", where, _is_object, "an object of metric -> dataset -> curves")
    for metric_name, per_dataset in ({} if metrics is _MISSING else metrics).items():
        at = f"{where}['metrics']['{metric_name}']"
        if not isinstance(per_dataset, dict):
            raise ReportError(f"{at}: expected an object of dataset -> curves, found {per_dataset!r:.80}")
        for name, entry in per_dataset.items():
            if not isinstance(entry, dict):
                raise ReportError(f"{at}['{name}']: expected an object, found {entry!r:.80}")
            curves = _field(entry, "groups", f"{at}['{name}']", _is_object, "an object of group -> curve")
            for group, curve in curves.items():
                curve_at = f"{at}['{name}']['groups']['{group}']"
                if group not in groups:
                    raise ReportError(f"{curve_at}: a group that '{where}['groups']' does not list")
                _check_curve(curve, curve_at, phase=True)


def _check_group(entry: Any, at: str, metric: str, listed: bool) -> None:
    if not listed:
        raise ReportError(f"{at}: a group that the report's 'groups' list does not name")
    if not isinstance(entry, dict):
        raise ReportError(f"{at}: expected an object, found {entry!r:.80}")
    _field(entry, "seeds", at, _list_of(_is_int), "a list of integers")
    evaluated = len(_field(entry, "evaluated_seeds", at, _list_of(_is_int), "a list of integers"))
    if not evaluated:
        return
    _field(entry, "final_step", at, _list_of(_is_int, evaluated), f"a list of {evaluated} integers")
    finals = ("final_return", "best_return") + (("final_score", "best_score") if metric == "score" else ())
    for key in finals:
        values = _field(entry, key, at, _is_object, "an object with 'values'")
        _field(
            values,
            "values",
            f"{at}['{key}']",
            _list_of(_is_number, evaluated),
            f"a list of {evaluated} numbers",
        )
    if "curve" in entry:
        _check_curve(entry["curve"], f"{at}['curve']", phase=False)


def _check_curve(curve: Any, at: str, phase: bool) -> None:
    if not isinstance(curve, dict):
        raise ReportError(f"{at}: expected an object, found {curve!r:.80}")
    if phase:
        _field(curve, "phase", at, lambda v: isinstance(v, str), "a string")
    steps = len(_field(curve, "steps", at, _list_of(_is_int), "a list of integers"))
    if phase or "runs" in curve:
        seeds = len(_field(curve, "seeds", at, _list_of(_is_int), "a list of integers"))
        runs = f"a list of {seeds} lists of {steps} numbers or nulls"
        _field(curve, "runs", at, _list_of(_list_of(_number_or_null, steps), seeds), runs)
        if not seeds:
            raise ReportError(f"{at}['runs']: expected {runs} with at least one run, found []")
    else:  # a report.json of an earlier version: mean and std only
        for key in ("mean", "std"):
            _field(curve, key, at, _list_of(_is_number, steps), f"a list of {steps} numbers")


# ----------------------------------------------------------------------------------------- output


def report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    bootstrap_samples: int | None = None,
    metrics: Sequence[str] = (),
) -> Path:
    """``brackit report``: the report of run directories, or re-rendered from one ``report.json`` (a
    ``.json`` file other than a ``run.json``), written to ``out_dir``; returns report.md's path. Every input
    is read and checked before anything is written."""
    reports = [Path(p) for p in paths if Path(p).suffix == ".json" and Path(p).name != RunDir.SPEC]
    if reports:
        if len(paths) > 1:
            raise ReportError(
                f"{reports[0]}: give one report.json alone to re-render it, or run directories; not both"
            )
        if not reports[0].is_file():
            raise ReportError(f"{reports[0]}: no such file")
        summary = read_report(reports[0], bootstrap_samples=bootstrap_samples, metrics=metrics)
    else:
        records = load_runs(paths, metrics=metrics)
        samples = 2000 if bootstrap_samples is None else bootstrap_samples
        summary = summarize(records, bootstrap_samples=samples)
    return render(summary, out_dir)


def write_report(
    records: Sequence[RunRecord], out_dir: str | Path, bootstrap_samples: int = 2000, seed: int = 0
) -> Path:
    """Writes report.md, report.json and the plots of ``records``; returns report.md's path."""
    if not records:
        raise ReportError("no runs to report")
    return render(summarize(records, bootstrap_samples=bootstrap_samples, seed=seed), out_dir)


def render(summary: dict[str, Any], out_dir: str | Path) -> Path:
    """Writes report.md, report.json, one curves_<dataset>.png per dataset with curves, one
    profile_<score|return>.png per kind of aggregate, one metric_<name>_<dataset>.png per logged metric
    and dataset; returns report.md's path."""
    out_dir = Path(out_dir)
    styles = _styles(summary["groups"], summary["families"])
    for name, dataset in summary["datasets"].items():
        if dataset["plot"]:
            ylabel = "D4RL-normalized score" if dataset["metric"] == "score" else "return"
            lines = [(g, g, e["curve"]) for g, e in dataset["groups"].items() if "curve" in e]
            _plot_curves(out_dir / dataset["plot"], name, ylabel, lines, styles)
    for metric, profile in summary["profiles"].items():
        xlabel = "final D4RL-normalized score" if metric == "score" else "final return"
        _plot_profile(out_dir / profile["plot"], profile, xlabel, styles)
    for metric_name, per_dataset in summary["metrics"].items():
        for name, entry in per_dataset.items():
            lines = [
                (g, g if c["phase"] == "train" else f"{g} ({c['phase']})", c)
                for g, c in entry["groups"].items()
            ]
            _plot_curves(out_dir / entry["plot"], f"{name}: {metric_name}", metric_name, lines, styles)
    atomic_write_text(out_dir / "report.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", markdown(summary))
    return out_dir / "report.md"


def markdown(summary: dict[str, Any]) -> str:
    """report.md from ``summarize``'s output."""
    datasets, stats = summary["datasets"], summary["statistics"]
    lines = [
        "# brackit report",
        "",
        f"{len(summary['logdirs'])} run directories. Final = last evaluation, best = maximum over "
        "evaluations (per seed); mean ± std over seeds (ddof=0). Aggregates over the final D4RL-normalized "
        "score (raw return where the task has no reference returns) of the runs of all datasets, as in "
        "rliable (Agarwal et al. 2021): mean, median, IQM = interquartile mean "
        f"(`scipy.stats.trim_mean(x, 0.25)`) and optimality gap = mean(max({GAMMA:g} − x, 0)) (scores "
        f"only), each with a 95% CI from {stats['bootstrap_samples']} stratified bootstrap resamples "
        f"(seed {stats['bootstrap_seed']}). `n/m` seeds: n of m evaluated.",
    ]
    for warning in summary["warnings"]:
        lines += ["", f"> **Warning:** {warning}."]
    lines += ["", "## Comparison: final score, mean ± std", ""]
    header = ["group"] + [f"{n} (return)" if d["metric"] == "return" else n for n, d in datasets.items()]
    columns = []
    for dataset in datasets.values():
        cells = {
            g: e[f"final_{dataset['metric']}"] for g, e in dataset["groups"].items() if "final_return" in e
        }
        best = max((c["mean"] for c in cells.values()), default=None)
        columns.append({g: f"**{_pm(c)}**" if c["mean"] == best else _pm(c) for g, c in cells.items()})
    lines += _table(header, [[g] + [column.get(g, "-") for column in columns] for g in summary["groups"]])
    lines += ["", "## Aggregates across datasets", ""]
    rows = [
        [g, str(len(a["datasets"])), str(a["runs"]), a["metric"]]
        + [_interval_text(a[k]) if k in a else "-" for k in ("mean", "median", "iqm", "optimality_gap")]
        for g, a in summary["aggregate"].items()
    ]
    header = ["group", "datasets", "runs", "on", "mean [95% CI]", "median [95% CI]", "IQM [95% CI]"]
    lines += _table([*header, "optimality gap [95% CI]"], rows)
    lines += _improvement_lines(summary)
    if summary["profiles"]:
        lines += [
            "",
            "## Performance profiles",
            "",
            "Fraction of runs (all datasets pooled) whose final value is above each threshold tau; shaded: "
            "95% stratified bootstrap CI.",
        ]
        for metric, profile in summary["profiles"].items():
            lines += ["", f"![performance profile of the final {metric}]({profile['plot']})"]
    for name, dataset in datasets.items():
        lines += ["", f"## {name}" + (f" ({dataset['env_id']})" if dataset["env_id"] != name else ""), ""]
        rows = []
        for group, e in dataset["groups"].items():
            seeds = str(len(e["seeds"]))
            if len(e["evaluated_seeds"]) < len(e["seeds"]):
                seeds = f"{len(e['evaluated_seeds'])}/{seeds}"
            if "final_return" not in e:
                rows.append([group, seeds, *["-"] * 5])
                continue
            step = f"{min(e['final_step'])}" + (
                f"–{max(e['final_step'])}" if min(e["final_step"]) != max(e["final_step"]) else ""
            )
            score = _pm(e["final_score"]) if "final_score" in e else "-"
            rows.append(
                [
                    group,
                    seeds,
                    step,
                    _pm(e["final_return"]),
                    _pm(e["best_return"]),
                    score,
                    _interval_text(e["iqm"]),
                ]
            )
        header = ["group", "seeds", "step", "final return", "best return", "final score", "IQM [95% CI]"]
        lines += _table(header, rows)
        if dataset["plot"]:
            lines += ["", f"![{name} learning curves]({dataset['plot']})"]
        for metric_name, per_dataset in summary["metrics"].items():
            if name in per_dataset:
                lines += ["", f"![{name} {metric_name}]({per_dataset[name]['plot']})"]
    return "\n".join(lines) + "\n"


def _improvement_lines(summary: dict[str, Any]) -> list[str]:
    """The probability of improvement of each aggregated group (row) over each other (column)."""
    if not summary["probability_of_improvement"]:
        return []
    groups = list(summary["aggregate"])
    cells: dict[tuple[str, str], str] = {}
    for pair in summary["probability_of_improvement"]:
        low, high = pair["ci"]
        cells[(pair["x"], pair["y"])] = f"{pair['value']:.2f} [{low:.2f}, {high:.2f}]"
        cells[(pair["y"], pair["x"])] = f"{1 - pair['value']:.2f} [{1 - high:.2f}, {1 - low:.2f}]"
    lines = [
        "",
        "## Probability of improvement",
        "",
        "P(row > column) [95% CI]: the probability that a run of the row's group ends above a run of the "
        "column's on the same dataset (ties count one half), averaged over the datasets both ran; "
        "stratified bootstrap resampling each group's seeds independently. `-`: no dataset in common.",
        "",
    ]
    rows = [
        [f"{i}. {x}"] + ["" if x == y else cells.get((x, y), "-") for y in groups]
        for i, x in enumerate(groups, 1)
    ]
    return lines + _table(["P(row > column)", *map(str, range(1, len(groups) + 1))], rows)


def _pm(stats: dict[str, Any]) -> str:
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}"


def _interval_text(interval: dict[str, Any]) -> str:
    low, high = interval["ci"]
    return f"{interval['value']:.1f} [{low:.1f}, {high:.1f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


# ----------------------------------------------------------------------------------------- plots

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _styles(groups: Sequence[str], families: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Group -> matplotlib line style, the same in every figure: one colour per family (the run label), its
    members told apart by line style and marker; no two groups share (colour, line style, marker). A family
    of more than 32 members takes a further colour for each 32 more."""
    from matplotlib import colormaps

    per_colour = len(_LINESTYLES) * len(_MARKERS)
    members: dict[str, int] = defaultdict(int)
    units: dict[str, tuple[str, int]] = {}  # group -> (family, colour block), and its index in the block
    index: dict[str, int] = {}
    for group in groups:
        family = families.get(group, group)
        index[group] = members[family] % per_colour
        units[group] = (family, members[family] // per_colour)
        members[family] += 1
    colours_of = list(dict.fromkeys(units.values()))
    n = len(colours_of)
    if n <= 10:
        palette = [colormaps["tab10"](i) for i in range(n)]
    elif n <= 20:
        palette = [colormaps["tab20"](i) for i in range(n)]
    else:
        palette = list(colormaps["turbo"](np.linspace(0.05, 0.95, n)))
    colour = dict(zip(colours_of, palette, strict=True))
    return {
        group: {
            "color": colour[units[group]],
            "linestyle": _LINESTYLES[index[group] % len(_LINESTYLES)],
            "marker": _MARKERS[index[group] // len(_LINESTYLES)],
        }
        for group in groups
    }


def _figure(entries: int) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state; PNGs are drawn by Agg

    return Figure(figsize=(9.0, max(4.0, 1.2 + 0.22 * entries)), dpi=100, layout="constrained")


def _save(figure: Any, axes: Any, path: Path) -> None:
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")  # outside the axes: 17 groups stay readable
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _plot_curves(
    path: Path, title: str, ylabel: str, lines: list[tuple[str, str, dict[str, Any]]], styles: dict[str, Any]
) -> None:
    """One line per (group, legend label, curve): the mean over seeds, shaded its 95% CI (± std for a curve
    of an older report.json)."""
    figure = _figure(len(lines))
    axes = figure.add_subplot()
    band = "95% CI"
    for group, label, curve in lines:
        steps = np.asarray(curve["steps"], float)
        mean = _array(curve["mean"])
        if "ci_low" in curve:
            low, high = _array(curve["ci_low"]), _array(curve["ci_high"])
        else:
            std = _array(curve["std"])
            low, high, band = mean - std, mean + std, "± std"
        style = styles[group]
        axes.plot(steps, mean, label=label, markersize=4, markevery=max(1, len(steps) // 12), **style)
        axes.fill_between(steps, low, high, color=style["color"], alpha=0.15, linewidth=0)
    axes.set(xlabel="training step", ylabel=f"{ylabel} (mean over seeds, {band})", title=title)
    _save(figure, axes, path)


def _plot_profile(path: Path, profile: dict[str, Any], xlabel: str, styles: dict[str, Any]) -> None:
    figure = _figure(len(profile["groups"]))
    axes = figure.add_subplot()
    taus = np.asarray(profile["tau"], float)
    for group, curve in profile["groups"].items():
        style = styles[group]
        axes.plot(taus, curve["fraction"], label=group, markersize=4, markevery=len(taus) // 10 or 1, **style)
        axes.fill_between(
            taus, curve["ci_low"], curve["ci_high"], color=style["color"], alpha=0.15, linewidth=0
        )
    axes.set(
        xlabel=f"{xlabel} threshold tau",
        ylabel="fraction of runs above tau (95% CI)",
        title="Performance profile",
        ylim=(-0.02, 1.02),
    )
    _save(figure, axes, path)


def _array(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], float)
