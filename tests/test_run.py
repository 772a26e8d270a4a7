"""Runs in a log directory: --set parsing, refusal of a different run, resume after SIGKILL, NaN stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import random_episode_arrays

from brackit.checkpoint import read_record
from brackit.cli import main
from brackit.data import make_dataset, save_dataset
from brackit.errors import ConfigError
from brackit.run import load_run, parse_overrides, run_training
from brackit.train import NonFiniteError

TINY = ["critic_hidden=8,8", "actor_hidden=8,8", "dual_hidden=8,8", "behavior.hidden=8,8", "batch_size=8"]


def pendulum_dataset(path: Path, reward_scale: float = 1.0) -> Path:
    """Three random 20-step episodes with Pendulum's dims (obs 3, action 1 in [-2, 2])."""
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0, reward_scale=reward_scale)
    save_dataset(make_dataset(arrays, path=path, source_format="test", env_id="Pendulum-v1"), path)
    return path


def test_parse_overrides_types_and_errors():
    overrides = parse_overrides(
        "brac",
        ["alpha=0.5", "tune_alpha=true", "critic_hidden=64,64", "behavior.hidden=(32, 32)", "actor_lr=none"],
    )
    assert overrides["alpha"] == 0.5 and overrides["tune_alpha"] is True
    assert overrides["critic_hidden"] == (64, 64) and overrides["behavior"].hidden == (32, 32)
    assert overrides["actor_lr"] is None
    with pytest.raises(ConfigError, match=r"no config field 'alpah'; valid fields: num_critics, gamma, tau"):
        parse_overrides("brac", ["alpah=1"])
    with pytest.raises(ConfigError, match=r"brac.num_critics: expected an integer, got 'two'"):
        parse_overrides("brac", ["num_critics=two"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides("brac", ["alpha"])


def cli_train(data: Path, logdir: Path, *extra: str) -> list[str]:
    args = ["train", "brac", "--data", str(data), "--logdir", str(logdir), "--seeds", "2"]
    return [*args, *(f"--set={s}" for s in [*TINY, "behavior_steps=4", "warm_start_steps=2"]), *extra]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz")
    steps = ["--steps", "300", "--chunk-steps", "2", "--checkpoint-every", "2", "--eval-episodes", "1"]
    # 1. the uninterrupted reference run (in this process)
    assert main(cli_train(data, tmp_path / "ref", *steps)) == 0
    # 2. the same run in a subprocess, killed with SIGKILL once it has written a checkpoint
    command = [sys.executable, "-m", "brackit.cli", *cli_train(data, tmp_path / "killed", *steps)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "checkpoint.npz"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    record = read_record(checkpoint)
    assert (record["phase"], record["step"]) != ("train", 300), "the run finished before the kill"
    # 3. starting again without --resume is refused; with --resume it finishes
    assert main(cli_train(data, tmp_path / "killed", *steps)) == 2
    assert main(cli_train(data, tmp_path / "killed", *steps, "--resume")) == 0
    _, _, reference = load_run(tmp_path / "ref" / "checkpoint.npz")
    _, _, resumed = load_run(checkpoint)
    for x, y in zip(jax.tree.leaves(reference), jax.tree.leaves(resumed), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines][-1] == 300
    assert len(lines) == len((tmp_path / "ref" / "metrics.jsonl").read_text().splitlines())


def test_logdir_with_a_different_run_is_refused(tmp_path, capsys):
    data = pendulum_dataset(tmp_path / "p.npz")
    args = ["--steps", "2", "--chunk-steps", "2", "--eval-episodes", "1"]
    assert main(cli_train(data, tmp_path / "run", *args)) == 0
    before = (tmp_path / "run" / "run.json").read_text()
    assert main([*cli_train(data, tmp_path / "run", *args), "--set=alpha=3.0"]) == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err and "alpha" in err
    assert (tmp_path / "run" / "run.json").read_text() == before


def test_eval_command_prints_raw_and_normalized(tmp_path, capsys):
    data = pendulum_dataset(tmp_path / "p.npz")
    assert (
        main(cli_train(data, tmp_path / "run", "--steps", "2", "--chunk-steps", "2", "--eval-episodes", "1"))
        == 0
    )
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run" / "checkpoint.npz"), "--episodes", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all("return -" in line for line in out)  # Pendulum returns are negative
    # TensorBoard events (tensorboardX is a dev dependency): one directory per seed, the same numbers
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    for seed in (0, 1):
        scalars = tensorboard_scalars(tmp_path / "run" / "tensorboard" / f"seed{seed}")
        assert scalars["eval/return_mean"] == [(2, pytest.approx(metrics["eval/return_mean"][seed]))]
        assert any(k.startswith("pretrain/") for k in scalars)  # the behavior policy fit comes first


def tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Reads tfevents records (length, crc, Event proto, crc) with tensorboardX's own protos."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 8], "little")
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_non_finite_loss_stops_with_step_and_metric(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz", reward_scale=1e30)  # squared TD errors overflow float32
    overrides = parse_overrides("brac", [*TINY, "behavior_steps=2", "critic_lr=10.0"])
    with pytest.raises(NonFiniteError, match=r"non-finite critic/\w+ at train step \d+"):
        run_training(
            "brac",
            data,
            logdir=tmp_path / "run",
            steps=20,
            chunk_steps=1,
            checkpoint_every=1,
            overrides=overrides,
        )
    # the pretraining checkpoint (the last good one) still loads, and its states are finite
    record = read_record(tmp_path / "run" / "checkpoint.npz")
    assert record["phase"] == "pretrain"
    _, _, states = load_run(tmp_path / "run" / "checkpoint.npz")
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(states.actor_params))
