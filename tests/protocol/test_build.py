"""Dataset builds by the BRAC protocol: exact segment sizes, noise statistics, determinism, the card, the
missing-policy error, and the shipped behavior policies' returns against their cards."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from flax import traverse_util

from brackit.data import DatasetError
from brackit.errors import ConfigError
from brackit.protocol import sac
from brackit.protocol.behavior import (
    TASKS,
    BehaviorPolicy,
    default_dir,
    load_task_policy,
    policy_paths,
    random_behavior_policy,
)
from brackit.protocol.build import MIXES, build, parse_name, segment_sizes

ENV = "Hopper-v5"


def stand_in_policy() -> BehaviorPolicy:
    """A tiny actor whose samples are tanh(N(0, e^-5)), i.e. within 0.05 of 0: random actions (uniform in
    [-1, 1]^3) stand out, and Gaussian noise added to it is measured directly."""
    policy = random_behavior_policy(ENV, seed=0, hidden=(8,))
    flat = traverse_util.flatten_dict(jax.device_get(policy.params), sep="/")
    flat["params/MLP_0/Dense_1/kernel"] = np.zeros_like(flat["params/MLP_0/Dense_1/kernel"])
    flat["params/MLP_0/Dense_1/bias"] = np.array([0.0] * 3 + [-5.0] * 3, np.float32)
    params = traverse_util.unflatten_dict(flat, sep="/")
    return dataclasses.replace(policy, params=params)


def segment_rows(dataset, name: str) -> slice:
    start = 0
    for segment in dataset.card.extra["segments"]:
        if segment["name"] == name:
            return slice(start, start + segment["size"])
        start += segment["size"]
    raise KeyError(name)


@pytest.fixture(scope="module")
def policy() -> BehaviorPolicy:
    return stand_in_policy()


def test_segment_sizes_exact_for_every_mix():
    for mix, segments in MIXES.items():
        for size in (1_000_000, 1001, 7, 1):
            sizes = segment_sizes(size, segments)
            assert sum(sizes) == size, (mix, size)
            assert all(s >= 0 for s in sizes)
    assert segment_sizes(1_000_000, MIXES["eps1"]) == [200_000, 400_000, 400_000]
    assert segment_sizes(1_000_000, MIXES["pure"]) == [1_000_000]
    assert parse_name("walker2d-gaussian3") == ("walker2d", "gaussian3")
    with pytest.raises(ConfigError, match="TASK-MIX"):
        parse_name("hopper-eps2")


def test_epsilon_greedy_fraction_and_card(policy):
    dataset = build("hopper", "eps3", size=2500, seed=0, policy=policy, num_envs=8, workers=0, progress=False)
    card = dataset.card
    assert card.num_transitions == 2500
    extra = card.extra
    assert [s["size"] for s in extra["segments"]] == [500, 1000, 1000]
    assert [s["name"] for s in extra["segments"]] == ["random", "policy", "eps0.3"]
    assert extra["mix"] == "eps3" and extra["seed"] == 0 and extra["num_envs"] == 8
    assert extra["command"].startswith("brackit data build hopper-eps3 --size 2500 --seed 0")
    assert all(s["mean_episode_return"] is not None for s in extra["segments"])
    assert extra["behavior_policy"]["random_init"] is True
    assert extra["gymnasium_version"] and extra["mujoco_version"]
    action = np.asarray(dataset.transitions.action)
    far = np.abs(action).max(axis=1) > 0.05  # a uniform action lands within 0.05 of 0 w.p. 0.05^3
    assert far[segment_rows(dataset, "random")].mean() > 0.99
    assert far[segment_rows(dataset, "policy")].mean() == 0.0
    # epsilon 0.3 over 1000 rows: standard error 0.0145
    assert abs(far[segment_rows(dataset, "eps0.3")].mean() - 0.3) < 0.06
    # segments start from resets: no episode spans two segments
    episode_id = np.asarray(dataset.episode_id)
    assert episode_id[499] != episode_id[500] and episode_id[1499] != episode_id[1500]
    # terminations and time-limit truncations are kept apart; cut episodes end without a next action
    discount, timeout = np.asarray(dataset.transitions.discount), np.asarray(dataset.timeout)
    assert not np.any((discount == 0.0) & timeout)
    assert np.sum(discount == 0.0) > 0
    valid = np.asarray(dataset.next_action_valid)
    assert not valid[499] and not valid[1499] and not valid[-1]


def test_gaussian_noise_std(policy):
    dataset = build(
        "hopper", "gaussian3", size=2500, seed=1, policy=policy, num_envs=8, workers=0, progress=False
    )
    action = np.asarray(dataset.transitions.action)
    noisy = action[segment_rows(dataset, "gaussian0.3")]
    # policy part is within ~0.007 of 0; clipping at +-1 touches 0.1% of N(0, 0.3) draws
    assert abs(noisy.std() - 0.3) < 0.02
    assert abs(noisy.mean()) < 0.03
    assert np.abs(action).max() <= 1.0
    assert np.abs(action[segment_rows(dataset, "policy")]).max() < 0.05


def test_build_is_deterministic(policy):
    def sha(seed: int, workers: int) -> str:
        return build(
            "hopper",
            "gaussian1",
            size=600,
            seed=seed,
            policy=policy,
            num_envs=4,
            workers=workers,
            progress=False,
        ).card.sha256

    first = sha(0, 0)
    assert sha(0, 0) == first
    assert sha(0, 2) == first  # worker processes do not change the data
    assert sha(1, 0) != first


def test_random_mix_needs_no_policy_and_missing_policy_error(tmp_path):
    dataset = build(
        "hopper", "random", size=300, seed=0, behavior_dir=tmp_path, num_envs=4, workers=0, progress=False
    )
    assert dataset.card.extra["behavior_policy"] is None
    with pytest.raises(DatasetError) as error:
        build("walker2d", "pure", size=100, behavior_dir=tmp_path, progress=False)
    message = str(error.value)
    assert (
        "walker2d.npz" in message and "python -m brackit.protocol.behavior train --task walker2d" in message
    )


@pytest.mark.parametrize("task", sorted(TASKS))
def test_shipped_policy_matches_its_card(task):
    npz_path, card_path = policy_paths(default_dir(), task)
    if not (npz_path.exists() and card_path.exists()):
        pytest.skip(f"no shipped behavior policy for {task}")
    policy = load_task_policy(task)
    card = policy.card
    assert npz_path.stat().st_size < 1_000_000
    assert card["reached_target"] is True
    assert card["eval_return_mean"] >= card["target_return"] - 2 * card["eval_return_std"]
    episodes = 3
    returns = sac.evaluate_policy(policy.config, policy.params, policy.env_id, episodes, card["eval_seed"])
    # the same reset seeds as the card's first episodes; CPU/GPU rounding lets trajectories drift apart
    tolerance = 4 * card["eval_return_std"] / np.sqrt(episodes) + 0.05 * abs(card["eval_return_mean"])
    assert abs(returns.mean() - card["eval_return_mean"]) < tolerance, (returns, card["eval_return_mean"])


def test_cli_build_writes_the_dataset(tmp_path, capsys):
    from brackit.cli import main
    from brackit.data import load_dataset

    out = tmp_path / "h.npz"
    argv = [
        "data",
        "build",
        "hopper-random",
        "--size",
        "120",
        "--num-envs",
        "2",
        "--workers",
        "0",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    dataset = load_dataset(out)
    assert dataset.card.num_transitions == 120 and dataset.card.extra["mix"] == "random"
    assert dataset.card.extra["command"] == (
        f"brackit data build hopper-random --size 120 --seed 0 --num-envs 2 --format npz --out {out}"
    )
    assert main(["data", "build", "hopper-eps5", "--size", "10"]) != 0
