"""What the extras commands share: seeds, spreads over seeds, verdicts, tables and the results sidecar."""

from __future__ import annotations

import json

import pytest

from brackit.errors import ConfigError
from brackit.extras import cli_common


def test_parse_seeds_accepts_distinct_seeds_and_refuses_the_rest():
    assert cli_common.parse_seeds("0,1,2") == (0, 1, 2)
    assert cli_common.parse_seeds("7") == (7,)
    for text, message in (("0,x", "comma-separated integers"), ("1,1", "distinct"), ("-1", "--seeds")):
        with pytest.raises(ConfigError, match=message):
            cli_common.parse_seeds(text)


def test_spread_is_the_mean_and_range_over_seeds():
    s = cli_common.spread([0.9, 0.93, 0.87])
    assert (s.low, s.high, s.n) == (0.87, 0.93, 3)
    assert s.mean == pytest.approx((0.9 + 0.93 + 0.87) / 3)
    assert s.format() == "0.900 (0.870-0.930)" and s.format(1) == "0.9 (0.9-0.9)"
    assert cli_common.spread([5.0]).format(1) == "5.0"
    with pytest.raises(ValueError):
        cli_common.spread([])


def test_a_claim_is_reproduced_only_if_it_held_in_every_seed():
    assert cli_common.verdict([True, True, True]) == "reproduced (3/3 seeds)"
    assert cli_common.verdict([True, False, True]) == "held in 2/3 seeds"
    assert cli_common.verdict([False, False]) == "not reproduced (0/2 seeds)"


def test_markdown_table_escapes_pipes_inside_cells():
    lines = cli_common.markdown_table(["claim", "value"], [["max |c(x) - y|", "1e-6"]])
    assert lines == ["| claim | value |", "|---|---|", "| max \\|c(x) - y\\| | 1e-6 |"]


def test_results_sidecar_holds_every_seed(tmp_path):
    path = cli_common.write_results_json(
        tmp_path / "out",
        "extras_x.json",
        budget="small",
        seeds=[0, 2],
        per_seed={0: {"acc": 0.5}, 2: {"acc": 0.75}},
        argv=["extras", "x", "--seeds", "0,2"],
    )
    data = json.loads(path.read_text())
    assert data["argv"] == ["extras", "x", "--seeds", "0,2"] and data["budget"] == "small"
    assert data["seeds"] == [0, 2] and data["per_seed"] == {"0": {"acc": 0.5}, "2": {"acc": 0.75}}


def test_results_files_write_the_report_and_its_sidecar(tmp_path):
    path = cli_common.write_results_files(
        tmp_path, "extras_x", ["# x", "- a line"], budget="tiny", seeds=[1], per_seed={1: {"acc": 1.0}}
    )
    assert path == tmp_path / "extras_x.md" and path.read_text() == "# x\n- a line\n"
    data = json.loads((tmp_path / "extras_x.json").read_text())
    assert data["budget"] == "tiny" and data["per_seed"] == {"1": {"acc": 1.0}} and "extra" not in data


def test_budget_table_reads_one_column_per_budget():
    sizes = cli_common.budget_table(dict, steps=(1, 10, 100), batch=(8, None, None))
    assert sizes == {
        "tiny": {"steps": 1, "batch": 8},
        "small": {"steps": 10, "batch": None},
        "full": {"steps": 100, "batch": None},
    }
    with pytest.raises(ValueError, match="steps: expected one value per budget"):
        cli_common.budget_table(dict, steps=(1, 10))
