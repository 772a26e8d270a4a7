"""Tests of benchmarks/learning_peer.py's parts that need no d3rlpy (it runs under the peer's own Python)."""

from __future__ import annotations

import pytest
from helpers import load_benchmark_script


@pytest.fixture(scope="module")
def peer():
    return load_benchmark_script("learning_peer")


def test_study_settings_are_the_learning_studys_per_dataset(peer, tmp_path):
    from brackit.study import load_spec, plan_study

    # the preset as brackit plans it, against what the peer reads from the same file
    plan = plan_study(load_spec("learning"), tmp_path, budget="cpu", variants=["rebrac", "bear"])
    for group in plan.groups:
        settings = peer.study_settings(group.name, group.dataset_name)
        for key in ("beta_actor", "beta_critic", "mmd_sigma"):
            assert settings.get(key) == group.overrides.get(key)
    assert peer.study_settings("rebrac", "hopper-eps1") == {"beta_actor": 0.1, "beta_critic": 0.01}
    assert peer.study_settings("bear", "ant-eps1") == {"mmd_sigma": 40.0}
    # a file of its own: set, then per_dataset
    study = tmp_path / "s.toml"
    study.write_text(
        '[[variants]]\nname = "rebrac"\nset = { beta_actor = 0.5, beta_critic = 0.2 }\n'
        "per_dataset = { d = { beta_critic = 0.0 } }\n"
    )
    assert peer.study_settings("rebrac", "d", study) == {"beta_actor": 0.5, "beta_critic": 0.0}
    assert peer.study_settings("rebrac", "other", study) == {"beta_actor": 0.5, "beta_critic": 0.2}
