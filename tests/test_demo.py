"""``make demo`` end to end at a toy size: dataset, the four algorithms as run directories, the report with
the comparison against the dataset's segments."""

from __future__ import annotations

import json

import numpy as np

from brackit.demo import DEMO_STEPS, comparison_table, main

LABELS = ("BC", "TD3+BC", "BRAC-v (KL primal)", "BCQ")


def test_demo_writes_runs_and_a_report(tmp_path):
    args = ["--out", str(tmp_path), "--steps", "2", "--transitions", "400", "--seeds", "2"]
    report = main([*args, "--eval-episodes", "1", "--eval-every", "0"])
    text = report.read_text()
    assert sorted(DEMO_STEPS) == sorted(LABELS)
    comparison, _, rest = text.partition("## Against the dataset's segments")[2].partition("## Comparison")
    assert "| algorithm | updates | final return | beats random (" in comparison
    assert "| beats policy (" in comparison
    for label in LABELS:
        assert f"| {label} | 2 | " in comparison  # one row per algorithm, its steps
        assert f"| {label} |" in rest  # and brackit report's tables after it
    assert (tmp_path / "curves_halfcheetah-eps1.png").read_bytes().startswith(b"\x89PNG")
    for algorithm in ("bc", "td3bc", "brac", "bcq"):
        spec = json.loads((tmp_path / "runs" / algorithm / "run.json").read_text())
        assert spec["seeds"] == [0, 1] and spec["steps"] == 2 and spec["env_id"] == "HalfCheetah-v5"
        assert algorithm != "bcq" or spec["config"]["net_init"] == "flax"  # the demo's documented choice
    groups = json.loads((tmp_path / "report.json").read_text())["datasets"]["halfcheetah-eps1"]["groups"]
    assert sorted(groups) == sorted(LABELS)
    assert all(group["final_step"] == [2, 2] for group in groups.values())


def test_comparison_table_says_which_segments_each_algorithm_beats():
    finals = {"A": np.array([100.0, 300.0]), "B": np.array([-500.0, -300.0])}
    table = comparison_table(finals, {"A": 10, "B": 20}, {"random": -281.2, "policy": 150.0, "eps0.1": 99.0})
    assert "| A | 10 | 200.0 ± 100.0 | yes (+481.2) | yes (+50.0) | 133% |" in table
    assert "| B | 20 | -400.0 ± 100.0 | no (-118.8) | no (-550.0) | -267% |" in table
    assert "eps0.1" not in table.split("\n| algorithm")[1]  # only the random and policy segments


def test_comparison_table_with_a_segment_without_complete_episodes():
    table = comparison_table({"A": np.array([1.0, 3.0])}, {"A": 5}, {"random": None, "policy": 4.0})
    assert "| algorithm | updates | final return | beats random (n/a) | beats policy (4.0) |" in table
    assert "| A | 5 | 2.0 ± 1.0 | n/a | no (-2.0) | 50% |" in table
