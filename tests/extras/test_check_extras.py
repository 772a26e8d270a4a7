"""Tests of benchmarks/check_extras.py: argument rewriting, comparison, pairing and the record/check flow
(reruns replaced by a stub: the real ones train networks)."""

from __future__ import annotations

import json
import math
import pathlib

import pytest
from helpers import load_benchmark_script


@pytest.fixture(scope="module")
def ce():
    return load_benchmark_script("check_extras")


OUT = pathlib.Path("/tmp/x")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # separate values, in the middle and at the end
        (
            ["extras", "iht", "recovery", "--budget", "full", "--seeds", "0,1,2", "--out", "res"],
            ["extras", "iht", "recovery"],
        ),
        # --opt=value forms, mixed with other options kept in their order
        (
            [
                "extras",
                "fedavg",
                "table",
                "--budget=full",
                "--model",
                "cnn",
                "--seeds=3,4",
                "--target",
                "0.9",
            ],
            ["extras", "fedavg", "table", "--model", "cnn", "--target", "0.9"],
        ),
        # options absent: added; an --out=value removed
        (["extras", "randomization", "run", "--out=benchmarks/results"], ["extras", "randomization", "run"]),
        # an option whose name only starts like a replaced one is kept
        (["x", "--budgets", "a", "--output", "b"], ["x", "--budgets", "a", "--output", "b"]),
    ],
)
def test_with_small_budget_replaces_budget_seeds_and_out(ce, argv, expected):
    assert ce.with_small_budget(argv, OUT) == [
        *expected,
        "--budget",
        "small",
        "--seeds",
        "0",
        "--out",
        "/tmp/x",
    ]


def test_with_small_budget_does_not_change_its_argument(ce):
    argv = ["run", "--budget", "full"]
    ce.with_small_budget(argv, OUT)
    assert argv == ["run", "--budget", "full"]


def test_differences_nan_missing_new_and_tolerance(ce):
    nan = math.nan
    expected = {"a": 0.5, "b": nan, "c": 1.0, "gone": 2.0, "d": nan, "e": 0.25}
    got = {"a": 0.5 + 5e-7, "b": nan, "c": nan, "new": 3.0, "d": 0.0, "e": 0.2500011}
    assert ce.differences(expected, got, atol=1e-6) == [
        "c: recorded 1.0, now nan",  # a number became NaN
        "d: recorded nan, now 0.0",  # NaN became a number
        "e: recorded 0.25, now 0.2500011",  # 1.1e-6 > atol
        "gone: missing now (recorded 2.0)",
        "new: new (3.0)",
    ]  # a: 5e-7 <= atol; b: NaN == NaN
    assert ce.differences(expected, expected, atol=0.0) == []
    assert ce.differences({"x": 1.0}, {"x": 1.5}, atol=0.5) == []  # |difference| == atol passes


def _results(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def _sidecar(commit: str = "abc1234def", budget: str = "full", **metrics: float) -> str:
    argv = ["extras", "x", "run", "--budget", budget, "--seeds", "0,1,2", "--out", "benchmarks/results"]
    per_seed = {"0": metrics or {"m": 1.0}}
    return json.dumps(
        {"argv": argv, "commit": commit, "dirty": False, "budget": budget, "per_seed": per_seed}
    )


HEADER = "# title\n\n- machine: cpu\n- git commit: abc1234\n- date: now\n"


def test_pairing_problems_name_missing_and_stale_sidecars(ce, tmp_path):
    results = _results(
        tmp_path,
        {
            "extras_good.md": HEADER,
            "extras_good.json": _sidecar(),
            "extras_alone.md": HEADER,  # no sidecar
            "extras_orphan.json": _sidecar(),  # no results file
            "extras_stale.md": HEADER.replace("abc1234", "9999999"),
            "extras_stale.json": _sidecar(),
            "extras_headless.md": "# no provenance\n",
            "extras_headless.json": _sidecar(),
            "extras_fedavg_bench.md": HEADER,  # exempt
            "extras_iht.md": "# overview\n",  # exempt
            "extras_check.json": "{}",  # the record is no sidecar
            "other.md": "",  # not an extras file
        },
    )
    problems = ce.pairing_problems(results)
    assert len(problems) == 4
    assert problems[0].startswith("extras_alone.md: no sidecar extras_alone.json")
    assert problems[1] == "extras_headless.md: no commit in its header (a '- git commit: HASH' line)"
    assert problems[2] == "extras_orphan.json: no results file extras_orphan.md beside it"
    assert problems[3].startswith("extras_stale.md: written at 9999999, its sidecar at abc1234def")
    assert ce.pairing_problems(results, ["extras_good.json", "extras_alone.json"]) == [problems[0]]
    assert set(ce.EXEMPT) == {"extras_fedavg.md", "extras_iht.md", "extras_fedavg_bench.md"}


def test_record_then_check_flow(ce, tmp_path, monkeypatch, capsys):
    results = _results(tmp_path, {"extras_a.md": HEADER, "extras_a.json": _sidecar(m=0.5, n=math.nan)})
    calls = []

    def rerun(name, argv):
        calls.append((name, list(argv)))
        return {"m": numbers["m"], "n": math.nan}

    monkeypatch.setattr(ce, "rerun", rerun)
    numbers = {"m": 0.125}
    assert ce.main(["--record"], results=results) == 0
    recorded = json.loads((results / "extras_check.json").read_text())
    entry = recorded["entries"]["extras_a.json"]
    assert entry["small"]["m"] == 0.125 and math.isnan(entry["small"]["n"])
    assert entry["commit"] == "abc1234def" and len(entry["sidecar_sha256"]) == 64
    assert calls[0] == ("extras_a.json", json.loads((results / "extras_a.json").read_text())["argv"])
    # Same numbers: no problem.
    assert ce.main([], results=results) == 0
    # A number moved: exit 1, the line names the file and the metric.
    numbers["m"] = 0.25
    capsys.readouterr()
    assert ce.main([], results=results) == 1
    assert "FAIL extras_a.json: m: recorded 0.125, now 0.25" in capsys.readouterr().out
    # The results were regenerated after the record: refused until recorded again, without a rerun.
    (results / "extras_a.json").write_text(_sidecar(m=0.75))
    calls.clear()
    assert ce.main([], results=results) == 1
    assert "changed since the record" in capsys.readouterr().out and calls == []
    # A failing rerun is a problem of its own, not a traceback.
    assert ce.main(["--record"], results=results) == 0

    def broken(name, argv):
        raise ce.RerunError("the command exited with status 2")

    monkeypatch.setattr(ce, "rerun", broken)
    assert ce.main([], results=results) == 1
    assert "FAIL extras_a.json: the command exited with status 2" in capsys.readouterr().out


def test_check_fails_without_record_or_sidecar(ce, tmp_path, monkeypatch, capsys):
    results = _results(tmp_path, {"extras_a.md": HEADER, "extras_a.json": _sidecar(), "extras_b.md": HEADER})
    monkeypatch.setattr(ce, "rerun", lambda name, argv: {"m": 1.0})
    assert ce.main([], results=results) == 1
    out = capsys.readouterr().out
    assert "FAIL extras_b.md: no sidecar extras_b.json" in out
    assert (
        "FAIL extras_a.json: no record (run benchmarks/check_extras.py --record --only extras_a.json)" in out
    )
    # --only records and checks one file; the missing sidecar of another is not its problem.
    assert ce.main(["--record", "--only", "extras_a.json"], results=results) == 0
    assert ce.main(["--only", "extras_a.json"], results=results) == 0


def test_only_rejects_unknown_names(ce, tmp_path, capsys):
    results = _results(tmp_path, {"extras_a.md": HEADER, "extras_a.json": _sidecar()})
    with pytest.raises(SystemExit) as exit_:
        ce.main(["--only", "extras_typo.json"], results=results)
    assert exit_.value.code == 2
    assert "--only: no sidecar extras_typo.json" in capsys.readouterr().err
    assert not (results / "extras_check.json").exists()


def test_exempt_results_files_exist(ce):
    # An exemption names a committed results file (the check of all of them, which reruns their commands,
    # is `make check-extras`).
    for name in ce.EXEMPT:
        assert (ce.RESULTS / name).is_file(), name


def test_record_refuses_a_small_budget_file_its_command_no_longer_gives(ce, tmp_path, monkeypatch, capsys):
    # Results written at the small budget already hold seed 0's numbers: recording them checks the rerun
    # against them first (the regression the record exists to catch, caught when the record is made).
    results = _results(tmp_path, {"extras_a.md": HEADER, "extras_a.json": _sidecar(budget="small", m=0.5)})
    numbers = {"m": 0.5}
    monkeypatch.setattr(ce, "rerun", lambda name, argv: dict(numbers))
    assert ce.main(["--record"], results=results) == 0
    assert (
        json.loads((results / "extras_check.json").read_text())["entries"]["extras_a.json"]["small"]
        == numbers
    )
    (results / "extras_check.json").unlink()
    numbers["m"] = 0.5 + 1e-3
    capsys.readouterr()
    assert ce.main(["--record"], results=results) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL extras_a.json: seed 0 of the results file is not what its command gives now: m: recorded 0.5"
        in out
    )
    assert not (results / "extras_check.json").exists()
    # Within --atol it records.
    assert ce.main(["--record", "--atol", "0.01"], results=results) == 0
