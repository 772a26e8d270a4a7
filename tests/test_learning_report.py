"""Tests of benchmarks/learning_report.py's README table: its cells, its rows and the block it rewrites."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import load_benchmark_script


@pytest.fixture(scope="module")
def report():
    return load_benchmark_script("learning_report")


def test_the_table_has_a_row_per_algorithm_and_a_column_per_task(report):
    segments = {
        "hopper-eps1": {
            "env_id": "Hopper-v5",
            "segments": [
                {"name": "random", "mean_episode_return": 17.6},
                {"name": "policy", "mean_episode_return": 1502.3},
            ],
        }
    }
    cells = {"td3bc": {"hopper-eps1": "2,964 (91.7), 3 seeds"}}
    table = report.readme_table(cells, segments, "- machine: test")
    lines = table.splitlines()
    assert lines[0] == "- machine: test"
    header = next(line for line in lines if line.startswith("| |"))
    assert header == "| | ant-eps1 | halfcheetah-eps1 | hopper-eps1 | walker2d-eps1 |"
    # Hopper's D4RL reference returns: random -20.272305, expert 3234.3 -> (1502.3 + 20.27) / 3254.57 = 46.8%
    assert "| the data's policy segment | - | - | 1,502 (46.8) | - |" in lines
    assert "| TD3+BC | - | - | 2,964 (91.7), 3 seeds | - |" in lines
    assert "| d3rlpy BEAR | - | - | - | - |" in lines
    assert sum(line.startswith("| ") for line in lines) == 1 + 1 + len(
        report.TABLE_ROWS
    )  # header, data, rows


def test_the_readme_block_is_rewritten_and_the_rest_kept(report, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.TABLE_START}\nold table\n{report.TABLE_END}\nrest\n")
    report.write_readme_table(readme, "new table")
    assert readme.read_text() == f"intro\n{report.TABLE_START}\nnew table\n{report.TABLE_END}\nrest\n"
    report.write_readme_table(readme, "newer")  # again: the block's content only
    assert readme.read_text() == f"intro\n{report.TABLE_START}\nnewer\n{report.TABLE_END}\nrest\n"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match=r"no .* block"):
        report.write_readme_table(readme, "x")
    assert readme.read_text() == "no markers\n"


def test_episode_ends_are_counted_from_each_episodes_last_row(report, tmp_path):
    # episodes 0..3: a termination, a time-limit truncation, a cut, a termination (last row of the file)
    episode = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    discount = np.array([1, 1, 0, 1, 1, 1, 1, 0], np.float32)
    timeout = np.array([0, 0, 0, 0, 1, 0, 0, 0], bool)
    np.savez(tmp_path / "d.npz", episode_id=episode, discount=discount, timeout=timeout)
    ends = report.episode_ends(tmp_path / "d.npz")
    assert ends == {"episodes": 4, "termination": 2, "time_limit": 1, "cut": 1}
    assert report.episode_ends(tmp_path / "missing.npz") is None
