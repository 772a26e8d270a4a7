"""Reports: IQM and stratified bootstrap against hand computations, grouping of logdirs, written files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from brackit.cli import main
from brackit.errors import ConfigError
from brackit.report import (
    ReportError,
    bootstrap_ci,
    iqm,
    load_runs,
    stratified_resamples,
    summarize,
    write_report,
)
from brackit.run import RunSpec
from brackit.scores import normalized_score

# Returns per evaluation step, one value per run (run order: every sweep point, each with every seed).
HOPPER_BC = {1000: [100.0, 200.0, 300.0, 400.0], 2000: [150.0, 180.0, 350.0, 900.0]}
HOPPER_BRAC = {1000: [500.0, 520.0, 700.0, 760.0], 2000: [600.0, 640.0, 650.0, 800.0]}  # alpha 0.1, 0.1, 1, 1
WALKER_BC = {1000: [1000.0, 1100.0, 1300.0], 3000: [1500.0, 1400.0, 1200.0]}


def write_logdir(
    logdir: Path,
    evaluations: dict[int, list[float]],
    *,
    algorithm: str = "bc",
    data: str = "datasets/hopper-eps1.npz",
    env_id: str | None = "Hopper-v5",
    seeds: tuple[int, ...] = (0, 1, 2, 3),
    sweep: dict[str, list[float]] | None = None,
    label: str = "",
) -> Path:
    """A logdir as run_training writes it: run.json and metrics.jsonl with a pretrain chunk first."""
    spec = RunSpec(
        algorithm=algorithm,
        config={},
        data=data,
        dataset_sha256="0" * 64,
        env_id=env_id,
        seeds=seeds,
        sweep=sweep or {},
        steps=max(evaluations, default=1000),
        chunk_steps=500,
        eval_every=1000,
        eval_episodes=5,
        eval_mode="mode",
        label=label,
    )
    runs = len(seeds) * int(np.prod([len(v) for v in (sweep or {}).values()]))
    entries = [{"phase": "pretrain", "step": 500, "behavior/loss": [1.0] * runs, "time/seconds": 1.0}]
    for step in range(500, spec.steps + 1, 500):
        entry = {"phase": "train", "step": step, "critic/loss": [0.5] * runs, "time/seconds": 1.0}
        if step in evaluations:
            returns = evaluations[step]
            entry |= {"eval/return_mean": returns, "eval/return_std": [1.0] * runs}
            if normalized_score(env_id, 0.0) is not None:
                entry["eval/score_mean"] = [normalized_score(env_id, r) for r in returns]
        entries.append(entry)
    logdir.mkdir(parents=True)
    (logdir / "run.json").write_text(spec.to_json() + "\n")
    (logdir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return logdir


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Two datasets with scores (hopper: bc and a brac sweep; walker: bc) and an unevaluated pendulum run."""
    root = tmp_path / "study"
    write_logdir(root / "hopper-eps1" / "bc", HOPPER_BC)
    write_logdir(
        root / "hopper-eps1" / "brac",
        HOPPER_BRAC,
        algorithm="brac",
        seeds=(0, 1),
        sweep={"alpha": [0.1, 1.0]},
        label="brac-v",
    )
    write_logdir(
        root / "walker" / "bc",
        WALKER_BC,
        data="data/walker2d-eps1.hdf5",
        env_id="Walker2d-v5",
        seeds=(0, 1, 2),
    )
    write_logdir(root / "pendulum", {}, data="<in memory>", env_id="Pendulum-v1", seeds=(0,))
    return root


def score(env_id: str, returns: list[float]) -> np.ndarray:
    return np.array([normalized_score(env_id, r) for r in returns])


# ----------------------------------------------------------------------------------------- statistics


def test_iqm_against_hand_computation_and_scipy():
    assert iqm([1.0, 2.0, 3.0, 100.0]) == 2.5  # n=4: drop one at each end, mean of 2 and 3
    assert iqm([100.0, 7, 6, 5, 4, 3, 2, 1]) == 4.5  # n=8: drop two at each end, mean of 3, 4, 5, 6
    assert iqm([5.0, 1, 4, 2, 3]) == 3.0  # n=5: floor(5/4) = 1 dropped at each end: mean of 2, 3, 4
    assert iqm([1.0, 2, 3]) == 2.0  # n<4: the plain mean
    rng = np.random.default_rng(0)
    for n in (5, 6, 7, 9, 10):
        x = rng.normal(size=n)
        np.testing.assert_allclose(iqm(x), scipy.stats.trim_mean(x, 0.25), rtol=1e-12)
    matrix = rng.normal(size=(3, 6))
    np.testing.assert_allclose(iqm(matrix, axis=1), scipy.stats.trim_mean(matrix, 0.25, axis=1), rtol=1e-12)


def test_stratified_resamples_keep_the_per_stratum_counts():
    strata = [np.array([0.1, 0.2, 0.3]), np.array([10.0, 11.0]), np.array([100.0])]
    resamples = stratified_resamples(strata, 500, np.random.default_rng(0))
    assert resamples.shape == (500, 6)
    assert np.all(np.isin(resamples[:, :3], strata[0]))  # columns in stratum order, drawn from their own
    assert np.all(np.isin(resamples[:, 3:5], strata[1]))
    assert np.all(resamples[:, 5] == 100.0)
    assert len(np.unique(resamples[:, :3])) == 3  # every value of a stratum gets drawn


def test_bootstrap_ci_contains_the_estimate_is_deterministic_and_narrows():
    rng = np.random.default_rng(1)
    few, many = rng.normal(50.0, 10.0, size=5), rng.normal(50.0, 10.0, size=80)
    low, high = bootstrap_ci([few], samples=1000, seed=3)
    assert low <= iqm(few) <= high
    assert bootstrap_ci([few], samples=1000, seed=3) == (low, high)
    assert bootstrap_ci([few], samples=1000, seed=4) != (low, high)
    many_low, many_high = bootstrap_ci([many], samples=1000, seed=3)
    assert many_high - many_low < (high - low) / 2
    # Stratified: a stratum with a single value is never resampled away, so the pooled IQM stays above it.
    assert bootstrap_ci([np.full(4, 1.0), np.array([0.0])], samples=200)[0] > 0.0
    assert bootstrap_ci([np.array([7.0])]) == (7.0, 7.0)
    with pytest.raises(ConfigError, match="at least 1"):
        bootstrap_ci([few], samples=0)


# ----------------------------------------------------------------------------------------- loading


def test_load_runs_names_groups_by_label_and_sweep(study):
    records = load_runs([study])
    assert len(records) == 4 + 4 + 3 + 1
    groups = {(r.dataset, r.group, r.seed) for r in records}
    assert ("hopper-eps1", "bc", 3) in groups  # label empty: the algorithm name
    assert {("hopper-eps1", f"brac-v alpha={a}", s) for a in ("0.1", "1") for s in (0, 1)} <= groups
    assert ("walker2d-eps1", "bc", 2) in groups  # the data path's stem
    (pendulum,) = [r for r in records if r.dataset == "Pendulum-v1"]  # in-memory data: the env id
    assert not pendulum.evaluated and pendulum.scores is None
    brac = [r for r in records if r.label == "brac-v"]
    assert [(r.sweep["alpha"], r.seed) for r in brac] == [(0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)]
    np.testing.assert_array_equal(brac[2].returns, [700.0, 650.0])
    np.testing.assert_array_equal(brac[2].steps, [1000, 2000])  # the pretrain chunk is no evaluation
    np.testing.assert_allclose(brac[2].scores, score("Hopper-v5", [700.0, 650.0]))
    # The same directory twice, or a run.json named directly, is loaded once.
    assert len(load_runs([study, study / "hopper-eps1" / "bc" / "run.json"])) == len(records)


def test_logdirs_with_the_same_group_and_seed_are_told_apart(tmp_path):
    write_logdir(tmp_path / "a", HOPPER_BC)
    write_logdir(tmp_path / "b", HOPPER_BC)
    write_logdir(tmp_path / "c", HOPPER_BC, label="other")
    groups = {r.group for r in load_runs([tmp_path])}
    assert groups == {f"bc [{tmp_path / 'a'}]", f"bc [{tmp_path / 'b'}]", "other"}


def test_malformed_files_name_the_file_and_the_field(tmp_path):
    logdir = write_logdir(tmp_path / "run", HOPPER_BC)
    spec_path, metrics_path = logdir / "run.json", logdir / "metrics.jsonl"
    spec = json.loads(spec_path.read_text())
    with pytest.raises(ReportError, match=r"no run.json found under"):
        load_runs([tmp_path / "run" / "metrics.jsonl"])
    with pytest.raises(ReportError, match=r"missing: no such file"):
        load_runs([tmp_path / "missing"])
    spec_path.write_text(json.dumps({k: v for k, v in spec.items() if k != "seeds"}))
    with pytest.raises(ReportError, match=rf"{spec_path}: field 'seeds' is missing"):
        load_runs([logdir])
    spec_path.write_text(json.dumps(spec | {"seeds": ["zero"]}))
    with pytest.raises(ReportError, match=r"run.json: field 'seeds': expected a list of integers"):
        load_runs([logdir])
    spec_path.write_text("{")
    with pytest.raises(ReportError, match=r"run.json: not valid JSON"):
        load_runs([logdir])
    spec_path.write_text(json.dumps(spec))
    lines = metrics_path.read_text().splitlines()
    broken = json.loads(lines[2]) | {"eval/return_mean": [1.0, 2.0]}
    metrics_path.write_text("\n".join([*lines[:2], json.dumps(broken), *lines[3:]]))
    with pytest.raises(
        ReportError, match=r"metrics.jsonl: line 3: field 'eval/return_mean': expected a list of 4"
    ):
        load_runs([logdir])
    metrics_path.write_text("not json\n")
    with pytest.raises(ReportError, match=r"metrics.jsonl: line 1: not valid JSON"):
        load_runs([logdir])


# ----------------------------------------------------------------------------------------- report


def test_summary_final_best_and_aggregates(study):
    summary = summarize(load_runs([study]), bootstrap_samples=500)
    hopper = summary["datasets"]["hopper-eps1"]
    assert hopper["metric"] == "score" and summary["datasets"]["Pendulum-v1"]["metric"] == "return"
    assert list(hopper["groups"]) == ["bc", "brac-v alpha=0.1", "brac-v alpha=1"]
    bc = hopper["groups"]["bc"]
    final, best = np.array(HOPPER_BC[2000]), np.maximum(HOPPER_BC[1000], HOPPER_BC[2000])
    assert bc["final_return"]["mean"] == pytest.approx(final.mean())
    assert bc["final_return"]["std"] == pytest.approx(final.std())
    assert bc["best_return"]["mean"] == pytest.approx(best.mean())
    assert bc["final_score"]["mean"] == pytest.approx(score("Hopper-v5", HOPPER_BC[2000]).mean())
    assert bc["iqm"]["value"] == pytest.approx(np.sort(score("Hopper-v5", HOPPER_BC[2000]))[1:3].mean())
    low, high = bc["iqm"]["ci"]
    assert low <= bc["iqm"]["value"] <= high
    assert bc["curve"]["steps"] == [1000, 2000]
    assert bc["curve"]["std"][0] == pytest.approx(score("Hopper-v5", HOPPER_BC[1000]).std())
    assert summary["datasets"]["Pendulum-v1"]["groups"]["bc"] == {"seeds": [0], "evaluated_seeds": []}
    # bc: 4 hopper seeds and 3 walker seeds pooled; the CI resamples within each dataset.
    aggregate = summary["aggregate"]["bc"]
    pooled = np.concatenate([score("Hopper-v5", HOPPER_BC[2000]), score("Walker2d-v5", WALKER_BC[3000])])
    assert aggregate["datasets"] == ["hopper-eps1", "walker2d-eps1"] and aggregate["runs"] == 7
    assert aggregate["metric"] == "score" and aggregate["iqm"]["value"] == pytest.approx(iqm(pooled))
    assert summary["groups"] == ["bc", "brac-v alpha=0.1", "brac-v alpha=1"]


def test_write_report_writes_markdown_json_and_curves(study, tmp_path):
    out = tmp_path / "out"
    path = write_report(load_runs([study]), out, bootstrap_samples=300)
    assert path == out / "report.md"
    text = path.read_text()
    final = np.array(HOPPER_BC[2000])
    assert f"| bc | 4 | 2000 | {final.mean():.1f} ± {final.std():.1f} |" in text
    brac_scores = score("Hopper-v5", [650.0, 800.0])
    cell = (
        f"**{brac_scores.mean():.1f} ± {brac_scores.std():.1f}**"  # the best hopper score in the comparison
    )
    assert f"| brac-v alpha=1 | - | {cell} | - |" in text  # columns: Pendulum-v1, hopper-eps1, walker2d-eps1
    assert "| bc | 0/1 | - | - | - | - | - |" in text  # the pendulum run without evaluation
    assert "| Pendulum-v1 (return) |" in text
    assert "![hopper-eps1 learning curves](curves_hopper-eps1.png)" in text
    for name in ("curves_hopper-eps1.png", "curves_walker2d-eps1.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not (out / "curves_Pendulum-v1.png").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["statistics"]["bootstrap_samples"] == 300
    assert report == json.loads(json.dumps(summarize(load_runs([study]), bootstrap_samples=300)))
    assert sorted(p.name for p in out.iterdir()) == [
        "curves_hopper-eps1.png",
        "curves_walker2d-eps1.png",
        "report.json",
        "report.md",
    ]  # no temporary files left behind


def test_cli_report(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", str(study / "hopper-eps1"), str(study / "walker"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "## Comparison" in printed and printed.rstrip().endswith(f"report: {out / 'report.md'}")
    assert (out / "report.md").exists()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no run.json found under") and error.count("\n") == 1


def test_dataset_names_drop_the_task_mix_cache_suffix():
    from brackit.data.resolve import dataset_name

    assert dataset_name("/cache/hopper-eps1-100000-s0.npz") == "hopper-eps1"
    assert dataset_name("runs/halfcheetah-gaussian3-2000-s7.npz") == "halfcheetah-gaussian3"
    assert dataset_name("data/my-data.npz") == "my-data"
    assert dataset_name("hopper-medium-v2.hdf5") == "hopper-medium-v2"
