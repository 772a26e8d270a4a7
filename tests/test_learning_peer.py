"""Tests of benchmarks/learning_peer.py's parts that need no d3rlpy (it runs under the peer's own Python)."""

from __future__ import annotations

import numpy as np
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
        for key in ("beta_actor", "beta_critic", "mmd_sigma", "mmd_kernel"):
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


def test_bear_kernel_is_brackits_in_d3rlpys_units(peer):
    from brackit.algos.bear import BEARConfig
    from brackit.divergences import gaussian_kernel, laplacian_kernel

    defaults = BEARConfig()
    assert peer.BEAR_KERNEL_DEFAULTS == {"mmd_kernel": defaults.mmd_kernel, "mmd_sigma": defaults.mmd_sigma}
    # d3rlpy's kernels (bear_impl.py), written out by hand: exp(-|d|_1 / (2 s)) and exp(-|d|_2^2 / (2 s))
    d3rlpy = {
        "laplacian": lambda d, s: np.exp(-np.abs(d).sum() / (2 * s)),
        "gaussian": lambda d, s: np.exp(-(d**2).sum() / (2 * s)),
    }
    ours = {"laplacian": laplacian_kernel, "gaussian": gaussian_kernel}
    x, y = np.array([[[0.3, -1.2]]], np.float32), np.array([[[-0.4, 0.5]]], np.float32)  # [N, B, A]
    for dataset in ("halfcheetah-eps1", "hopper-eps1", "walker2d-eps1", "unlisted-eps1"):
        settings = {**peer.BEAR_KERNEL_DEFAULTS, **peer.study_settings("bear", dataset)}
        theirs = peer.bear_kernel(dataset)
        assert theirs["mmd_kernel"] == settings["mmd_kernel"]
        brackit_value = float(ours[settings["mmd_kernel"]](x, y, settings["mmd_sigma"])[0, 0, 0])
        assert d3rlpy[theirs["mmd_kernel"]](x[0, 0] - y[0, 0], theirs["mmd_sigma"]) == pytest.approx(
            brackit_value
        )
    assert peer.bear_kernel("halfcheetah-eps1") == {"mmd_kernel": "gaussian", "mmd_sigma": 20.0}
    assert peer.bear_kernel("hopper-eps1") == {"mmd_kernel": "laplacian", "mmd_sigma": 10.0}
