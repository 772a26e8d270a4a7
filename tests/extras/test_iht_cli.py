"""Tests of ``brackit extras iht``: the claims and their verdicts, the reports and their JSON sidecars."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from brackit.extras import iht_cli


def test_recovery_claim_and_boundary_on_a_hand_made_grid() -> None:
    ks, ts = (2, 8, 32), (4, 16)
    # k*t:  8  32 / 32 128 / 128 512; n = 100 pixels: the claim reads the cells with k*t <= 100.
    rates = np.array([[1.0, 1.0], [1.0, 0.9], [1.0, 0.0]])
    assert iht_cli.recovery_claim(rates, ks, ts, 100)  # cells 8, 32, 32 all recovered
    assert iht_cli.recovery_boundary(rates, ks, ts) == (128.0, 128.0)  # exact at 32*4, failed at 8*16
    rates[1, 0] = 0.95  # k*t = 32 failed once
    assert not iht_cli.recovery_claim(rates, ks, ts, 100)
    assert iht_cli.recovery_boundary(rates, ks, ts) == (128.0, 32.0)
    largest, smallest = iht_cli.recovery_boundary(np.ones((3, 2)), ks, ts)
    assert largest == 512.0 and math.isnan(smallest)


def test_defense_claims_count_the_seeds_where_each_held() -> None:
    def seed(clean: float, jsma40: float, undefended40: float, adaptive40: float) -> dict[str, float]:
        return {
            "none/0/defended": clean,
            "jsma_pairs/10/defended": clean,
            "jsma_pairs/40/defended": jsma40,
            "jsma_pairs/40/undefended": undefended40,
            "bpda_identity/10/defended": clean - 0.5,
            "bpda_identity/40/defended": adaptive40,
        }

    per_seed = {0: seed(0.9, 0.86, 0.1, 0.0), 1: seed(0.9, 0.84, 0.6, 0.9), 2: seed(0.8, 0.75, 0.5, 0.1)}
    claims = dict(iht_cli.defense_claims(per_seed, ["jsma_pairs", "bpda_identity"], (10, 40)))
    pairs = iht_cli.ATTACK_LABELS["jsma_pairs"]
    adaptive = iht_cli.ATTACK_LABELS["bpda_identity"]
    # Restored: within 0.05 of the clean defended accuracy (0.86 >= 0.85; 0.84 < 0.85; 0.75 >= 0.75).
    assert claims[f"IHT restores accuracy against {pairs} at L0 10"] == [True, True, True]
    assert claims[f"IHT restores accuracy against {pairs} at L0 40"] == [True, False, True]
    assert claims[f"{pairs} at L0 40 breaks the undefended classifier"] == [True, False, True]  # <= 0.5
    assert claims[f"IHT holds against {adaptive} at L0 10"] == [False, False, False]
    assert claims[f"IHT holds against {adaptive} at L0 40"] == [False, True, False]
    assert len(claims) == 5  # no "breaks" claim for an attack that is not the paper's


def test_cli_recovery_tiny_two_seeds(tmp_path) -> None:
    from brackit.cli import main

    assert (
        main(["extras", "iht", "recovery", "--budget", "tiny", "--seeds", "0,1", "--out", str(tmp_path)]) == 0
    )
    report = (tmp_path / "extras_iht_recovery.md").read_text()
    assert "| 1 | 1.00 |" in report and "git commit" in report and "(2/2 seeds)" in report
    assert (tmp_path / "extras_iht_recovery.png").stat().st_size > 1000
    sidecar = json.loads((tmp_path / "extras_iht_recovery.json").read_text())
    assert sidecar["seeds"] == [0, 1] and sidecar["budget"] == "tiny"
    for seed in ("0", "1"):
        metrics = sidecar["per_seed"][seed]
        assert metrics["rate/k=1/t=1"] == 1.0 and "boundary/largest_kt_exact" in metrics


def test_cli_defense_tiny(tmp_path) -> None:
    from brackit.cli import main

    assert main(["extras", "iht", "defense", "--budget", "tiny", "--seeds", "3", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "extras_iht_defense.md").read_text()
    for label in iht_cli.ATTACK_LABELS.values():
        assert f"| {label} |" in report, label
    assert "### The adaptive attack: what a security reviewer asks first" in report
    assert "(1/1 seeds)" in report or "(0/1 seeds)" in report
    sidecar = json.loads((tmp_path / "extras_iht_defense.json").read_text())
    metrics = sidecar["per_seed"]["3"]
    assert sidecar["seeds"] == [3]
    for name in ("none/0/defended", "jsma_pairs/4/undefended", "cw_l0/4/pixels_changed", "cw_l0/found"):
        assert 0.0 <= metrics[name] <= 4.0, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recovery", "--budget", "huge"], "--budget: expected one of"),
        (["recovery", "--budget", "tiny", "--seeds", "0,0"], "--seeds: expected distinct seeds"),
        (["defense", "--budget", "tiny", "--seeds", "a"], "--seeds: expected comma-separated integers"),
        (["defense", "--budget", "tiny", "--seeds", "-1"], "--seeds must be in"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message) -> None:
    from brackit.cli import main

    out = tmp_path / "out"
    assert main(["extras", "iht", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
