"""The outputs beside metrics.jsonl (``--log csv,tensorboard,wandb``): CSV rows are the logged steps under
stable columns, a resume leaves each step once, W&B offline runs hold the steps, bad choices write nothing."""

from __future__ import annotations

import csv
import json
import os
import signal
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import random_episode_arrays

from brackit.cli import main
from brackit.data import make_dataset, save_dataset
from brackit.errors import ConfigError
from brackit.loggers import CsvLog, choose_loggers, parse_loggers

TINY_BC = ["--set", "hidden=8,8", "--set", "batch_size=8", "--chunk-steps", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three random 20-step episodes with Pendulum's dims (obs 3, action 1 in [-2, 2])."""
    path = tmp_path_factory.mktemp("data") / "p.npz"
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0)
    save_dataset(make_dataset(arrays, path=path, source_format="test", env_id="Pendulum-v1"), path)
    return path


def train(data: Path, logdir: Path, *extra: str) -> int:
    return main(["train", "bc", "--data", str(data), "--logdir", str(logdir), *TINY_BC, *extra])


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def metrics(logdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]


def seed_value(entry: dict[str, Any], name: str, seed: int) -> float:
    value = np.asarray(entry[name]).reshape(-1)
    return float(value[seed] if value.size > 1 else value[0])


# ----------------------------------------------------------------------------------------- csv


def test_csv_header_grows_at_its_end_and_missing_cells_are_empty(tmp_path):
    history = [
        {"phase": "pretrain", "step": 1, "bc/loss": np.float32([1.5, 2.5])},
        {"phase": "train", "step": 1, "critic/loss": np.float32([0.25, 0.5]), "time/seconds": 0.1},
    ]
    log = CsvLog(tmp_path, ["seed0", "seed1"], history)
    log.write({"phase": "train", "step": 2, "critic/loss": np.float32([3.0, 4.0]), "note": "text"})
    assert read_csv(tmp_path / "csv" / "seed1.csv") == (
        ["phase", "step", "bc/loss", "critic/loss", "time/seconds"],
        [
            {"phase": "pretrain", "step": "1", "bc/loss": "2.5", "critic/loss": "", "time/seconds": ""},
            {"phase": "train", "step": "1", "bc/loss": "", "critic/loss": "0.5", "time/seconds": "0.1"},
            {"phase": "train", "step": "2", "bc/loss": "", "critic/loss": "4.0", "time/seconds": ""},
        ],
    )
    log.write(
        {"phase": "train", "step": 3, "critic/loss": np.float32([5.0, 6.0]), "eval/return_mean": [7, 8]}
    )
    header, rows = read_csv(tmp_path / "csv" / "seed0.csv")
    assert header == ["phase", "step", "bc/loss", "critic/loss", "time/seconds", "eval/return_mean"]
    assert [(row["step"], row["critic/loss"], row["eval/return_mean"]) for row in rows] == [
        ("1", "", ""),
        ("1", "0.25", ""),
        ("2", "3.0", ""),
        ("3", "5.0", "7.0"),
    ]
    # reopened with a shorter history (a resume from an earlier checkpoint): the later rows are gone
    CsvLog(tmp_path, ["seed0", "seed1"], history[:1])
    assert read_csv(tmp_path / "csv" / "seed0.csv") == (
        ["phase", "step", "bc/loss"],
        [{"phase": "pretrain", "step": "1", "bc/loss": "1.5"}],
    )
    assert not list((tmp_path / "csv").glob(".*"))  # no temporaries left


def test_csv_rows_are_the_logged_steps_of_each_seed(data, tmp_path):
    logdir = tmp_path / "run"
    args = ["--seeds", "2", "--steps", "4", "--eval-every", "2", "--eval-episodes", "1", "--log", "csv"]
    assert train(data, logdir, *args) == 0
    assert not (logdir / "tensorboard").exists()  # --log names exactly the outputs
    entries = metrics(logdir)
    assert [entry["step"] for entry in entries] == [1, 2, 3, 4]
    for seed in (0, 1):
        header, rows = read_csv(logdir / "csv" / f"seed{seed}.csv")
        assert header[:2] == ["phase", "step"] and {"bc/loss", "eval/return_mean"} <= set(header)
        assert len(header) == len(set(header))
        assert [(row["phase"], int(row["step"])) for row in rows] == [("train", s) for s in (1, 2, 3, 4)]
        for entry, row in zip(entries, rows, strict=True):
            for name in header[2:]:
                if name in entry:
                    assert float(row[name]) == seed_value(entry, name, seed), (name, entry["step"])
                else:
                    assert row[name] == "", (name, entry["step"])  # no evaluation at steps 1 and 3
        assert [row["eval/return_mean"] == "" for row in rows] == [True, False, True, False]
    seed0, seed1 = (read_csv(logdir / "csv" / f"seed{s}.csv")[1] for s in (0, 1))
    assert seed0[-1]["bc/loss"] != seed1[-1]["bc/loss"]  # each file holds its own seed's values


def test_csv_after_a_stop_and_resume_holds_each_step_once(data, tmp_path, monkeypatch):
    logdir = tmp_path / "run"
    args = ["--steps", "8", "--checkpoint-every", "4", "--eval-episodes", "0", "--log", "csv,tensorboard"]
    write = CsvLog.write

    def write_then_signal(self: CsvLog, entry: dict[str, Any]) -> None:  # a stop two steps past a checkpoint
        write(self, entry)
        if entry["step"] == 6:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(CsvLog, "write", write_then_signal)
    assert train(data, logdir, *args) == 130
    assert [int(row["step"]) for row in read_csv(logdir / "csv" / "seed0.csv")[1]] == [1, 2, 3, 4, 5, 6]
    monkeypatch.setattr(CsvLog, "write", write)
    assert train(data, logdir, *args, "--resume") == 0
    rows = read_csv(logdir / "csv" / "seed0.csv")[1]
    assert [int(row["step"]) for row in rows] == list(range(1, 9))  # steps 5 and 6 once, not twice
    entries = metrics(logdir)
    assert [float(row["bc/loss"]) for row in rows] == [seed_value(entry, "bc/loss", 0) for entry in entries]


# ----------------------------------------------------------------------------------------- wandb


def wandb_history(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(display name, history rows) of an offline run file: the LevelDB log format (a 7-byte file header,
    32 KiB blocks of records, each a 7-byte header -- crc32c, length, type -- and a piece of a protobuf
    ``Record``; types 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    offset, pieces, name, rows = 7, b"", "", []
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block's tail too short for a header is padding
            offset += block - offset % block
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        pieces += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record.FromString(pieces)
            pieces = b""
            if record.HasField("run"):
                name = record.run.display_name
            elif record.HasField("history"):
                items = record.history.item
                rows.append(
                    {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in items}
                )
    return name, rows


def test_wandb_offline_runs_hold_the_logged_steps(data, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")  # in the dev extra
    monkeypatch.setenv("WANDB_MODE", "offline")  # local files only, never the network
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    logdir = tmp_path / "run"
    assert train(data, logdir, "--seeds", "2", "--steps", "3", "--eval-episodes", "0", "--log", "wandb") == 0
    wandb.teardown()  # waits for wandb's service to close its files (a process's exit does this too)
    files = sorted((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))
    runs = dict(wandb_history(path) for path in files)
    assert sorted(runs) == ["run/seed0", "run/seed1"]
    entries = metrics(logdir)
    for seed in (0, 1):
        rows = runs[f"run/seed{seed}"]
        assert [row["step"] for row in rows] == [1, 2, 3]
        assert [row["bc/loss"] for row in rows] == [seed_value(entry, "bc/loss", seed) for entry in entries]
    assert not (logdir / "wandb").exists()  # WANDB_DIR, when set, is where wandb writes


# ----------------------------------------------------------------------------------------- choices


def test_parse_and_choose_loggers(monkeypatch):
    assert parse_loggers("csv, wandb,csv") == ("csv", "wandb")
    assert choose_loggers(None, None) == ("tensorboard",)  # today's default: tensorboardX is in dev
    assert choose_loggers(None, False) == () and choose_loggers(("csv",)) == ("csv",)
    with pytest.raises(ConfigError, match="unknown output 'tb'; valid: csv, tensorboard, wandb"):
        parse_loggers("csv,tb")
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if it were not installed
    assert choose_loggers(None, None) == ()
    with pytest.raises(ConfigError, match=r"pip install 'brackit\[tensorboard\]'"):
        choose_loggers(None, True)


@pytest.mark.parametrize(
    ("extra", "missing", "message"),
    [
        (["--log", "csv,tb"], None, "unknown output 'tb'; valid: csv, tensorboard, wandb"),
        (["--log", ""], None, "unknown output ''; valid: csv, tensorboard, wandb"),
        (["--log", "wandb"], "wandb", "--log wandb needs wandb: pip install 'brackit[wandb]'"),
        (["--log", "csv", "--no-tensorboard"], None, "pass one"),
    ],
)
def test_a_bad_log_choice_is_one_line_and_writes_nothing(
    data, tmp_path, monkeypatch, capsys, extra, missing, message
):
    if missing:
        monkeypatch.setitem(sys.modules, missing, None)  # as if it were not installed
    logdir = tmp_path / "run"
    capsys.readouterr()
    assert train(data, logdir, "--steps", "2", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not logdir.exists()
