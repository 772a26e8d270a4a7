"""The learning benchmark's report: ``brackit report`` over its runs plus the table the benchmark asks for.

    .venv/bin/python benchmarks/learning_report.py                    # defaults below
    .venv/bin/python benchmarks/learning_report.py --runs benchmarks/results/learning/runs \\
        --out benchmarks/results/learning --data-dir ~/.cache/brackit/datasets

Reads every run directory under ``--runs`` (brackit's, from ``brackit study learning``, and d3rlpy's, from
``benchmarks/learning_peer.py``), writes ``brackit report``'s ``report.md``, ``report.json`` and curves to
``--out``, and ``summary.md`` beside them: per dataset, the data's segment returns (random, policy, noisy
policy) and per group the IQM of the final return and of the D4RL-normalized score with 95% stratified
bootstrap CIs (``brackit.stats``), whether the IQM return reaches the policy segment's mean return, the
grid sweeps (BRAC's alpha, ReBRAC's betas), and the cost of a run (median updates/s of its training chunks, wall time = training chunks
+ evaluations). The segments come from the dataset cards in ``--data-dir`` and are kept in
``--out/datasets.json``, so the report re-renders from the repository alone. The README's learning table
(between its ``learning-table`` markers) is rewritten from the same numbers (``--no-readme``: left alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from brackit.bench import machine_header
from brackit.files import atomic_write_text
from brackit.report import load_runs, write_report
from brackit.scores import normalized_score
from brackit.stats import bootstrap_ci, iqm


def segment_table(runs_dir: Path, data_dir: Path, known: dict) -> dict:
    """Dataset name -> {env_id, sha256, transitions, mc_return_mean, episode_ends, segments: [{name, size,
    mean_episode_return}]}, from the cards and files of the datasets the runs name (kept from ``known``
    where a card is not on this machine)."""
    out = dict(known)
    for spec_path in sorted(runs_dir.rglob("run.json")):
        spec = json.loads(spec_path.read_text())
        data = Path(spec["data"])
        name = spec_path.parent.parent.name
        card_path = data.with_name(data.name.removesuffix(".npz") + ".card.json")
        if not card_path.exists():
            card_path = data_dir / card_path.name
        complete = all(out.get(name, {}).get(key) is not None for key in ("mc_return_mean", "episode_ends"))
        if complete or not card_path.exists():
            continue  # known (a table made before a field was added is completed here)
        card = json.loads(card_path.read_text())
        npz = card_path.with_name(card_path.name.replace(".card.json", ".npz"))
        out[name] = {
            "mc_return_mean": mc_return_mean(npz),
            "episode_ends": episode_ends(npz),
            "env_id": card["env_id"],
            "sha256": card["sha256"],
            "transitions": card["num_transitions"],
            "segments": [
                {k: s[k] for k in ("name", "size", "mean_episode_return")} for s in card["extra"]["segments"]
            ],
        }
    return out


def episode_ends(path: Path) -> dict[str, int] | None:
    """How the dataset's episodes end, by their last rows: ``termination`` (discount 0), ``time_limit``
    (``timeout``: a truncation, whose target bootstraps from the next observation) and ``cut`` (neither: the
    collection's segment ended, ``brackit.protocol.build``). The rows where implementations that treat cuts
    and truncations differently (e.g. bootstrapping them from a zero observation) can disagree."""
    if not path.exists():
        return None
    with np.load(path) as data:
        discount, timeout, episode = data["discount"], data["timeout"].astype(bool), data["episode_id"]
    last = np.append(episode[1:] != episode[:-1], True)
    terminated = last & (discount == 0)
    truncated = last & timeout & ~terminated
    return {
        "episodes": int(last.sum()),
        "termination": int(terminated.sum()),
        "time_limit": int(truncated.sum()),
        "cut": int((last & ~terminated & ~truncated).sum()),
    }


def mc_return_mean(path: Path, gamma: float = 0.99) -> float | None:
    """The mean over the dataset's rows of the discounted return-to-go within each row's episode (gamma 0.99,
    zero after a terminal, not bootstrapped at a cut or timeout, so a lower bound there): what an accurate
    critic of the data's own actions would estimate, beside which the runs' Q estimates are read."""
    if not path.exists():
        return None
    with np.load(path) as data:
        reward, discount, episode = data["reward"], data["discount"], data["episode_id"]
    returns = np.zeros(reward.shape, np.float64)
    following = 0.0
    for i in range(reward.size - 1, -1, -1):  # one pass from the end; 1M rows take a few seconds
        same_episode = i + 1 < reward.size and episode[i + 1] == episode[i]
        following = reward[i] + gamma * discount[i] * (following if same_episode else 0.0)
        returns[i] = following
    return float(returns.mean())


def run_costs(logdir: Path) -> dict[str, float]:
    """Median updates/s of a run's training chunks (per run: a vmapped chunk's rate / its runs) and wall
    time per run in seconds (all chunks, pretraining included, plus evaluations)."""
    entries = [
        json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()
    ]
    spec = json.loads((logdir / "run.json").read_text())
    runs = len(spec["seeds"]) * int(np.prod([len(v) for v in spec["sweep"].values()] or [1]))
    train = [e for e in entries if e.get("phase") == "train"]
    rates = [e["time/updates_per_s"] / runs for e in train]
    seconds = sum(e["time/seconds"] + e.get("time/eval_seconds", 0.0) for e in entries)
    peer = logdir / "peer.json"
    if peer.exists():  # d3rlpy: one run per logdir, its own wall-time count (resumes included)
        seconds = json.loads(peer.read_text())["train_seconds"]
    return {
        "updates_per_s": float(np.median(rates)) if rates else float("nan"),
        "wall_seconds": seconds,
        "steps": int(train[-1]["step"]) if train else 0,
        "target_steps": int(spec["steps"]),
        "vmapped_runs": runs,
    }


LAST_EVALUATIONS = 3
"""The "last 3" column averages each run's returns over this many last evaluations."""
PLOTTED_METRICS = ("critic/q_mean", "vae/kl")
"""Logged metrics drawn against steps (``metric_<name>_<dataset>.png``): the critics' mean Q estimate on the
batch's actions, and BCQ's and BEAR's VAE KL to N(0, 1) (d3rlpy's peers log it at each evaluation), where a
value near 0 is a collapsed posterior."""


def interval(values: np.ndarray) -> str:
    low, high = bootstrap_ci([values], samples=2000, seed=0)
    return f"{float(iqm(values)):.1f} [{low:.1f}, {high:.1f}]"


def summary(runs_dir: Path, out: Path, data_dir: Path, readme: Path | None = None) -> str:
    """Writes ``summary.md`` (and ``brackit report``'s files) to ``out``, and the table into ``readme``'s
    learning-table block when ``readme`` is given; returns the summary's text."""
    # the header first: the files written below would otherwise mark the tree as having uncommitted changes
    header = machine_header(f".venv/bin/python benchmarks/learning_report.py --runs {runs_dir} --out {out}")
    datasets_path = out / "datasets.json"
    known = json.loads(datasets_path.read_text()) if datasets_path.exists() else {}
    segments = segment_table(runs_dir, data_dir, known)
    atomic_write_text(datasets_path, json.dumps(segments, indent=2, sort_keys=True) + "\n")
    records = load_runs([runs_dir], metrics=list(PLOTTED_METRICS))
    write_report(records, out)
    by_dataset: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_dataset[record.dataset][record.group].append(record)
    cells: dict[str, dict[str, str]] = defaultdict(dict)  # group -> dataset -> README cell
    lines = [
        "# Learning benchmark: summary",
        "",
        header,
        "",
        "Final = the last evaluation of each run (10 episodes, the algorithm's reference evaluation rule). "
        "IQM over seeds with a 95% stratified bootstrap CI (2000 resamples); D4RL-normalized scores with "
        "the v2 reference returns (`brackit.scores`). Updates/s: median over a run's training chunks, "
        "per run (a vmapped group's rate divided by its runs); wall: training chunks (pretraining and "
        "compilation included) + evaluations, per group (its runs vmapped) or per d3rlpy run. Final Q "
        "estimate: IQM over seeds of the last logged mean critic estimate on the batch's actions "
        "(`critic/q_mean`; '-' where not logged), to read against the data's return-to-go: a Q far above it "
        "is a critic diverging on out-of-distribution actions. Last 3: IQM over seeds of each run's mean "
        "return over its last 3 evaluations (`LAST_EVALUATIONS`), steadier than one evaluation where a "
        "policy's returns swing between evaluations (Hopper). Rows marked `partial` have not reached their "
        "steps yet.",
        "",
    ]
    # variant -> dataset -> grid point -> (IQM final return, IQM final score, partial)
    sweeps: dict[str, dict[str, dict[GridPoint, tuple[float, float, bool]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for name in sorted(by_dataset):
        info = segments.get(name, {})
        env_id = info.get("env_id")
        lines.append(f"## {name} ({env_id or 'unknown env'})")
        lines.append("")
        policy_return = None
        if info:
            parts = []
            for s in info["segments"]:
                ret = s["mean_episode_return"]
                score = normalized_score(env_id, ret) if ret is not None else None
                text = f"{s['name']} {ret:.1f}" if ret is not None else f"{s['name']} (no full episode)"
                parts.append(text + (f" (score {score:.1f})" if score is not None else ""))
                if s["name"] == "policy":
                    policy_return = ret
            lines.append("Dataset segments, mean episode return: " + "; ".join(parts) + ".")
            if info.get("mc_return_mean") is not None:
                lines.append(
                    f"Mean discounted (0.99) return-to-go of the data's rows: {info['mc_return_mean']:.1f} "
                    "(the scale of an accurate critic's Q estimate on the data's actions)."
                )
            ends = info.get("episode_ends")
            if ends is not None:
                lines.append(
                    f"Episode ends ({ends['episodes']:,} episodes): {ends['termination']:,} terminations, "
                    f"{ends['time_limit']:,} time-limit truncations, {ends['cut']:,} cuts at a collection "
                    "segment's end."
                )
            lines.append("")
        lines.append(
            "| group | seeds | steps | IQM final return [95% CI] | IQM final score [95% CI] | "
            f"last {LAST_EVALUATIONS} [95% CI] | vs policy segment | final Q estimate | updates/s per run | "
            "wall per group or run |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for group, group_records in sorted(by_dataset[name].items()):
            done = [r for r in group_records if r.evaluated]
            if not done:
                continue
            returns = np.array([r.returns[-1] for r in done])
            last_returns = np.array([np.mean(r.returns[-LAST_EVALUATIONS:]) for r in done])
            scores = (
                np.array([r.scores[-1] for r in done]) if all(r.scores is not None for r in done) else None
            )
            logdirs = sorted({r.logdir for r in group_records})
            costs = [run_costs(logdir) for logdir in logdirs]
            steps = min(int(r.steps[-1]) for r in done)
            target = max(c["target_steps"] for c in costs)
            partial = "" if steps >= target else " partial"
            versus = "n/a"
            if policy_return is not None:
                versus = "above" if iqm(returns) >= policy_return else "below"
            q_final = [r.metrics["critic/q_mean"].values[-1] for r in done if "critic/q_mean" in r.metrics]
            q_text = f"{float(iqm(np.array(q_final))):.1f}" if len(q_final) == len(done) else "-"
            rate = np.median([c["updates_per_s"] for c in costs])
            wall = np.median([c["wall_seconds"] for c in costs]) / 60
            score_text = f" ({float(iqm(scores)):.1f})" if scores is not None else ""
            cells[group][name] = (
                f"{float(iqm(returns)):,.0f}{score_text}, {len(done)} seed{'s' if len(done) > 1 else ''}{partial}"
            )
            if (point := grid_point(group)) is not None:
                score = float(iqm(scores)) if scores is not None else math.nan
                sweeps[group.split(" ")[0]][name][point] = (
                    float(iqm(returns)),
                    score,
                    bool(partial),
                )
            lines.append(
                f"| {group} | {len(done)} | {steps:,}{partial} | {interval(returns)} | "
                f"{interval(scores) if scores is not None else 'n/a'} | {interval(last_returns)} | {versus} | {q_text} | {rate:,.0f} | {wall:.1f} min |"
            )
        lines.append("")
    lines.extend(sweep_section(sweeps))
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "summary.md", text)
    if readme is not None:
        write_readme_table(readme, readme_table(cells, segments, header))
    return text


TABLE_ROWS = (
    ("bc", "BC"),
    ("td3bc", "TD3+BC"),
    ("brac-v", "BRAC-v (KL primal)"),
    ("brac-p", "BRAC-p (KL primal)"),
    ("bear", "BEAR"),
    ("bcq", "BCQ"),
    ("rebrac", "ReBRAC"),
    ("d3rlpy BC", "d3rlpy BC"),
    ("d3rlpy BC (deterministic)", "d3rlpy BC (deterministic)"),
    ("d3rlpy TD3+BC", "d3rlpy TD3+BC"),
    ("d3rlpy BCQ", "d3rlpy BCQ"),
    ("d3rlpy BEAR", "d3rlpy BEAR"),
    ("d3rlpy ReBRAC", "d3rlpy ReBRAC"),
)
"""The README table's rows: (group, shown name); grid sweeps stay in ``summary.md``."""

TABLE_DATASETS = ("halfcheetah-eps1", "hopper-eps1", "walker2d-eps1", "ant-eps1")
"""The README table's columns beside any other dataset with runs: the benchmark's four tasks."""

TABLE_START = "<!-- learning-table: written by benchmarks/learning_report.py; edits here are overwritten -->"
TABLE_END = "<!-- /learning-table -->"


def readme_table(cells: dict[str, dict[str, str]], segments: dict, header: str) -> str:
    """The README's learning table: one row per ``TABLE_ROWS`` group, one column per dataset, each cell the
    IQM final return (D4RL score) and seeds, with the data's policy segment as the first row."""
    datasets = sorted({name for row in cells.values() for name in row} | set(segments) | set(TABLE_DATASETS))
    lines = [
        header,
        "",
        "IQM final return over seeds (D4RL score), `eps1` datasets of 1M transitions, budget `cpu` "
        "(`summary.md` has the CIs, the grids and the costs); `partial`: its steps not reached yet; "
        "-: not run yet.",
        "",
        "| | " + " | ".join(datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    policy = []
    for name in datasets:
        info = segments.get(name, {})
        ret = next(
            (s["mean_episode_return"] for s in info.get("segments", []) if s["name"] == "policy"), None
        )
        score = normalized_score(info.get("env_id"), ret) if ret is not None else None
        policy.append(
            "-" if ret is None else f"{ret:,.0f}" + (f" ({score:.1f})" if score is not None else "")
        )
    lines.append("| the data's policy segment | " + " | ".join(policy) + " |")
    for group, shown in TABLE_ROWS:
        row = cells.get(group, {})
        lines.append(f"| {shown} | " + " | ".join(row.get(name, "-") for name in datasets) + " |")
    return "\n".join(lines)


def write_readme_table(readme: Path, table: str) -> None:
    """Replaces the text between ``TABLE_START`` and ``TABLE_END`` in ``readme`` (both must be there)."""
    text = readme.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {TABLE_START!r} ... {TABLE_END!r} block to write the table into")
    atomic_write_text(readme, text[: start + len(TABLE_START)] + "\n" + table + "\n" + text[end:])


SWEEP_VALUE = re.compile(r"[a-z_]+=[0-9.eE+-]+")
"""One swept field's value in a group's name, as ``brackit report`` labels a sweep's group: the label, then
``field=value`` per swept field (``brac-v-alpha alpha=0.1``, ``rebrac-beta@beta_critic=0.01 beta_actor=0.01``)."""

GridPoint = tuple[tuple[str, float], ...]


def grid_point(group: str) -> GridPoint | None:
    """The swept fields' values of a group of a sweep, ``(("alpha", 0.1),)``; None for other groups."""
    tokens = group.split(" ")
    if len(tokens) < 2 or not all(SWEEP_VALUE.fullmatch(t) for t in tokens[1:]):
        return None
    return tuple((key, float(value)) for key, value in (t.split("=") for t in tokens[1:]))


def point_text(point: GridPoint) -> str:
    return ", ".join(f"{key} {value:g}" for key, value in point)


def sweep_section(sweeps: dict[str, dict[str, dict[GridPoint, tuple[float, float, bool]]]]) -> list[str]:
    """Per grid variant: the grid (IQM final return per grid point and dataset), the best point per dataset,
    and the single point best across datasets (the largest mean D4RL score over the datasets where every
    point ran; chosen only from finished groups)."""
    lines: list[str] = []
    for variant, per_dataset in sorted(sweeps.items()):
        values = sorted({value for grid in per_dataset.values() for value in grid})
        datasets = sorted(per_dataset)
        fields = ", ".join(dict.fromkeys(key for point in values for key, _ in point))
        lines += [f"## The {variant} grid: {fields} per dataset", ""]
        lines.append(f"| {fields} | " + " | ".join(datasets) + " | mean score |")
        lines.append("|---|" + "---|" * (len(datasets) + 1))
        mean_scores: dict[GridPoint, float] = {}
        for value in values:
            cells, scores = [], []
            for dataset in datasets:
                cell = per_dataset[dataset].get(value)
                if cell is None:
                    cells.append("-")
                    continue
                ret, score, partial = cell
                cells.append(f"{ret:.1f} (score {score:.1f}){' partial' if partial else ''}")
                scores.append(math.nan if partial else score)
            complete = len(scores) == len(datasets) and not any(math.isnan(x) for x in scores)
            mean_scores[value] = float(np.mean(scores)) if complete else math.nan
            mean = f"{mean_scores[value]:.1f}" if complete else "n/a (partial)"
            lines.append(f"| {point_text(value)} | " + " | ".join(cells) + f" | {mean} |")
        lines.append("")
        for dataset in datasets:
            grid = per_dataset[dataset]
            finished = {v: cell for v, cell in grid.items() if not cell[2]}
            if len(finished) < len(grid):
                lines.append(f"- {dataset}: not finished ({len(finished)} of {len(grid)} values)")
                continue
            best = max(finished, key=lambda v: finished[v][0])
            lines.append(f"- {dataset}: best {point_text(best)} (IQM final return {finished[best][0]:.1f})")
        ranked = {v: m for v, m in mean_scores.items() if not math.isnan(m)}
        if ranked:
            best = max(ranked, key=ranked.get)
            lines.append(f"- across datasets: {point_text(best)} (mean IQM final score {ranked[best]:.1f})")
        else:
            lines.append("- across datasets: not decided until every dataset's grid has finished")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/results/learning/runs"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"))
    default_data = os.environ.get("BRACKIT_DATA_DIR", str(Path.home() / ".cache/brackit/datasets"))
    parser.add_argument("--data-dir", type=Path, default=Path(default_data))
    parser.add_argument(
        "--readme", type=Path, default=Path("README.md"), help="whose learning-table block gets the table"
    )
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    args = parser.parse_args(argv)
    print(summary(args.runs, args.out, args.data_dir, None if args.no_readme else args.readme))


if __name__ == "__main__":
    main()
