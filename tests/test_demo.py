"""``make demo`` end to end at a toy size: dataset, the four algorithms as run directories, the report."""

from __future__ import annotations

import json

from brackit.demo import main


def test_demo_writes_runs_and_a_report(tmp_path):
    args = ["--out", str(tmp_path), "--steps", "2", "--transitions", "400", "--seeds", "2"]
    report = main([*args, "--eval-episodes", "1", "--eval-every", "0"])
    text = report.read_text()
    for label in ("BRAC-v (KL primal)", "BEAR", "BCQ", "BC"):
        assert f"| {label} |" in text
    assert (tmp_path / "curves_hopper-eps1.png").read_bytes().startswith(b"\x89PNG")
    for algorithm in ("brac", "bear", "bcq", "bc"):
        spec = json.loads((tmp_path / "runs" / algorithm / "run.json").read_text())
        assert spec["seeds"] == [0, 1] and spec["steps"] == 2
    groups = json.loads((tmp_path / "report.json").read_text())["datasets"]["hopper-eps1"]["groups"]
    assert sorted(groups) == ["BC", "BCQ", "BEAR", "BRAC-v (KL primal)"]
    assert all(group["final_step"] == [2, 2] for group in groups.values())
