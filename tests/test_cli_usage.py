"""A new user's first commands: usage errors end in one line and exit status 2 (never a traceback), a
refused run writes nothing, default chunk length and logdir, ``brackit algos``, provenance in run.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import random_episode_arrays

from brackit import cli
from brackit.cli import main
from brackit.data import make_dataset, save_dataset
from brackit.errors import ConfigError
from brackit.run import check_run_arguments, default_chunk_steps
from brackit.rundir import RunSpec

TINY_BC = ["--set", "hidden=8,8", "--set", "batch_size=8"]


def brackit_command() -> list[str]:
    """The installed entry point, else the module (``python -m brackit.cli``)."""
    found = shutil.which("brackit") or shutil.which("brackit", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "brackit.cli"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*brackit_command(), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def tiny_dataset(path: Path) -> Path:
    """Three random 20-step episodes with Pendulum's dims (obs 3, action 1 in [-2, 2])."""
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0)
    save_dataset(make_dataset(arrays, path=path, source_format="test", env_id="Pendulum-v1"), path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trian"], "No such command 'trian'"),
        (["train", "bc"], "Missing option '--data'"),
        (["algos", "nope"], "unknown algorithm 'nope'"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"brackit {version('brackit')}"


def test_corrupted_run_json_under_resume_is_one_line(tmp_path):
    data = tiny_dataset(tmp_path / "p.npz")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"algorithm": "bc", "config": {')
    result = run_cli("train", "bc", "--data", str(data), "--logdir", str(tmp_path / "run"), "--resume")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "run" / "run.json") in lines[0], result.stderr


def test_a_real_bug_still_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "config_field_docs", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["algos", "bc"])


def test_algos_lists_and_documents(capsys):
    assert main(["algos"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^bc +behavior cloning", listing, re.M) and "brac " in listing
    assert main(["algos", "brac"]) == 0
    fields = capsys.readouterr().out
    assert re.search(r"^  num_critics: int = 2 +>= 1 +Size of the critic ensemble\.$", fields, re.M)
    assert re.search(
        r"^  behavior\.hidden: tuple\[int, \.\.\.\] = 200,200 +each >= 1 +Hidden widths", fields, re.M
    )
    assert main(["algos", "nope"]) == 2


def test_default_chunk_steps_and_explicit_mismatch():
    assert default_chunk_steps(100_000) == 1000
    assert default_chunk_steps(100_000, 5000, 0) == 1000
    assert default_chunk_steps(3000, 1500, 0) == 750
    assert default_chunk_steps(20) == 20
    assert default_chunk_steps(1001) == 143  # 7 * 11 * 13
    common = {"steps": 1000, "seeds": (0,), "eval_episodes": 1, "checkpoint_every": 0}
    assert check_run_arguments(chunk_steps=None, eval_every=300, **common) == 100
    assert check_run_arguments(chunk_steps=5000, eval_every=0, **common) == 1000
    with pytest.raises(
        ConfigError, match=r"--chunk-steps 400 must divide --steps 1000 and --eval-every 300; "
    ):
        check_run_arguments(chunk_steps=400, eval_every=300, **common)
    with pytest.raises(ConfigError, match=r"--chunk-steps 100 would work"):
        check_run_arguments(chunk_steps=400, eval_every=300, **common)
    with pytest.raises(ConfigError, match="--eval-episodes must be >= 0"):
        check_run_arguments(chunk_steps=None, eval_every=0, **{**common, "eval_episodes": -1})
    with pytest.raises(ConfigError, match="--seeds"):
        check_run_arguments(chunk_steps=None, eval_every=0, **{**common, "seeds": ()})


def test_failed_checks_write_nothing_then_default_logdir_and_overwrite(tmp_path, monkeypatch, capsys):
    data = tiny_dataset(tmp_path / "p.npz")
    monkeypatch.chdir(tmp_path)
    base = ["train", "bc", "--data", str(data), *TINY_BC, "--steps", "4", "--eval-episodes", "1"]
    # 1. an inconsistent --chunk-steps, zero seeds, negative episodes: refused before anything is written
    assert main([*base, "--chunk-steps", "2", "--eval-every", "3"]) == 2
    assert "--chunk-steps 2 must divide --eval-every 3; --chunk-steps 1 would work" in capsys.readouterr().err
    assert main([*base, "--seeds", "0"]) == 2
    assert main([*base, "--eval-episodes", "-1"]) == 2
    assert main([*base, "--devices", "3"]) == 2
    assert main([*base, "--set", "learning_rate=-1"]) == 2
    assert not (tmp_path / "runs").exists()
    # 2. the corrected command runs in runs/<algorithm>-<dataset>-<UTC time>
    assert main([*base, "--eval-every", "2"]) == 0
    (logdir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"bc-p-\d{8}-\d{6}", logdir.name)
    spec = json.loads((logdir / "run.json").read_text())
    assert spec["chunk_steps"] == 2 and spec["eval_every"] == 2
    assert {"brackit", "jax", "jaxlib", "flax", "optax"} <= set(spec["provenance"])
    assert spec["provenance"]["jax"] == version("jax")
    # 3. another run in that logdir is refused (naming --overwrite), and replaces it with --overwrite
    other = [*base, "--steps", "2", "--logdir", str(logdir)]
    capsys.readouterr()
    assert main(other) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((logdir / "run.json").read_text())["steps"] == 4
    assert main([*other, "--overwrite"]) == 0
    assert json.loads((logdir / "run.json").read_text())["steps"] == 2


def test_provenance_is_not_part_of_the_run():
    fields = {
        "algorithm": "bc",
        "config": {"hidden": [8, 8]},
        "data": "p.npz",
        "dataset_sha256": "0" * 64,
        "env_id": None,
        "seeds": [0],
        "sweep": {},
        "steps": 4,
        "chunk_steps": 2,
        "eval_every": 4,
        "eval_episodes": 1,
        "eval_mode": "mode",
        "label": "",
    }
    old = RunSpec.from_json(json.dumps(fields))  # a run.json written before provenance existed
    assert old.provenance is None
    new = RunSpec.from_json(json.dumps({**fields, "provenance": {"jax": "9.9", "git_commit": "abc"}}))
    assert old.differences(new) == [] and old == new


def test_git_state_is_taken_once_per_process(monkeypatch):
    # A command that writes a tracked results file and then its sidecar must name one state in both: the
    # second call may not see the first file as an uncommitted change (the extras sidecars said "dirty"
    # beside a clean header).
    from brackit import provenance

    answers = {"rev-parse HEAD": "0123456789abcdef\n", "rev-parse --short HEAD": "0123456\n", "status": ""}
    calls = []

    def fake_run(args, **kwargs):
        key = "status" if args[3] == "status" else " ".join(args[3:])
        calls.append(key)
        return subprocess.CompletedProcess(args, 0, stdout=answers[key], stderr="")

    monkeypatch.setattr(provenance.subprocess, "run", fake_run)
    provenance._checkout_state.cache_clear()
    try:
        first = provenance.git_state(short=True)
        answers["status"] = " M benchmarks/results/extras_x.md\n"  # the process wrote a tracked file
        later = provenance.git_state()
        assert first == provenance.GitState("0123456", False)
        assert later == provenance.GitState("0123456789abcdef", False)
        assert sorted(calls) == ["rev-parse --short HEAD", "rev-parse HEAD", "status"]
    finally:
        provenance._checkout_state.cache_clear()
