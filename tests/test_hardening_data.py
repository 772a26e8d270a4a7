"""Hardening of datasets, files and the CLI against a user's bad input.

1. Every field of a dataset file is checked as it will be used (after the cast to its stored dtype): dtype,
   rank, non-zero widths, finite values, booleans that are 0 or 1, and the file's structure (a group where
   an array is expected and the reverse, unreadable JSON, missing keys); each failure is a one-line
   ``DatasetError`` naming the file, the field and what was expected.
2. Replacing a Minari directory leaves the old or the new one loadable at every instant (or restorable).
3. A user's error (permissions, a file where a directory goes, a full disk, an unknown or wrong env id)
   ends the CLI in one line and exit status 2; a bug still shows its traceback.
4. A property test: any small malformed npz or D4RL file loads as finite float32 arrays of consistent
   shapes, or raises ``DatasetError``, never another exception.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import random_episode_arrays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brackit import files as files_module
from brackit.checkpoint import read_record
from brackit.cli import main, user_error_line
from brackit.data import DatasetError, load_dataset, make_dataset, save_dataset
from brackit.data.dataset import ARRAY_FIELDS, content_sha256
from brackit.data.formats import read_d4rl, read_npz
from brackit.files import AtomicDebris, atomic_path
from brackit.run import load_run, run_training

TINY_BC = ["--set", "hidden=8,8", "--set", "batch_size=8"]


def pendulum_dataset(path: Path, seed: int = 0, fmt: str = "npz") -> Path:
    """Three random 20-step episodes with Pendulum's dims (obs 3, action 1 in [-2, 2])."""
    arrays = random_episode_arrays(seed=seed, action_dim=1, action_bound=2.0)
    dataset = make_dataset(arrays, path=path, source_format="test", env_id="Pendulum-v1")
    save_dataset(dataset, path, format=fmt)
    return path


def entry_point() -> list[str]:
    """The installed ``brackit`` script next to this interpreter (the module as a fallback)."""
    script = Path(sys.executable).parent / "brackit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "brackit.cli"]


def run_entry_points(commands: list[list[str]]) -> list[tuple[int, str]]:
    """(exit status, stderr) of each ``brackit`` command, run in parallel (each start imports jax)."""
    processes = [
        subprocess.Popen([*entry_point(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in commands
    ]
    results = []
    for process in processes:
        _, err = process.communicate(timeout=300)
        results.append((process.returncode, err))
    return results


def assert_one_line(status: int, err: str, *needles: str) -> str:
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------------------- 1. validation


def write_d4rl(path: Path, **overrides: object) -> Path:
    """6 rows, obs width 2, action width 2; ``overrides``: a field's value (None drops it; the string
    'group' makes it an HDF5 group)."""
    data: dict[str, object] = {
        "observations": np.arange(12, dtype=np.float32).reshape(6, 2),
        "actions": np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2),
        "rewards": np.arange(6, dtype=np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0], bool),
        "timeouts": np.array([0, 0, 0, 0, 0, 1], bool),
        "next_observations": np.arange(12, dtype=np.float32).reshape(6, 2) + 1,
    }
    data.update(overrides)
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            if isinstance(value, str) and value == "group":
                handle.create_group(key).create_dataset("x", data=np.zeros(3))
            elif value is not None:
                handle.create_dataset(key, data=value)
    return path


def huge(shape: tuple[int, ...], index: tuple[int, ...], value: float = 1e39) -> np.ndarray:
    array = np.ones(shape, np.float64)
    array[index] = value
    return array


D4RL_CASES = {
    # values past float32's range become inf in the stored dtype: refused as such
    "float64 reward above float32's range": (
        {"rewards": huge((6,), (2,))},
        "rewards",
        "finite float32",
        "1e+39",
    ),
    "float64 observation below float32's range": (
        {"observations": huge((6, 2), (4, 1), -1e39)},
        "observations",
        "finite float32",
        "row 4",
    ),
    "NaN terminal": ({"terminals": np.array([0, 0, np.nan, 0, 0, 0])}, "terminals", "booleans", "nan"),
    "terminal of 2": ({"terminals": np.array([0, 0, 2, 0, 0, 0])}, "terminals", "booleans", "row 2"),
    "zero action width": ({"actions": np.zeros((6, 0), np.float32)}, "actions", "non-zero widths", "(6, 0)"),
    "zero observation width": (
        {"observations": np.zeros((6, 0)), "next_observations": None},
        "observations",
        "non-zero widths",
        "(6, 0)",
    ),
    "scalar rewards": ({"rewards": np.float32(1.0)}, "rewards", "rank 1", "shape ()"),
    "rank-3 actions": ({"actions": np.zeros((6, 2, 1), np.float32)}, "actions", "rank 2", "(6, 2, 1)"),
    "observations as a group": ({"observations": "group"}, "observations", "an HDF5 dataset", "a group"),
    "string rewards": ({"rewards": np.array([b"a"] * 6)}, "rewards", "a numeric array", "dtype"),
    "complex actions": ({"actions": np.ones((6, 2), np.complex64)}, "actions", "a numeric array", "complex"),
    "missing timeouts": ({"timeouts": None}, "timeouts", "present", ""),
    "short actions": ({"actions": np.zeros((5, 2), np.float32)}, "actions", "6 rows", "5 rows"),
}


@pytest.mark.parametrize("case", list(D4RL_CASES))
def test_each_malformed_d4rl_field_is_one_dataset_error(tmp_path, case):
    overrides, field, expected, found = D4RL_CASES[case]
    path = write_d4rl(tmp_path / "d.hdf5", **overrides)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    error = info.value
    assert (error.path, error.field) == (str(path), field), str(error)
    assert expected in error.expected and found in str(error), str(error)
    assert "\n" not in str(error)


def test_the_unmodified_d4rl_file_loads(tmp_path):
    dataset = load_dataset(write_d4rl(tmp_path / "d.hdf5", rewards=np.arange(6, dtype=np.float64)))
    assert dataset.size == 6 and dataset.transitions.reward.dtype == np.float32


def small_npz(path: Path, change=None) -> Path:
    """A brackit npz; ``change(arrays, card)`` edits it first (the card's hash is left as it was)."""
    dataset = make_dataset(random_episode_arrays(episodes=2, steps=3), path=path, source_format="test")
    arrays, card = dataset.host_arrays(), dataset.card.to_dict()
    if change is not None:
        change(arrays, card)
    np.savez(path, card_json=np.array(card if isinstance(card, str) else json.dumps(card)), **arrays)
    return path


def set_item(mapping: dict, key: str, value: object):
    return lambda arrays, card: {"arrays": arrays, "card": card}[mapping].__setitem__(key, value)


NPZ_CASES = {
    "float64 reward above float32's range": (
        set_item("arrays", "reward", huge((6,), (3,))),
        "reward",
        "1e+39 at row 3",
    ),
    "inf observation": (set_item("arrays", "obs", huge((6, 3), (1, 2), np.inf)), "obs", "inf at row 1"),
    "NaN timeout": (set_item("arrays", "timeout", np.full(6, np.nan)), "timeout", "nan at row 0"),
    "episode id beyond int32": (
        set_item("arrays", "episode_id", np.array([0, 0, 0, 1, 1, 2**40])),
        "episode_id",
        "range",
    ),
    "fractional episode id": (
        set_item("arrays", "episode_id", np.array([0, 0, 0, 0.5, 1, 1])),
        "episode_id",
        "whole numbers",
    ),
    "zero action width": (
        lambda arrays, card: arrays.update(
            action=arrays["action"][:, :0], next_action=arrays["action"][:, :0]
        ),
        "action",
        "non-zero widths",
    ),
    "scalar reward": (set_item("arrays", "reward", np.float32(1.0)), "reward", "rank 1"),
    "card that is a JSON list": (lambda arrays, card: None, "card_json", "a JSON list"),
    "card bound that is not a list": (
        set_item("card", "action_low", 3),
        "card.action_low",
        "a list of numbers",
    ),
    "card width that is a string": (set_item("card", "obs_dim", "3"), "card.obs_dim", "int"),
    "card extra that is a list": (set_item("card", "extra", [1]), "card.extra", "a JSON object"),
    "infinite card bound": (
        set_item("card", "action_low", [-1e39, -1.0]),
        "action_low",
        "finite float32",
    ),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_each_malformed_npz_field_is_one_dataset_error(tmp_path, case):
    change, field, found = NPZ_CASES[case]
    path = tmp_path / "d.npz"
    if case == "card that is a JSON list":
        dataset = make_dataset(random_episode_arrays(episodes=2, steps=3), path=path, source_format="test")
        np.savez(path, card_json=np.array("[1, 2]"), **dataset.host_arrays())
    else:
        small_npz(path, change)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert (info.value.path, info.value.field) == (str(path), field), str(info.value)
    assert found in str(info.value), str(info.value)


def minari_copy(tmp_path: Path) -> tuple[Path, Path, dict]:
    path = pendulum_dataset(tmp_path / "m", fmt="minari")
    metadata_path = path / "data" / "metadata.json"
    return path, metadata_path, json.loads(metadata_path.read_text())


MINARI_METADATA_CASES = {
    "unreadable JSON": ("{not json", "metadata.json", "unreadable JSON"),
    "a JSON list": ("[1, 2]", "metadata.json", "a JSON list"),
    "action_space not JSON": ({"action_space": "{bad"}, "action_space", "unreadable JSON"),
    "action_space without low": (
        {"action_space": json.dumps({"type": "Box", "high": [2]})},
        "action_space.low",
        "",
    ),
    "action_space with NaN": (
        {"action_space": json.dumps({"type": "Box", "low": [float("nan")], "high": [2.0]})},
        "action_space.low",
        "nan",
    ),
    "env_spec a list": ({"env_spec": "[]"}, "env_spec", "a JSON list"),
    "env_spec id a number": ({"env_spec": json.dumps({"id": 3})}, "env_spec.id", "3"),
    "action_space a number": ({"action_space": 3}, "action_space", "a string"),
    "brackit_card a list": ({"brackit_card": [1]}, "brackit_card", "a JSON object"),
    "brackit_card missing a key": ({"brackit_card": {"env_id": None}}, "card.obs_dim", ""),
}


@pytest.mark.parametrize("case", list(MINARI_METADATA_CASES))
def test_each_malformed_minari_metadata_entry_is_one_dataset_error(tmp_path, case):
    path, metadata_path, metadata = minari_copy(tmp_path)
    change, field, found = MINARI_METADATA_CASES[case]
    metadata_path.write_text(change if isinstance(change, str) else json.dumps({**metadata, **change}))
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert (info.value.path, info.value.field) == (str(metadata_path), field), str(info.value)
    assert found in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_minari_structural_surprises_are_dataset_errors(tmp_path):
    path, _, _ = minari_copy(tmp_path)
    h5 = path / "data" / "main_data.hdf5"
    shutil.copy(h5, tmp_path / "good.hdf5")
    for edit, field, found in (
        (
            lambda h: (h.__delitem__("episode_0/rewards"), h["episode_0"].create_group("rewards")),
            "episode_0/rewards",
            "a group",
        ),
        (lambda h: h.create_dataset("episode_7", data=np.zeros(3)), "episode_7", "a dataset"),
        (lambda h: h.__delitem__("episode_1/terminations"), "episode_1/terminations", "present"),
        (
            lambda h: (
                h.__delitem__("episode_2/actions"),
                h["episode_2"].create_dataset("actions", data=np.ones((20, 2))),
            ),
            "episode_2/actions",
            "as the first episode",
        ),
        (
            lambda h: (
                h.__delitem__("episode_0/rewards"),
                h["episode_0"].create_dataset("rewards", data=huge((20,), (5,))),
            ),
            "episode_0/rewards",
            "1e+39 at row 5",
        ),
    ):
        shutil.copy(tmp_path / "good.hdf5", h5)
        with h5py.File(h5, "a") as handle:
            edit(handle)
        with pytest.raises(DatasetError) as info:
            load_dataset(path)
        assert (info.value.path, info.value.field) == (str(h5), field), str(info.value)
        assert found in str(info.value), str(info.value)
    shutil.copy(tmp_path / "good.hdf5", h5)
    assert load_dataset(path).size == 60


# ----------------------------------------------------------------------------------------- 2. atomic replace


def same_content(a: Path, b: Path) -> bool:
    return load_dataset(a).card.sha256 == load_dataset(b).card.sha256


@pytest.mark.parametrize("failing_call", [1, 2, 3])
def test_a_failed_minari_replace_leaves_a_loadable_directory(tmp_path, monkeypatch, failing_call):
    """os.replace fails at each of its three calls (old aside, new in place, old discarded)."""
    old = pendulum_dataset(tmp_path / "old", seed=0, fmt="minari")
    new = pendulum_dataset(tmp_path / "new", seed=1, fmt="minari")
    target = pendulum_dataset(tmp_path / "target", seed=0, fmt="minari")
    replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_call:
            raise OSError(errno.EIO, "injected failure")
        return replace(src, dst)

    monkeypatch.setattr(files_module.os, "replace", failing_replace)
    try:
        save_dataset(load_dataset(new), target, format="minari")
    except OSError as error:
        assert failing_call < 3 and error.errno == errno.EIO
    monkeypatch.undo()
    assert len(calls) == {1: 1, 2: 3, 3: 3}[failing_call]  # after the 2nd, a 3rd puts the old one back
    assert same_content(target, old if failing_call < 3 else new)
    AtomicDebris.sweep(tmp_path, ["target"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old", "target"]


KILLED_REPLACE = """
import os, sys
from brackit.data import load_dataset, save_dataset
from brackit.files import os as files_os
new, target, kill_at = load_dataset(sys.argv[1]), sys.argv[2], int(sys.argv[3])
replace, calls = os.replace, []
def replace_then_die(src, dst):
    calls.append(dst)
    if len(calls) == kill_at:
        os._exit(9)  # a kill: no handler, no cleanup runs
    return replace(src, dst)
files_os.replace = replace_then_die
save_dataset(new, target, format="minari")
"""


def test_a_kill_between_the_renames_is_recovered_by_the_next_load_or_write(tmp_path):
    old = pendulum_dataset(tmp_path / "old", seed=0, fmt="minari")
    new = pendulum_dataset(tmp_path / "new", seed=1, fmt="minari")
    for name in ("a", "b"):
        shutil.copytree(old, tmp_path / name)
    killed = [
        subprocess.Popen([sys.executable, "-c", KILLED_REPLACE, str(new), str(tmp_path / name), "2"])
        for name in ("a", "b")
    ]
    assert [process.wait(timeout=300) for process in killed] == [9, 9]
    for name in ("a", "b"):  # the old copy was moved aside, the new one not yet in place
        assert not (tmp_path / name).exists()
        assert len(list(tmp_path.glob(f".{name}.*.old"))) == 1
    assert same_content(tmp_path / "a", old)  # a load restores the old one
    save_dataset(load_dataset(new), tmp_path / "b", format="minari")  # so does a write, then replaces it
    assert same_content(tmp_path / "b", new)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".old")) == []
    temporaries = sorted(tmp_path.glob(".*.tmp"))  # the new copies the kills left: swept
    assert len(temporaries) == 2 and AtomicDebris.sweep(tmp_path, ["a", "b"]) == temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "new", "old"]


def test_a_killed_replace_is_restored_by_the_sweep_and_stale_trash_removed(tmp_path):
    old = pendulum_dataset(tmp_path / "t", fmt="minari")
    trash = tmp_path / ".t.abcd1234.old"
    trash.mkdir()
    os.replace(old, trash / "old")  # the state a kill between the two renames leaves
    empty = tmp_path / ".t.zzzz9999.old"  # a kill before the first rename: nothing to restore
    empty.mkdir()
    AtomicDebris.sweep(tmp_path, ["t"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert load_dataset(tmp_path / "t").size == 60


# ----------------------------------------------------------------------------------------- 3. CLI


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EROFS])
def test_a_failed_write_names_its_target_and_keeps_the_old_file(tmp_path, monkeypatch, code):
    target = tmp_path / "checkpoint.npz"
    target.write_text("previous")

    def full_disk(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files_module.os, "fsync", full_disk)
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        tmp.write_text("next")
    assert info.value.errno == code and info.value.filename == str(target)
    assert user_error_line(info.value) == f"{target}: {os.strerror(code)}"
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_user_errors_are_one_line_and_bugs_are_not():
    import gymnasium as gym

    with pytest.raises(gym.error.Error) as unknown:
        gym.make("NoSuchEnv-v0")
    assert user_error_line(unknown.value).startswith("gymnasium: ")
    assert (
        user_error_line(PermissionError(errno.EACCES, "Permission denied", "/x")) == "/x: Permission denied"
    )
    assert user_error_line(OSError(errno.EIO, "Input/output error", "/x")) is None  # not predictable
    assert user_error_line(ValueError("a bug")) is None
    assert user_error_line(KeyError("a bug")) is None


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    data = pendulum_dataset(tmp_path / "p.npz")
    logdir = tmp_path / "run"
    checkpoint = logdir / "checkpoint.npz"
    fsync = os.fsync

    def disk_full_at_the_second_checkpoint(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if Path(name).name.startswith(".checkpoint.npz.") and checkpoint.exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)

    monkeypatch.setattr(files_module.os, "fsync", disk_full_at_the_second_checkpoint)
    args = ["--steps", "4", "--chunk-steps", "2", "--checkpoint-every", "2", "--eval-episodes", "0"]
    capsys.readouterr()
    status = main(
        ["train", "bc", "--data", str(data), "--logdir", str(logdir), *TINY_BC, *args, "--no-tensorboard"]
    )
    assert_one_line(status, capsys.readouterr().err, str(checkpoint), "No space left on device")
    assert read_record(checkpoint)["step"] == 2  # the step-2 checkpoint, whole
    load_run(checkpoint)
    assert not list(logdir.glob(".*.tmp"))


def test_unreadable_dataset_and_unwritable_logdir_are_one_line(tmp_path, monkeypatch, capsys):
    """Tests run as root, where chmod 000 denies nothing: the PermissionError is injected."""
    data, readable = pendulum_dataset(tmp_path / "p.npz"), pendulum_dataset(tmp_path / "r.npz")
    d4rl = write_d4rl(tmp_path / "d.hdf5")
    real_open, real_mkdir = builtins.open, pathlib.Path.mkdir
    locked = tmp_path / "locked"

    def guarded_open(file, *args, **kwargs):
        if str(file) in (str(data), str(d4rl)):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_mkdir(self, *args, **kwargs):
        if self == locked or locked in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(pathlib.Path, "mkdir", guarded_mkdir)
    capsys.readouterr()
    for path in (data, d4rl):
        assert_one_line(
            main(["data", "info", str(path)]), capsys.readouterr().err, str(path), "Permission denied"
        )
    with pytest.raises(PermissionError):  # not reported as a corrupted file
        read_npz(data)

    def denied(*args, **kwargs):  # h5py opens files in C, past builtins.open
        raise PermissionError(errno.EACCES, "Unable to synchronously open file")

    monkeypatch.setattr(h5py, "File", denied)
    with pytest.raises(PermissionError) as info:
        read_d4rl(d4rl)
    assert info.value.filename == str(d4rl)
    logdir = locked / "run"
    status = main(["train", "bc", "--data", str(readable), "--logdir", str(logdir), *TINY_BC, "--steps", "2"])
    assert_one_line(status, capsys.readouterr().err, str(locked), "Permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes through chmod 000")
def test_chmod_000_through_the_entry_point(tmp_path):
    unreadable = pendulum_dataset(tmp_path / "u.npz")
    unreadable.chmod(0)
    data = pendulum_dataset(tmp_path / "p.npz")
    (tmp_path / "ro").mkdir(mode=0o500)
    logdir = tmp_path / "ro" / "run"
    results = run_entry_points(
        [["data", "info", str(unreadable)], ["train", "bc", "--data", str(data), "--logdir", str(logdir)]]
    )
    assert_one_line(*results[0], str(unreadable), "Permission denied")
    assert_one_line(*results[1], str(logdir), "Permission denied")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step BC run on Pendulum-shaped data, and its checkpoint."""
    folder = tmp_path_factory.mktemp("trained")
    data = pendulum_dataset(folder / "p.npz")
    run_training(
        "bc",
        data,
        logdir=folder / "run",
        steps=2,
        eval_episodes=0,
        overrides={"hidden": (8, 8), "batch_size": 8},
        tensorboard=False,
    )
    return data, folder / "run" / "checkpoint.npz"


def with_env_id(source: Path, target: Path, env_id: str) -> Path:
    """A copy of a checkpoint whose recorded run names ``env_id``."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    record = json.loads(str(arrays.pop("record_json")))
    record["metadata"]["run"]["env_id"] = env_id
    with open(target, "wb") as handle:
        np.savez(handle, record_json=np.array(json.dumps(record)), **arrays)
    return target


def test_user_errors_through_the_entry_point_are_one_line(tmp_path, trained):
    data, checkpoint = trained
    unknown = with_env_id(checkpoint, tmp_path / "unknown.npz", "NoSuchEnv-v0")
    wrong = with_env_id(checkpoint, tmp_path / "wrong.npz", "MountainCarContinuous-v0")  # obs 2, not 3
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("mine")
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    malformed = write_d4rl(tmp_path / "d.hdf5", observations="group")
    cases = [
        (["eval", str(unknown), "--episodes", "1"], [str(unknown), "NoSuchEnv-v0"]),
        (["eval", str(wrong), "--episodes", "1"], [str(wrong), "width 3", "MountainCarContinuous-v0 has 2"]),
        (["data", "convert", str(data), str(existing)], [str(existing), "directory"]),
        (
            ["data", "convert", str(data), str(existing), "--format", "minari"],
            [str(existing), "not a Minari"],
        ),
        (["data", "convert", str(data), str(a_file), "--format", "minari"], [str(a_file), "not a directory"]),
        (
            ["train", "bc", "--data", str(data), "--logdir", str(a_file), *TINY_BC, "--steps", "2"],
            [str(a_file)],
        ),
        (["data", "info", str(malformed)], [str(malformed), "observations", "a group"]),
        (["eval", str(tmp_path / "missing.npz")], [str(tmp_path / "missing.npz")]),
    ]
    results = run_entry_points([args for args, _ in cases])
    for (args, needles), (status, err) in zip(cases, results, strict=True):
        assert status == 2, (args, err)
        assert_one_line(status, err, *needles)
    assert (existing / "mine.txt").read_text() == "mine" and sorted(os.listdir(existing)) == ["mine.txt"]
    assert a_file.read_text() == "mine"


def test_convert_replaces_an_existing_minari_dataset_and_fills_an_empty_directory(tmp_path, capsys):
    old = pendulum_dataset(tmp_path / "m", seed=0, fmt="minari")
    new = pendulum_dataset(tmp_path / "n.npz", seed=1)
    (tmp_path / "empty").mkdir()
    assert main(["data", "convert", str(new), str(old), "--format", "minari"]) == 2  # not without asking
    assert main(["data", "convert", str(new), str(old), "--format", "minari", "--overwrite"]) == 0
    assert main(["data", "convert", str(new), str(tmp_path / "empty"), "--format", "minari"]) == 0
    assert same_content(old, new) and same_content(tmp_path / "empty", new)


# ----------------------------------------------------------------------------------------- 4. property

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_]
SPECIALS = [np.nan, np.inf, -np.inf, 1e39, -1e39, 2.0, 0.5, 3e38]


@st.composite
def malformed_fields(draw, base: dict[str, np.ndarray]):
    """``base`` arrays with random changes: dtype, one special value, rank, length, width, absence."""
    arrays = {}
    for name, array in base.items():
        rank = array.ndim
        if draw(st.integers(0, len(base) - 1)) == 0:  # about one field in each example
            change = draw(st.sampled_from(["dtype", "special", "rank", "length", "width", "absent"]))
            if change == "dtype":
                with np.errstate(all="ignore"):
                    array = array.astype(draw(st.sampled_from(DTYPES)))
            elif change == "special" and array.size:
                array = array.astype(np.float64)
                flat = array.reshape(-1)
                flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(SPECIALS))
            elif change == "rank":
                array = array[..., None] if draw(st.booleans()) else np.asarray(array.reshape(-1)[:1].sum())
            elif change == "length":
                array = array[:-1] if draw(st.booleans()) else np.concatenate([array, array[:1]])
            elif change == "width" and rank == 2:
                array = array[:, :0]
            elif change == "absent":
                continue
        arrays[name] = array
    return arrays


def d4rl_base(n: int, obs: int, act: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "observations": rng.normal(size=(n, obs)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": rng.random(n) < 0.3,
        "timeouts": rng.random(n) < 0.3,
        "next_observations": rng.normal(size=(n, obs)).astype(np.float32),
    }


def npz_base(n: int, obs: int, act: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    action = rng.uniform(-1, 1, size=(n, act)).astype(np.float32)
    return {
        "obs": rng.normal(size=(n, obs)).astype(np.float32),
        "action": action,
        "reward": rng.normal(size=n).astype(np.float32),
        "discount": (rng.random(n) < 0.7).astype(np.float32),
        "next_obs": rng.normal(size=(n, obs)).astype(np.float32),
        "next_action": action,
        "next_action_valid": np.ones(n, bool),
        "episode_id": np.zeros(n, np.int32),
        "timeout": np.zeros(n, bool),
    }


def assert_usable(dataset) -> None:
    arrays = dataset.host_arrays()
    n, obs, act = dataset.size, dataset.card.obs_dim, dataset.card.action_dim
    assert n > 0 and obs > 0 and act > 0
    shapes = {"obs": (n, obs), "next_obs": (n, obs), "action": (n, act), "next_action": (n, act)}
    for name in ARRAY_FIELDS:
        assert arrays[name].shape == shapes.get(name, (n,)), name
        if arrays[name].dtype.kind == "f":
            assert arrays[name].dtype == np.float32 and np.isfinite(arrays[name]).all(), name
    assert np.isfinite(dataset.card.action_low).all() and np.isfinite(dataset.card.action_high).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["d4rl", "npz"]),
    n=st.integers(0, 4),
    obs=st.integers(0, 3),
    act=st.integers(0, 2),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_any_small_malformed_file_loads_usable_or_raises_dataset_error(fmt, n, obs, act, seed, data):
    rng = np.random.default_rng(seed)
    base = (d4rl_base if fmt == "d4rl" else npz_base)(n, obs, act, rng)
    arrays = data.draw(malformed_fields(base))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x.{'hdf5' if fmt == 'd4rl' else 'npz'}"
        if fmt == "d4rl":
            with h5py.File(path, "w") as handle:
                for name, array in arrays.items():
                    if data.draw(st.integers(0, 19)) == 0:  # now and then a group in an array's place
                        handle.create_group(name)
                    else:
                        handle.create_dataset(name, data=array)
        else:
            card = {
                "env_id": None,
                "obs_dim": obs,
                "action_dim": act,
                "action_low": [-1.0] * act,
                "action_high": [1.0] * act,
                "num_transitions": n,
                "num_episodes": 1,
                "source_format": "test",
                "sha256": "0" * 64,
                "extra": {},
            }
            with contextlib.suppress(Exception), np.errstate(all="ignore"):  # the hash of the stored form
                card["sha256"] = content_sha256(
                    {k: np.asarray(v).astype(base[k].dtype) for k, v in arrays.items()}
                )
            np.savez(path, card_json=np.array(json.dumps(card)), **arrays)
        try:
            dataset = load_dataset(path)
        except DatasetError as error:
            assert str(path) in str(error) and "\n" not in str(error)
            return
        assert_usable(dataset)
