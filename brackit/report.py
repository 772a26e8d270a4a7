"""Reports over training runs: tables of final and best returns, D4RL scores, IQM with bootstrap CIs, curves.

``load_runs`` finds every ``run.json`` below the given directories and returns one ``RunRecord`` per run
(each seed of each sweep point) of each logdir. ``write_report`` groups them by (dataset, group) and writes

    OUT/report.md             per-dataset tables, a paper-style comparison table, aggregate IQM, plot links
    OUT/report.json           the same numbers, machine readable, with the per-seed values and curves
    OUT/curves_<dataset>.png  learning curves: mean over seeds, shaded ± std, one line per group

A group is the run's label (the algorithm name when the label is empty) plus its sweep values, e.g.
``brac alpha=0.1``. Final = the last evaluation, best = the maximum over evaluations, both per seed; then
mean ± std over seeds (numpy's std, ddof=0). The robust statistics follow Agarwal et al. (2021), "Deep RL
at the Edge of the Statistical Precipice" (rliable): the interquartile mean (see ``iqm``) of the final
D4RL-normalized score (the raw return for tasks without reference returns), with a 95% percentile
confidence interval from a stratified bootstrap (strata = datasets, resampling seeds within each).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brackit.data.resolve import dataset_name
from brackit.errors import BrackitError, ConfigError
from brackit.files import atomic_path, atomic_write_text
from brackit.run import RunSpec
from brackit.scores import normalized_score
from brackit.train import run_grid


class ReportError(BrackitError, ValueError):
    """Runs that cannot be reported: the message names the file and the field."""


@dataclasses.dataclass(frozen=True, eq=False)
class RunRecord:
    """One run of a logdir (run ``index`` of ``run_grid(seeds, sweep)``) and its evaluation curve.

    ``steps``, ``returns``: [T], T = 0 for a run without any evaluation; ``scores``: [T] D4RL-normalized,
    or None for a task without reference returns.
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

    @property
    def evaluated(self) -> bool:
        return self.steps.size > 0


# ----------------------------------------------------------------------------------------- loading


def load_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Every run of every ``run.json`` at or below ``paths`` (hidden directories are skipped)."""
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"{path}: no such file or directory")
        if path.is_file():
            candidates = [path] if path.name == "run.json" else []
        else:
            candidates = [
                c
                for c in sorted(path.rglob("run.json"))
                if not any(part.startswith(".") for part in c.relative_to(path).parts[:-1])
            ]
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    if not found:
        raise ReportError(f"no run.json found under {', '.join(map(str, paths))}")
    records = [record for spec_path in found.values() for record in _load_logdir(spec_path)]
    return _disambiguate(records)


def _load_logdir(spec_path: Path) -> list[RunRecord]:
    spec = _read_spec(spec_path)
    runs = run_grid(spec.seeds, spec.sweep)
    steps, returns, scores = _read_evaluations(spec_path.parent / "metrics.jsonl", len(runs), spec.env_id)
    label = spec.label or spec.algorithm
    dataset = (spec.env_id or "unknown") if spec.data == "<in memory>" else dataset_name(spec.data)
    records = []
    for index, run in enumerate(runs):
        sweep = {name: value for name, value in run.items() if name != "seed"}
        records.append(
            RunRecord(
                logdir=spec_path.parent,
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
            )
        )
    return records


def _read_spec(path: Path) -> RunSpec:
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    for field in dataclasses.fields(RunSpec):
        if field.name not in data and field.default is dataclasses.MISSING:
            raise ReportError(f"{path}: field '{field.name}' is missing")
    checks = {
        "algorithm": (lambda v: isinstance(v, str), "a string"),
        "data": (lambda v: isinstance(v, str), "a string"),
        "env_id": (lambda v: v is None or isinstance(v, str), "a string or null"),
        "label": (lambda v: isinstance(v, str), "a string"),
        "seeds": (lambda v: isinstance(v, list) and v and all(_is_int(s) for s in v), "a list of integers"),
        "sweep": (
            lambda v: (
                isinstance(v, dict)
                and all(isinstance(x, list) and x and all(_is_number(y) for y in x) for x in v.values())
            ),
            "an object of name -> list of numbers",
        ),
    }
    for name, (check, expected) in checks.items():
        if name in data and not check(data[name]):
            raise ReportError(f"{path}: field '{name}': expected {expected}, found {data[name]!r:.80}")
    try:
        return RunSpec.from_json(text)
    except TypeError as error:  # a field this version does not know
        raise ReportError(f"{path}: {error}") from error


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_evaluations(
    path: Path, runs: int, env_id: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(steps [T], returns [T, R], scores [T, R] or None) of the train-phase evaluations in metrics.jsonl."""
    steps: list[int] = []
    returns: list[np.ndarray] = []
    scores: list[np.ndarray | None] = []
    lines = path.read_text().splitlines() if path.exists() else []  # no file yet: a run not started
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReportError(f"{where}: not valid JSON ({error.msg})") from error
        if not isinstance(entry, dict):
            raise ReportError(f"{where}: expected a JSON object")
        if entry.get("phase") != "train" or "eval/return_mean" not in entry:
            continue
        if not _is_int(entry.get("step")):
            raise ReportError(f"{where}: field 'step': expected an integer, found {entry.get('step')!r}")
        steps.append(entry["step"])
        returns.append(_per_run(entry, "eval/return_mean", runs, where))
        scores.append(_per_run(entry, "eval/score_mean", runs, where) if "eval/score_mean" in entry else None)
    steps_array, returns_array = np.asarray(steps, int), np.asarray(returns, float).reshape(len(steps), runs)
    if scores and all(s is not None for s in scores):
        return steps_array, returns_array, np.asarray(scores, float)
    if normalized_score(env_id, 0.0) is None:
        return steps_array, returns_array, None
    # An older or partial file without eval/score_mean: the score is the same function of the mean return.
    to_score = np.vectorize(lambda r: normalized_score(env_id, r), otypes=[float])
    return steps_array, returns_array, to_score(returns_array)


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


# ----------------------------------------------------------------------------------------- statistics


def iqm(values: Any, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: sort, drop ``floor(n / 4)`` values at each end, average the rest.

    This is ``scipy.stats.trim_mean(values, 0.25)``, the definition rliable uses. For n not divisible by 4
    slightly more than the middle half is kept (n = 5: the middle 3, n = 6: the middle 4), without
    fractional weights; for n < 4 it is the plain mean.
    """
    values = np.sort(np.asarray(values, float), axis=axis)
    n = values.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array")
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def stratified_resamples(strata: Sequence[np.ndarray], samples: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, N] bootstrap resamples, N = total size: row b draws n_i values with replacement from each
    stratum i (columns in stratum order), so every resample keeps the per-stratum counts."""
    return np.concatenate([s[rng.integers(0, len(s), size=(samples, len(s)))] for s in strata], axis=1)


def bootstrap_ci(
    strata: Sequence[Any], samples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile confidence interval of the IQM of the pooled strata under the stratified bootstrap."""
    if samples < 1:
        raise ConfigError(f"bootstrap samples must be at least 1, got {samples}")
    strata = [np.asarray(s, float).ravel() for s in strata if np.size(s)]
    if not strata:
        raise ValueError("bootstrap_ci needs at least one value")
    estimates = iqm(stratified_resamples(strata, samples, np.random.default_rng(seed)), axis=1)
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return float(low), float(high)


def _stats(values: np.ndarray) -> dict[str, Any]:
    return {"values": values.tolist(), "mean": float(values.mean()), "std": float(values.std())}


def _curve(records: list[RunRecord], metric: str) -> dict[str, list[float]]:
    """Mean and std over the seeds evaluated at each step (seeds may stop at different steps)."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for record in records:
        for step, value in zip(record.steps, _metric(record, metric), strict=True):
            by_step[int(step)].append(float(value))
    steps = sorted(by_step)
    return {
        "steps": steps,
        "mean": [float(np.mean(by_step[s])) for s in steps],
        "std": [float(np.std(by_step[s])) for s in steps],
    }


def _metric(record: RunRecord, metric: str) -> np.ndarray:
    return record.scores if metric == "score" and record.scores is not None else record.returns


def summarize(records: Sequence[RunRecord], bootstrap_samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every number of the report, as ``report.json`` holds it."""
    order = {r.group: (r.label, sorted(r.sweep.items()), r.group) for r in records}
    tree: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        tree[record.dataset][record.group].append(record)
    datasets: dict[str, Any] = {}
    strata: dict[str, dict[str, np.ndarray]] = defaultdict(dict)  # group -> dataset -> final metric values
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
                entry["final_return"] = _stats(np.array([r.returns[-1] for r in done]))
                entry["best_return"] = _stats(np.array([r.returns.max() for r in done]))
                if metric == "score":
                    entry["final_score"] = _stats(np.array([r.scores[-1] for r in done]))
                    entry["best_score"] = _stats(np.array([r.scores.max() for r in done]))
                final = np.array([_metric(r, metric)[-1] for r in done])
                strata[group][name] = final
                entry["iqm"] = _interval([final], bootstrap_samples, seed)
                entry["curve"] = _curve(done, metric)
            groups[group] = entry
        plot = f"curves_{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.png" if evaluated else None
        env_ids = sorted({str(r.env_id) for group in tree[name].values() for r in group})
        datasets[name] = {"env_id": ", ".join(env_ids), "metric": metric, "plot": plot, "groups": groups}
    aggregate = {}
    for group in sorted(strata, key=order.__getitem__):
        used = strata[group]
        metric = "score" if all(datasets[d]["metric"] == "score" for d in used) else "return"
        aggregate[group] = {
            "metric": metric,
            "datasets": list(used),
            "runs": sum(len(v) for v in used.values()),
            "iqm": _interval(list(used.values()), bootstrap_samples, seed),
        }
    return {
        "statistics": {
            "std": "numpy std over seeds (ddof=0)",
            "iqm": "scipy.stats.trim_mean(x, 0.25) of the final score (raw return without D4RL reference)",
            "ci": "95% percentile interval, stratified bootstrap (strata: datasets; resampled: seeds)",
            "bootstrap_samples": bootstrap_samples,
            "bootstrap_seed": seed,
        },
        "logdirs": sorted({str(r.logdir) for r in records}),
        "groups": sorted(order, key=order.__getitem__),
        "datasets": datasets,
        "aggregate": aggregate,
    }


def _interval(strata: Sequence[np.ndarray], samples: int, seed: int) -> dict[str, Any]:
    low, high = bootstrap_ci(strata, samples=samples, seed=seed)
    return {"value": float(iqm(np.concatenate(strata))), "ci": [low, high]}


# ----------------------------------------------------------------------------------------- output


def write_report(
    records: Sequence[RunRecord], out_dir: str | Path, bootstrap_samples: int = 2000, seed: int = 0
) -> Path:
    """Writes report.md, report.json and one curves_<dataset>.png per dataset; returns report.md's path."""
    if not records:
        raise ReportError("no runs to report")
    out_dir = Path(out_dir)
    summary = summarize(records, bootstrap_samples=bootstrap_samples, seed=seed)
    for name, dataset in summary["datasets"].items():
        if dataset["plot"]:
            _plot_curves(out_dir / dataset["plot"], name, dataset)
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
        "evaluations (per seed); mean ± std over seeds (ddof=0). IQM = interquartile mean "
        "(`scipy.stats.trim_mean(x, 0.25)`, as in rliable) of the final D4RL-normalized score (raw return "
        f"where the task has no reference returns), with a 95% CI from {stats['bootstrap_samples']} "
        f"stratified bootstrap resamples (seed {stats['bootstrap_seed']}). `n/m` seeds: n of m evaluated.",
        "",
        "## Comparison: final score, mean ± std",
        "",
    ]
    header = ["group"] + [f"{n} (return)" if d["metric"] == "return" else n for n, d in datasets.items()]
    columns = []
    for dataset in datasets.values():
        cells = {
            g: e[f"final_{dataset['metric']}"] for g, e in dataset["groups"].items() if "final_return" in e
        }
        best = max((c["mean"] for c in cells.values()), default=None)
        columns.append({g: f"**{_pm(c)}**" if c["mean"] == best else _pm(c) for g, c in cells.items()})
    lines += _table(header, [[g] + [column.get(g, "-") for column in columns] for g in summary["groups"]])
    lines += ["", "## Aggregate IQM across datasets", ""]
    rows = [
        [g, str(len(a["datasets"])), str(a["runs"]), a["metric"], _interval_text(a["iqm"])]
        for g, a in summary["aggregate"].items()
    ]
    lines += _table(["group", "datasets", "runs", "on", "IQM [95% CI]"], rows)
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
    return "\n".join(lines) + "\n"


def _pm(stats: dict[str, Any]) -> str:
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}"


def _interval_text(interval: dict[str, Any]) -> str:
    low, high = interval["ci"]
    return f"{interval['value']:.1f} [{low:.1f}, {high:.1f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


def _plot_curves(path: Path, name: str, dataset: dict[str, Any]) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state; PNGs are drawn by Agg

    figure = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for group, entry in dataset["groups"].items():
        if "curve" not in entry:
            continue
        steps, mean, std = (np.asarray(entry["curve"][k]) for k in ("steps", "mean", "std"))
        (line,) = axes.plot(steps, mean, marker="o", markersize=3, label=group)
        axes.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ylabel = "D4RL-normalized score" if dataset["metric"] == "score" else "return"
    axes.set(xlabel="training step", ylabel=f"{ylabel} (mean ± std over seeds)", title=name)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
