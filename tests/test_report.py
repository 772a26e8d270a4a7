"""Reports: aggregates against hand computations, grouping of logdirs, written files, re-rendering from
report.json, logged metrics, CLI. The statistics themselves: tests/test_stats.py."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from brackit.cli import main
from brackit.report import (
    MIN_SEEDS,
    ReportError,
    load_runs,
    markdown,
    read_report,
    report,
    summarize,
    write_report,
)
from brackit.rundir import RunDir, RunSpec
from brackit.scores import normalized_score
from brackit.stats import iqm

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
        entry = {"phase": "train", "step": step, "critic/loss": critic_loss(step, runs), "time/seconds": 1.0}
        if step in evaluations:
            returns = evaluations[step]
            entry |= {"eval/return_mean": returns, "eval/return_std": [1.0] * runs}
            if normalized_score(env_id, 0.0) is not None:
                entry["eval/score_mean"] = [normalized_score(env_id, r) for r in returns]
        entries.append(entry)
    logdir.mkdir(parents=True)
    RunDir(logdir).write_spec(spec)
    RunDir(logdir).write_metrics(entries)
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


def critic_loss(step: int, runs: int) -> list[float]:
    """The fixture's logged critic loss: step / 1000 + run index."""
    return [step / 1000 + run for run in range(runs)]


def score(env_id: str, returns: list[float]) -> np.ndarray:
    return np.array([normalized_score(env_id, r) for r in returns])


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
    with pytest.raises(ReportError, match=r"run.json: field 'seeds': expected an integer, got 'zero'"):
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
    assert aggregate["mean"]["value"] == pytest.approx(sum(pooled) / 7)
    assert aggregate["median"]["value"] == pytest.approx(sorted(pooled)[3])  # the 4th of 7
    assert aggregate["optimality_gap"]["value"] == pytest.approx(sum(max(100 - x, 0) for x in pooled) / 7)
    for name in ("mean", "median", "optimality_gap"):
        low, high = aggregate[name]["ci"]
        assert low <= aggregate[name]["value"] <= high
    assert summary["groups"] == ["bc", "brac-v alpha=0.1", "brac-v alpha=1"]
    assert summary["families"] == {"bc": "bc", "brac-v alpha=0.1": "brac-v", "brac-v alpha=1": "brac-v"}


def test_summary_probability_of_improvement_and_profiles(study):
    summary = summarize(load_runs([study]), bootstrap_samples=300)
    pairs = {(p["x"], p["y"]): p for p in summary["probability_of_improvement"]}
    assert set(pairs) == {
        ("bc", "brac-v alpha=0.1"),
        ("bc", "brac-v alpha=1"),
        ("brac-v alpha=0.1", "brac-v alpha=1"),
    }
    bc_vs_brac = pairs[("bc", "brac-v alpha=0.1")]
    assert bc_vs_brac["datasets"] == ["hopper-eps1"]  # the only dataset both ran
    x, y = score("Hopper-v5", HOPPER_BC[2000]), score("Hopper-v5", HOPPER_BRAC[2000][:2])
    by_hand = np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(x, y)])
    assert by_hand == 2 / 8  # 900 beats 600 and 640; 150, 180 and 350 beat neither
    assert bc_vs_brac["value"] == pytest.approx(by_hand)
    low, high = bc_vs_brac["ci"]
    assert 0.0 <= low <= by_hand <= high <= 1.0
    profile = summary["profiles"]["score"]
    assert list(profile) == ["plot", "tau", "groups"] and profile["plot"] == "profile_score.png"
    pooled = np.concatenate([score("Hopper-v5", HOPPER_BC[2000]), score("Walker2d-v5", WALKER_BC[3000])])
    everything = np.concatenate([pooled, score("Hopper-v5", HOPPER_BRAC[2000])])
    assert profile["tau"][0] == pytest.approx(everything.min()) and profile["tau"][-1] == pytest.approx(
        everything.max()
    )
    bc = profile["groups"]["bc"]
    for i in (0, 37, 100):
        assert bc["fraction"][i] == pytest.approx(np.mean(pooled > profile["tau"][i]))
        assert bc["ci_low"][i] <= bc["fraction"][i] <= bc["ci_high"][i]
    assert "return" not in summary["profiles"]  # the pendulum run was never evaluated


def test_fewer_than_five_seeds_warns_in_the_report(study, tmp_path):
    summary = summarize(load_runs([study]), bootstrap_samples=50)
    pendulum, hopper, walker = summary["warnings"]  # one line per dataset, in dataset order
    assert hopper.startswith(
        f"hopper-eps1: fewer than {MIN_SEEDS} evaluated seeds for bc (4), brac-v alpha=0.1 (2)"
    )
    assert "Pendulum-v1" in pendulum and "walker2d-eps1: " in walker and "bc (3)" in walker
    assert f"> **Warning:** {hopper}." in markdown(summary)  # in report.md, as in report.json
    five = write_logdir(tmp_path / "five", {2000: [1.0, 2, 3, 4, 5]}, seeds=(0, 1, 2, 3, 4))
    assert summarize(load_runs([five]), bootstrap_samples=50)["warnings"] == []


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
        "profile_score.png",
        "report.json",
        "report.md",
    ]  # no temporary files left behind
    assert "![performance profile of the final score](profile_score.png)" in text
    assert "| 1. bc |  | " in text  # the probability of improvement, row by row


def test_report_re_renders_from_its_report_json(study, tmp_path):
    first = write_report(load_runs([study]), tmp_path / "first", bootstrap_samples=200)
    second = report([first.with_name("report.json")], tmp_path / "second")
    assert second.read_text() == first.read_text()
    assert (tmp_path / "second" / "report.json").read_text() == first.with_name("report.json").read_text()
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == sorted(
        p.name for p in (tmp_path / "first").iterdir()
    )
    curve = json.loads(first.with_name("report.json").read_text())["datasets"]["hopper-eps1"]["groups"]["bc"][
        "curve"
    ]
    assert curve["seeds"] == [0, 1, 2, 3] and curve["runs"][3] == list(score("Hopper-v5", [400.0, 900.0]))
    assert curve["ci_low"][1] <= curve["mean"][1] <= curve["ci_high"][1]


def test_report_json_of_the_earlier_layout_re_renders(study, tmp_path):
    """A report.json as the previous version wrote it (curves: mean and std; aggregates: IQM only)."""
    summary = json.loads(json.dumps(summarize(load_runs([study]), bootstrap_samples=200)))
    old = json.loads(
        json.dumps({k: summary[k] for k in ("statistics", "logdirs", "groups", "datasets", "aggregate")})
    )
    for dataset in old["datasets"].values():
        for entry in dataset["groups"].values():
            if "curve" in entry:
                entry["curve"] = {key: entry["curve"][key] for key in ("steps", "mean", "std")}
    for entry in old["aggregate"].values():
        for key in ("mean", "median", "optimality_gap"):
            del entry[key]
    (tmp_path / "old.json").write_text(json.dumps(old))
    again = read_report(tmp_path / "old.json")
    assert again["aggregate"] == summary["aggregate"]  # its statistics recomputed from the per-seed finals
    assert again["probability_of_improvement"] == summary["probability_of_improvement"]
    assert (
        again["datasets"]["hopper-eps1"]["groups"]["bc"]["curve"]
        == old["datasets"]["hopper-eps1"]["groups"]["bc"]["curve"]
    )
    path = report([tmp_path / "old.json"], tmp_path / "out")
    assert (tmp_path / "out" / "curves_hopper-eps1.png").read_bytes().startswith(b"\x89PNG")
    assert "| bc | 4 | 2000 |" in path.read_text()


def test_malformed_report_json_names_the_file_and_the_field(study, tmp_path):
    summary = json.loads(json.dumps(summarize(load_runs([study]), bootstrap_samples=20)))
    path = tmp_path / "report.json"
    bc = summary["datasets"]["hopper-eps1"]["groups"]["bc"]
    bc["final_score"]["values"] = [1.0, "x", 3.0, 4.0]
    path.write_text(json.dumps(summary))
    with pytest.raises(
        ReportError,
        match=r"report.json\['datasets'\]\['hopper-eps1'\]\['groups'\]\['bc'\]\['final_score'\]\['values'\]: expected a list of 4 numbers",
    ):
        read_report(path)
    del summary["groups"]
    path.write_text(json.dumps(summary))
    with pytest.raises(ReportError, match=r"report.json\['groups'\]: field is missing"):
        read_report(path)
    path.write_text("[")
    with pytest.raises(ReportError, match=r"report.json: not valid JSON"):
        read_report(path)
    with pytest.raises(ReportError, match=r"give one report.json alone"):
        report([path, study], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_logged_metrics_are_plotted_against_steps(study, tmp_path):
    records = load_runs([study], metrics=["critic/loss", "behavior/loss", "time/seconds"])
    summary = summarize(records, bootstrap_samples=100)
    critic = summary["metrics"]["critic/loss"]
    assert list(critic) == ["Pendulum-v1", "hopper-eps1", "walker2d-eps1"]  # evaluated or not
    bc = critic["hopper-eps1"]["groups"]["bc"]
    assert bc["phase"] == "train" and bc["steps"] == [500, 1000, 1500, 2000]
    assert bc["runs"][2] == [step / 1000 + 2 for step in (500, 1000, 1500, 2000)]  # seed 2 is run 2
    assert bc["mean"] == pytest.approx([step / 1000 + 1.5 for step in (500, 1000, 1500, 2000)])  # runs 0-3
    brac = critic["hopper-eps1"]["groups"]["brac-v alpha=1"]  # runs 2 and 3 of its logdir
    assert brac["mean"][0] == pytest.approx(0.5 + 2.5) and brac["ci_low"][0] <= 3.0 <= brac["ci_high"][0]
    behavior = summary["metrics"]["behavior/loss"]["hopper-eps1"]["groups"]["bc"]
    assert behavior["phase"] == "pretrain" and behavior["mean"] == [1.0]  # logged before training only
    assert (
        summary["metrics"]["time/seconds"]["walker2d-eps1"]["groups"]["bc"]["runs"][0] == [1.0] * 6
    )  # scalar
    assert critic["hopper-eps1"]["plot"] == "metric_critic_loss_hopper-eps1.png"


def test_cli_report_metric_and_re_render(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "report",
                str(study / "hopper-eps1"),
                "--out",
                str(out),
                "--metric",
                "critic/loss",
                "--metric",
                "behavior/loss",
                "--bootstrap-samples",
                "50",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "curves_hopper-eps1.png",
        "metric_behavior_loss_hopper-eps1.png",
        "metric_critic_loss_hopper-eps1.png",
        "profile_score.png",
        "report.json",
        "report.md",
    ]
    text = (out / "report.md").read_text()
    assert "![hopper-eps1 critic/loss](metric_critic_loss_hopper-eps1.png)" in text
    assert (out / "metric_behavior_loss_hopper-eps1.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    # Re-rendered from report.json, keeping one of its metrics.
    again = tmp_path / "again"
    assert main(["report", str(out / "report.json"), "--out", str(again), "--metric", "critic/loss"]) == 0
    assert list(json.loads((again / "report.json").read_text())["metrics"]) == ["critic/loss"]
    assert json.loads((again / "report.json").read_text())["statistics"]["bootstrap_samples"] == 50
    capsys.readouterr()
    # An unknown metric: one line naming the valid keys, status 2, nothing written.
    assert main(["report", str(study), "--out", str(tmp_path / "none"), "--metric", "critic/los"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown metric 'critic/los': the runs' metrics.jsonl files hold ")
    assert "critic/loss" in error and "eval/return_mean" in error and error.count("\n") == 1
    assert (
        main(["report", str(out / "report.json"), "--out", str(tmp_path / "none"), "--metric", "alpha/value"])
        == 2
    )
    error = capsys.readouterr().err
    assert "no curves of metric 'alpha/value' (it holds: critic/loss, behavior/loss)" in error
    assert error.count("\n") == 1 and not (tmp_path / "none").exists()


def test_plot_styles_never_repeat_a_colour_across_families():
    from brackit.report import _styles

    families = {f"algo{i} alpha={a}": f"algo{i}" for i in range(5) for a in (1, 2, 3)} | {
        "bc": "bc",
        "cql": "cql",
    }
    styles = _styles(list(families), families)
    assert len(styles) == 17
    looks = {(tuple(s["color"]), s["linestyle"], s["marker"]) for s in styles.values()}
    assert len(looks) == 17  # no two groups look alike
    colour_of = defaultdict(set)
    for group, style in styles.items():
        colour_of[families[group]].add(tuple(style["color"]))
    assert all(len(c) == 1 for c in colour_of.values())  # one colour per family
    assert len(set.union(*colour_of.values())) == 7  # and no colour shared by two families
    alone = _styles([f"g{i}" for i in range(17)], {})  # no families (an older report.json): 17 colours
    assert len({tuple(s["color"]) for s in alone.values()}) == 17


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


def test_dataset_labels_drop_the_task_mix_cache_suffix():
    from brackit.protocol.resolve import dataset_label

    assert dataset_label("/cache/hopper-eps1-100000-s0.npz") == "hopper-eps1"
    assert dataset_label("runs/halfcheetah-gaussian3-2000-s7.npz") == "halfcheetah-gaussian3"
    assert dataset_label("data/my-data.npz") == "my-data"
    assert dataset_label("hopper-medium-v2.hdf5") == "hopper-medium-v2"
