"""Run directories written by an older brackit still resume and report: ``tests/data/rundirs_4e34616`` holds a
BRAC and a TD3+BC run (tiny networks, 2 seeds) killed midway by the code of commit 4e34616, before the run
directory, config overrides and dataset protocol were consolidated (its ``make.py`` wrote them). Today's code
resumes each to the end, where it matches the run it trains from scratch, and reports both.

Not bit for bit here: the suite compiles with other XLA flags than the command line that wrote the first half
(``conftest.py``), so the two halves round differently; a field of the old checkpoint read into the wrong
place would differ by far more than rounding (``test_run.py`` checks bit-identical resumption itself)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from brackit.checkpoint import read_record
from brackit.cli import main
from brackit.run import load_run

OLD = Path(__file__).parent / "data" / "rundirs_4e34616"
_spec = importlib.util.spec_from_file_location("make_old_rundirs", OLD / "make.py")
MAKE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(MAKE)  # the runs as make.py trained them: RUNS, STEPS, EVAL


def train_args(name: str, data: Path, logdir: Path) -> list[str]:
    algorithm, *overrides = MAKE.RUNS[name]
    sets = [f"--set={s}" for s in overrides]
    return ["train", algorithm, *sets, "--data", str(data), "--logdir", str(logdir), *MAKE.STEPS, *MAKE.EVAL]


def leaves(checkpoint: Path) -> list[np.ndarray]:
    _, _, state = load_run(checkpoint)
    return [
        np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
        for x in jax.tree.leaves(state)
    ]


@pytest.mark.library_precision  # the matmul precision the command line used when it wrote them
@pytest.mark.parametrize("name", sorted(MAKE.RUNS))
def test_an_old_killed_run_resumes_to_the_fresh_run(tmp_path, name):
    shutil.copytree(OLD, tmp_path / "old")
    old, data = tmp_path / "old" / name, tmp_path / "old" / "pendulum.npz"
    assert json.loads((old / "run.json").read_text())["provenance"]["git_commit"].startswith("4e34616")
    killed_at = read_record(old / "checkpoint.npz")["step"]
    assert 50 <= killed_at < 100
    assert main(train_args(name, data, old)) == 2  # without --resume, a run directory in use is refused
    assert main([*train_args(name, data, old), "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (old / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 100
    assert main(train_args(name, data, tmp_path / "fresh")) == 0
    for resumed, fresh in zip(
        leaves(old / "checkpoint.npz"), leaves(tmp_path / "fresh" / "checkpoint.npz"), strict=True
    ):
        np.testing.assert_allclose(resumed, fresh, rtol=1e-4, atol=1e-6)


def test_old_run_directories_report(tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(OLD / "brac"), str(OLD / "td3bc"), "--out", str(out)]) == 0
    groups = json.loads((out / "report.json").read_text())["datasets"]["pendulum"]["groups"]
    assert sorted(groups) == ["brac", "td3bc"]
    for name, group in groups.items():  # each seed's last evaluation, at step 50 (killed before 100)
        records = [json.loads(line) for line in (OLD / name / "metrics.jsonl").read_text().splitlines()]
        last = [r for r in records if "eval/return_mean" in r][-1]
        assert last["step"] == 50 and group["final_step"] == [50, 50]
        np.testing.assert_allclose(group["final_return"]["values"], last["eval/return_mean"])
    assert "brac" in (out / "report.md").read_text()
