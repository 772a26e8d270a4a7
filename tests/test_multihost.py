"""``brackit train --coordinator``: two processes (two "hosts" on this machine, two CPU devices each) train
four seeds sharded over the four devices through ``jax.distributed``, and give the numbers of the one-device
path; only process 0 writes the logdir, and its checkpoint (gathered with ``process_allgather``) resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_run import pendulum_dataset

from brackit.checkpoint import read_record

TINY = ["critic_hidden=8,8", "actor_hidden=8,8", "batch_size=8"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_args(data: Path, logdir: Path) -> list[str]:
    args = ["train", "td3bc", "--data", str(data), "--steps", "8", "--chunk-steps", "4", "--seeds", "4"]
    args += ["--eval-every", "8", "--eval-episodes", "1", "--checkpoint-every", "4", "--logdir", str(logdir)]
    for item in TINY:
        args += ["--set", item]
    return args


def _process_args(coordinator: str, index: int) -> list[str]:
    return [
        "--devices",
        "4",
        "--coordinator",
        coordinator,
        "--num-processes",
        "2",
        "--process-id",
        str(index),
    ]


def _float_leaves(path: Path) -> list[np.ndarray]:
    """The float leaves of the states (every one with a leading run axis): not the observation statistics,
    which all runs share."""
    with np.load(path, allow_pickle=False) as archive:
        return [
            archive[name]
            for name in sorted(archive.files)
            if archive[name].dtype == np.float32 and name not in ("obs_mean", "obs_std")
        ]


def test_two_processes_match_one_device(tmp_path: Path):
    data = pendulum_dataset(tmp_path / "pendulum.npz")
    base = dict(os.environ, JAX_PLATFORMS="cpu")
    command = [sys.executable, "-m", "brackit.cli"]
    single = subprocess.run(
        [*command, *_train_args(data, tmp_path / "single")],
        env=base,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-2000:]

    flags = base.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    env = dict(base, XLA_FLAGS=flags.strip())
    coordinator = f"127.0.0.1:{_free_port()}"
    multi = tmp_path / "multi"
    processes = [
        subprocess.Popen(
            [*command, *_train_args(data, multi), *_process_args(coordinator, index)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    assert f"run directory: {multi}" in outputs[0][0]
    assert "process 1 of 2: done; process 0 wrote" in outputs[1][0]

    # Process 0 wrote the run; its checkpoint holds all four seeds, equal to the one-device run.
    record_single = read_record(tmp_path / "single" / "checkpoint.npz")
    record_multi = read_record(multi / "checkpoint.npz")
    assert record_multi["step"] == record_single["step"] == 8
    leaves_single = _float_leaves(tmp_path / "single" / "checkpoint.npz")
    leaves_multi = _float_leaves(multi / "checkpoint.npz")
    assert len(leaves_single) == len(leaves_multi) > 0
    for a, b in zip(leaves_single, leaves_multi, strict=True):
        assert a.shape == b.shape and a.shape[0] == 4
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    evals = [
        [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()][-1]
        for folder in (tmp_path / "single", multi)
    ]
    np.testing.assert_allclose(evals[0]["eval/return_mean"], evals[1]["eval/return_mean"], rtol=1e-4)
