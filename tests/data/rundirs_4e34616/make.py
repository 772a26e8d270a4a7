"""Writes the run directories of this folder with the code of an older checkout: a BRAC and a TD3+BC run (tiny
networks, 2 seeds, Pendulum-shaped random data), each killed with SIGKILL between steps 50 and 80 of 100, as a
crash would leave it. They were written at 4e34616, before the run directory, the config overrides and the
dataset protocol were consolidated; ``tests/test_old_rundirs.py`` resumes and reports them with today's code.

Run from the root of a checkout of that commit: ``PYTHONPATH=. python PATH/TO/make.py OUT``. The tensorboard
folders, the lock and the killed writer's temporary files are not kept.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, "tests")
from helpers import random_episode_arrays

from brackit.checkpoint import read_record
from brackit.data import make_dataset, save_dataset

TINY = ["critic_hidden=8,8", "actor_hidden=8,8", "batch_size=8"]
RUNS = {
    "brac": [
        "brac",
        *TINY,
        "dual_hidden=8,8",
        "behavior.hidden=8,8",
        "behavior_steps=4",
        "warm_start_steps=2",
    ],
    "td3bc": ["td3bc", *TINY, "normalize_obs=true"],
}
STEPS = ["--seeds", "2", "--steps", "100", "--chunk-steps", "10", "--checkpoint-every", "10"]
EVAL = ["--eval-every", "50", "--eval-episodes", "1"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "pendulum.npz"
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0)
    save_dataset(make_dataset(arrays, path=data, source_format="test", env_id="Pendulum-v1"), data)
    for name, (algorithm, *overrides) in RUNS.items():
        logdir = out / name
        shutil.rmtree(logdir, ignore_errors=True)
        sets = [f"--set={s}" for s in overrides]
        command = [sys.executable, "-m", "brackit.cli", "train", algorithm, *sets, "--data", str(data)]
        process = subprocess.Popen([*command, "--logdir", str(logdir), *STEPS, *EVAL])
        checkpoint = logdir / "checkpoint.npz"
        while process.poll() is None:  # kill it past its first evaluation (step 50), well before the end
            try:
                record = read_record(checkpoint) if checkpoint.exists() else {}
            except (OSError, ValueError):  # caught mid-write
                record = {}
            if record.get("phase") == "train" and 50 <= record["step"] < 80:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        process.wait()
        shutil.rmtree(logdir / "tensorboard", ignore_errors=True)
        for leftover in [logdir / ".lock", *logdir.glob(".*.tmp")]:
            leftover.unlink()
        print(name, read_record(checkpoint)["step"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
