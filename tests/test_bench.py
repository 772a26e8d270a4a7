"""brackit.bench and ``brackit bench``: tiny presets (8-8 networks, 1,000 transitions, 2-step chunks)."""

import json
import math
import os
import subprocess
import sys

import pytest

from brackit import bench
from brackit.cli import main
from brackit.errors import ConfigError

TINY = {"hidden": (8, 8), "dataset_size": 1_000}


CEILINGS = iter([100.0, 90.0, 80.0, 120.0, 70.0, 75.0, 60.0, 50.0])  # (before, after) for each of 4 rows


@pytest.fixture(scope="module")
def rows():
    # td3bc: its delayed actor is a lax.cond on the unbatched step, the case brackit.train cares about.
    return bench.run_bench(
        ["BC", "td3bc"], seed_counts=(1, 2), steps=2, repeats=1, ceiling=lambda: next(CEILINGS), **TINY
    )


def test_one_row_per_preset_and_seed_count(rows):
    assert [(row["name"], row["seeds"]) for row in rows] == [("BC", 1), ("BC", 2), ("td3bc", 1), ("td3bc", 2)]
    for row in rows:
        for key in ("compile_s", "updates_per_s", "median_updates_per_s", "gflop_per_update", "gflops"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["name"], key, row[key])
        assert row["steps"] == 2
        assert row["median_updates_per_s"] == row["updates_per_s"]  # one timed chunk
    assert [row["d3rlpy_updates_per_s"] for row in rows] == [None, None, 100.0, 100.0]
    # the ceiling is measured just before and just after each row; the row keeps the larger
    assert [row["ceiling_gflops"] for row in rows] == [100.0, 120.0, 75.0, 60.0]


def test_flops_per_update_are_per_seed(rows):
    by_name = {}
    for row in rows:
        by_name.setdefault(row["name"], set()).add(row["gflop_per_update"])
    assert all(len(values) == 1 for values in by_name.values())
    assert by_name["td3bc"] != by_name["BC"]


def test_hidden_shrinks_every_hidden_field():
    config = bench.bench_config("bear", bench.PRESETS["bear"].overrides, hidden=(8, 8))
    assert (config.critic_hidden, config.actor_hidden, config.vae_hidden) == ((8, 8),) * 3
    assert config.num_target_samples == 10  # the preset's other overrides stay


def test_markdown_table_arithmetic():
    row = {
        "name": "bcq",
        "seeds": 8,
        "steps": 25,
        "compile_s": 3.0,
        "updates_per_s": 60.0,
        "median_updates_per_s": 50.0,
        "gflop_per_update": 0.5,
        "gflops": 30.0,
        "d3rlpy_updates_per_s": 30.0,
    }
    table = bench.markdown_table([row, {**row, "name": "rebrac", "d3rlpy_updates_per_s": None}], 40.0, 120.0)
    lines = table.splitlines()
    assert len(lines) == 4
    # 30 GFLOP/s of the larger ceiling 120 is 25%; 60 updates/s against d3rlpy's 30 is 2x.
    assert lines[2] == "| bcq | 8 | 1 | 25 | 3.0 | 60.0 (50.0) | 0.500 | 30.0 | 25% | 2.00x |"
    assert lines[3].endswith("| 25% | - |")
    # d3rlpy measured on this machine: 24 updates/s for bcq gives 2.5x; rebrac has no peer number.
    peered = bench.markdown_table(
        [row, {**row, "name": "rebrac"}], 40.0, 120.0, peer={"bcq": 24.0}
    ).splitlines()
    assert peered[0].endswith("| d3rlpy here (updates/s) | vs d3rlpy here |")
    assert peered[2].endswith("| 2.00x | 24.0 | 2.50x |")
    assert peered[3].endswith("| - | - |")
    # several seeds against d3rlpy's runs side by side (peer_runs) where given; 1 seed against one run
    runs = bench.markdown_table(
        [row, {**row, "seeds": 1, "devices": 1}, {**row, "devices": 2}],
        40.0,
        120.0,
        peer={"bcq": 24.0},
        peer_runs={"bcq": 40.0},
    ).splitlines()
    assert runs[2].endswith("| 40.0 | 1.50x |") and runs[3].endswith("| 24.0 | 2.50x |")
    assert runs[4].startswith("| bcq | 8 | 2 | 25 |")
    # rows with their own ceiling: a "ceiling GFLOP/s" column, and "% of ceiling" against it
    own = bench.markdown_table([{**row, "ceiling_gflops": 60.0}], 40.0, 120.0).splitlines()
    assert own[0].endswith("| GFLOP/s | ceiling GFLOP/s | % of ceiling | vs d3rlpy |")
    assert own[2] == "| bcq | 8 | 1 | 25 | 3.0 | 60.0 (50.0) | 0.500 | 30.0 | 60.0 | 50% | 2.00x |"
    mixed = bench.markdown_table([{**row, "ceiling_gflops": 60.0}, row], 40.0, 120.0).splitlines()
    assert mixed[3].endswith("| 30.0 | 120.0 | 25% | 2.00x |")  # a row without one: the run's ceiling


def test_every_preset_builds_a_valid_config():
    for preset in bench.PRESETS.values():
        bench.bench_config(preset.algorithm, preset.overrides)
    assert {"BC", "BRAC-p W dual", "bear", "bcq", "td3bc", "rebrac"} <= set(bench.PRESETS)


def test_chunk_steps_for():
    assert bench.chunk_steps_for(500, 1) == 500
    assert bench.chunk_steps_for(500, 8) == 125
    assert bench.chunk_steps_for(20, 8) == 10
    assert bench.chunk_steps_for(2, 8) == 2


def test_unknown_preset_is_a_config_error_listing_the_valid_ones():
    with pytest.raises(ConfigError, match="'BRAC-v KL primal'"):
        bench.run_bench(["nope"])


def test_cli_bench_tiny(tmp_path, capsys):
    out = tmp_path / "bench.md"
    argv = [
        "bench",
        "--only",
        "BC",
        "--seeds",
        "1",
        "--steps",
        "2",
        "--repeats",
        "1",
        "--tiny",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    report = out.read_text()
    assert report == capsys.readouterr().out
    assert "- command: `brackit bench --only BC --seeds 1 --devices 1 --steps 2 --repeats 1 --tiny`" in report
    assert "| BC | 1 | 1 | 2 |" in report


def test_cli_bench_unknown_name_exits_2(capsys):
    assert main(["bench", "--only", "nope", "--tiny"]) == 2
    assert "unknown benchmark preset 'nope'" in capsys.readouterr().err


SHARDED = """
import json
from brackit import bench
rows = bench.run_bench(["BC"], seed_counts=(1, 2), steps=2, repeats=1, hidden=(8, 8), dataset_size=1_000,
                       devices=(1, 2))
print(json.dumps([[row["seeds"], row["devices"], row["updates_per_s"] > 0] for row in rows]))
"""


def test_seeds_sharded_across_host_devices_get_their_own_rows():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # 1 seed runs on one device only; 2 seeds on one device and split across two
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[1, 1, True], [2, 1, True], [2, 2, True]]
