"""`--data MINARI-ID`: a dataset in the local Minari cache, found by id (never downloaded), scored against
the reference returns its metadata carries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import random_episode_arrays

from brackit.checkpoint import read_record
from brackit.cli import main
from brackit.data import load_dataset, make_dataset, save_dataset
from brackit.errors import ConfigError
from brackit.protocol.resolve import is_minari_id, resolve_data
from brackit.scores import dataset_reference, normalized_score

DATASET_ID = "brackit/pendulum/random-v0"
REFERENCE = {"ref_min_score": -1600.0, "ref_max_score": -150.0}


def minari_cache(root: Path, extra: dict | None = None) -> Path:
    """A tiny Pendulum dataset written by brackit's Minari writer at ``root/<DATASET_ID>``."""
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0)
    dataset = make_dataset(arrays, path="<t>", source_format="test", env_id="Pendulum-v1", extra=extra)
    return save_dataset(dataset, root / DATASET_ID, format="minari")


def test_minari_ids_resolve_in_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    path = minari_cache(tmp_path / "minari", REFERENCE)
    assert (path / "data" / "metadata.json").is_file()
    assert resolve_data(DATASET_ID) == path
    card = load_dataset(resolve_data(DATASET_ID)).card
    assert card.env_id == "Pendulum-v1"
    assert dataset_reference(card.extra) == (-1600.0, -150.0)
    metadata = json.loads((path / "data" / "metadata.json").read_text())
    assert metadata["ref_min_score"] == -1600.0 and metadata["ref_max_score"] == -150.0  # Minari's keys

    # a dataset Minari made (no brackit card): the references come from Minari's own metadata keys
    del metadata["brackit_card"]
    metadata["ref_min_score"], metadata["ref_max_score"] = -1000, 0.5
    (path / "data" / "metadata.json").write_text(json.dumps(metadata))
    assert dataset_reference(load_dataset(path).card.extra) == (-1000.0, 0.5)


def test_a_missing_minari_id_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    with pytest.raises(ConfigError) as error:
        resolve_data("mujoco/hopper/medium-v0")
    message = str(error.value)
    assert str(tmp_path / "minari" / "mujoco/hopper/medium-v0") in message and "\n" not in message
    assert "$MINARI_DATASETS_PATH" in message and "does not download" in message
    monkeypatch.delenv("MINARI_DATASETS_PATH")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match=r"home/\.minari/datasets/mujoco/hopper/medium-v0"):
        resolve_data("mujoco/hopper/medium-v0")
    assert not (tmp_path / "home").exists()  # looking creates nothing
    assert is_minari_id("hopper-medium-v2") and not is_minari_id("hopper-eps1")
    assert not is_minari_id("data/file.npz")
    with pytest.raises(ConfigError, match="TASK-MIX"):  # other names keep their old error
        resolve_data("nonsense")


def test_scores_use_the_dataset_references():
    assert normalized_score("Pendulum-v1", -500.0) is None  # no D4RL references for Pendulum
    assert normalized_score("Pendulum-v1", -500.0, (-1000.0, 0.0)) == pytest.approx(50.0)
    assert normalized_score("Hopper-v5", 100.0, (0.0, 200.0)) == pytest.approx(50.0)  # overrides D4RL's
    assert dataset_reference({}) is None and dataset_reference({"ref_min_score": 1.0}) is None
    assert dataset_reference({"ref_min_score": 1.0, "ref_max_score": 1.0}) is None
    assert dataset_reference({"ref_min_score": "a", "ref_max_score": 2}) is None


def test_train_by_minari_id_scores_against_its_references(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    minari_cache(tmp_path / "minari", REFERENCE)
    tiny = ["--set=critic_hidden=8,8", "--set=actor_hidden=8,8", "--set=batch_size=8", "--no-tensorboard"]
    args = ["--steps", "2", "--chunk-steps", "2", "--eval-episodes", "1", *tiny]
    logdir = tmp_path / "run"
    assert main(["train", "td3bc", "--data", DATASET_ID, "--logdir", str(logdir), *args]) == 0
    final = json.loads((logdir / "metrics.jsonl").read_text().splitlines()[-1])
    (ret,), (score,) = final["eval/return_mean"], final["eval/score_mean"]
    assert score == pytest.approx(100 * (ret + 1600.0) / (-150.0 + 1600.0))
    assert read_record(logdir / "checkpoint.npz")["metadata"]["score_reference"] == [-1600.0, -150.0]
    capsys.readouterr()
    assert main(["eval", str(logdir / "checkpoint.npz"), "--episodes", "1"]) == 0
    assert "normalized score" in capsys.readouterr().out
    assert np.isfinite(score)
