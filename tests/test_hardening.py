"""Hardening: declared config ranges (one validator), CLI options checked before any write, debris of killed
atomic writes removed, SIGINT/SIGTERM stop with the checkpoint intact (exit 130/143), TensorBoard events
without duplicated steps after a resume, one process per logdir (and study directory), checkpoints bound
to their run."""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import jax
import numpy as np
import pytest
from helpers import random_episode_arrays
from hypothesis import given, settings
from hypothesis import strategies as st

from brackit import loggers
from brackit.algos import ALGORITHMS
from brackit.algos.bc import BCConfig
from brackit.algos.bcq import BCQConfig
from brackit.algos.bear import BEARConfig
from brackit.algos.brac import BRACConfig, SACOfflineConfig
from brackit.algos.td3bc import ReBRACConfig
from brackit.checkpoint import read_record
from brackit.cli import main
from brackit.config_checks import FieldRange, check_ranges, declared_ranges
from brackit.data import make_dataset, save_dataset
from brackit.errors import ConfigError
from brackit.files import AtomicDebris, DirectoryInUseError, DirectoryLock, atomic_path
from brackit.protocol import sac
from brackit.run import load_run, run_training
from brackit.rundir import RunDir
from brackit.study import run_study

CONFIG_CLASSES = sorted({algo.config_cls for algo in ALGORITHMS.values()} | {sac.SACConfig}, key=str)
TINY_BC = ["--set", "hidden=8,8", "--set", "batch_size=8"]
TINY_OVERRIDES = {"hidden": (8, 8), "batch_size": 8}


def pendulum_dataset(path: Path) -> Path:
    """Three random 20-step episodes with Pendulum's dims (obs 3, action 1 in [-2, 2])."""
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0)
    save_dataset(make_dataset(arrays, path=path, source_format="test", env_id="Pendulum-v1"), path)
    return path


def brackit_entry_point() -> list[str]:
    """The installed ``brackit`` script next to this interpreter (the module as a fallback)."""
    script = Path(sys.executable).parent / "brackit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "brackit.cli"]


def bc_args(data: Path, logdir: Path, *extra: str) -> list[str]:
    return ["train", "bc", "--data", str(data), "--logdir", str(logdir), *TINY_BC, *extra]


def assert_same_states(a: object, b: object) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------------------- 1. ranges


def test_every_numeric_field_of_every_config_declares_a_range():
    for config_cls in CONFIG_CLASSES:
        ranges = declared_ranges(config_cls)  # a numeric field without a range is a TypeError
        assert ranges, config_cls
        check_ranges(config_cls())  # the defaults are in range
    assert declared_ranges(BRACConfig)["gamma"][1].text == "[0, 1]"
    assert declared_ranges(BRACConfig)["critic_hidden"][0] == "ints"

    @dataclasses.dataclass(frozen=True)
    class Undeclared:
        batch_size: int = 1  # a conventional range (convention_range)
        num_things: int = 1

    @dataclasses.dataclass(frozen=True)
    class NotNumeric:
        name: Annotated[str, ">= 1"] = "x"

    @dataclasses.dataclass(frozen=True)
    class Overridden(Undeclared):
        batch_size: Annotated[int, ">= 4"] = 4  # a declared range replaces the conventional one
        num_things: Annotated[int, "[0, 2]"] = 1

    @dataclasses.dataclass(frozen=True)
    class NoneDisagrees:
        num_things: Annotated[int | None, ">= 1"] = None

    with pytest.raises(TypeError, match=r"Undeclared\.num_things is numeric but declares no range"):
        declared_ranges(Undeclared)
    with pytest.raises(TypeError, match=r"NotNumeric\.name declares the range '>= 1' but is not numeric"):
        declared_ranges(NotNumeric)
    with pytest.raises(TypeError, match=r"NoneDisagrees\.num_things: its range '>= 1' and its type disagree"):
        declared_ranges(NoneDisagrees)
    assert {k: r.text for k, (_, r) in declared_ranges(Overridden).items()} == {
        "batch_size": ">= 4",
        "num_things": "[0, 2]",
    }
    with pytest.raises(ConfigError, match=r"Overridden\.num_things must be in \[0, 2\], got 3"):
        check_ranges(Overridden(num_things=3))

    @dataclasses.dataclass(frozen=True)
    class NewDefault(Overridden):
        num_things: int = 2  # a new default keeps the base's declared range

    assert declared_ranges(NewDefault)["num_things"][1].text == "[0, 2]"
    assert (
        declared_ranges(SACOfflineConfig)["alpha_entropy"][1].text
        == declared_ranges(BRACConfig)["alpha_entropy"][1].text
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BRACConfig(batch_size=0), "BRACConfig.batch_size must be >= 1, got 0"),
        (lambda: BRACConfig(critic_lr=-1.0), "BRACConfig.critic_lr must be > 0 and finite, got -1.0"),
        (lambda: BRACConfig(alpha=math.nan), "BRACConfig.alpha must be >= 0 and finite or None, got nan"),
        (lambda: BRACConfig(alpha=math.inf), "BRACConfig.alpha must be >= 0 and finite or None, got inf"),
        (lambda: BRACConfig(gamma=1.5), "BRACConfig.gamma must be in [0, 1], got 1.5"),
        (lambda: BRACConfig(tau=0.0), "BRACConfig.tau must be in (0, 1], got 0.0"),
        (
            lambda: BRACConfig(critic_hidden=(8, 0)),
            "BRACConfig.critic_hidden must be a tuple with every entry >= 1, got (8, 0)",
        ),
        (lambda: BRACConfig(warm_start_steps=-1), "BRACConfig.warm_start_steps must be >= 0, got -1"),
        (lambda: BRACConfig(num_divergence_samples=0), "BRACConfig.num_divergence_samples must be >= 1"),
        (lambda: BRACConfig(batch_size=8.0), "BRACConfig.batch_size must be an integer >= 1, got 8.0"),
        (lambda: BRACConfig(batch_size=True), "BRACConfig.batch_size must be an integer >= 1, got True"),
        (lambda: BRACConfig(target_entropy=-math.inf), "BRACConfig.target_entropy must be finite or None"),
        (lambda: BRACConfig(behavior=BCConfig(learning_rate=0.0)), "BCConfig.learning_rate must be > 0"),
        (lambda: BCConfig(entropy_lr=0.0), "BCConfig.entropy_lr must be > 0 and finite or None, got 0.0"),
        (lambda: BCQConfig(phi=3.0), "BCQConfig.phi must be in [0, 2], got 3.0"),
        (lambda: BCQConfig(vae_hidden=(750, -1)), "BCQConfig.vae_hidden must be a tuple with every entry"),
        # ranges declared by a base class (algos.common.VAEConfig) hold in every subclass
        (lambda: BCQConfig(latent_dim=-1), "BCQConfig.latent_dim must be >= 0, got -1"),
        (lambda: BEARConfig(kl_weight=-0.5), "BEARConfig.kl_weight must be >= 0 and finite, got -0.5"),
        (lambda: BEARConfig(epsilon=-0.1), "BEARConfig.epsilon must be >= 0 and finite, got -0.1"),
        (lambda: BEARConfig(num_act_samples=0), "BEARConfig.num_act_samples must be >= 1, got 0"),
        (
            lambda: ReBRACConfig(beta_actor=math.nan),
            "ReBRACConfig.beta_actor must be >= 0 and finite, got nan",
        ),
        (lambda: ALGORITHMS["td3bc"].config_cls(q_scale=0.0), "TD3BCConfig.q_scale must be > 0"),
        (lambda: sac.SACConfig(num_envs=0), "SACConfig.num_envs must be >= 1, got 0"),
    ],
)
def test_out_of_range_values_name_class_field_range_and_value(build, message):
    with pytest.raises(ConfigError) as error:
        build()
    assert str(error.value).startswith(message), str(error.value)


def test_range_grammar():
    closed = FieldRange.parse("[0, 1]")
    assert closed.contains(0.0) and closed.contains(1) and not closed.contains(1.0000001)
    half_open = FieldRange.parse("(0, 1]")
    assert not half_open.contains(0.0) and half_open.contains(1.0) and not half_open.contains(math.nan)
    assert FieldRange.parse(">= 1").contains(10**400) and not FieldRange.parse(">= 1").contains(0)
    assert FieldRange.parse("> 0 or None").allow_none and not FieldRange.parse("> 0").allow_none
    assert FieldRange.parse("finite").contains(-1e300) and not FieldRange.parse("finite").contains(-math.inf)
    assert FieldRange.parse("< 2").contains(1.5) and not FieldRange.parse("<= 2").contains(2.5)
    with pytest.raises(ValueError, match="not a range"):
        FieldRange.parse("positive")


_OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def oracle(text: str, kind: str, value: object) -> bool:
    """An independent reading of a declared range (for the property test)."""
    if text.endswith(" or None") and value is None:
        return True
    text = text.removesuffix(" or None")
    if kind in ("ints", "floats"):
        return isinstance(value, tuple) and all(oracle(text, kind[:-1], v) for v in value)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "int" and not isinstance(value, int):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, int) and kind == "float" and abs(value) > 1e308:
        return False
    if text == "finite":
        return True
    if match := re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", text):
        left, low, high, right = match.groups()
        above = value >= float(low) if left == "[" else value > float(low)
        return above and (value <= float(high) if right == "]" else value < float(high))
    op, bound = text.split()
    return _OPERATORS[op](value, float(bound))


def field_values(kind: str, optional: bool) -> st.SearchStrategy:
    ints = st.one_of(st.integers(-3, 3), st.integers(-(2**70), 2**70))
    floats = st.one_of(
        st.floats(),
        st.floats(-2.0, 2.0),
        st.sampled_from([0.0, -0.0, 1.0, 0.5, 2.0, math.nan, math.inf, -math.inf]),
        st.integers(-3, 3),
    )
    base = {
        "int": ints,
        "float": floats,
        "ints": st.lists(st.integers(-2, 40), max_size=3).map(tuple),
        "floats": st.lists(floats, max_size=3).map(tuple),
    }[kind]
    wrong = st.sampled_from([None, "1", True, 2.5, [8, 8]])  # wrong types too: never a TypeError
    return st.one_of(base, st.none(), wrong) if optional else st.one_of(base, base, wrong)


@pytest.mark.parametrize("config_cls", CONFIG_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_numeric_values_build_in_range_or_raise_config_error(config_cls, data):
    ranges = declared_ranges(config_cls)
    names = data.draw(st.sets(st.sampled_from(sorted(ranges)), max_size=4), label="fields")
    values = {
        name: data.draw(field_values(ranges[name][0], ranges[name][1].allow_none), label=name)
        for name in sorted(names)
    }
    try:
        config = config_cls(**values)
    except ConfigError:
        return  # a value out of range, or a cross-field check (e.g. SAC's buffer_size >= batch_size)
    for name, (kind, field_range) in ranges.items():
        assert oracle(field_range.text, kind, getattr(config, name)), (name, getattr(config, name))


def test_cli_rejects_bad_options_in_one_line_and_writes_nothing(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cases = {
        "--seeds 0": ["--seeds", "0"],
        "--seeds -2": ["--seeds", "-2"],
        "--eval-episodes -1": ["--eval-episodes", "-1"],
        "--chunk-steps 0": ["--chunk-steps", "0"],
        "batch_size=0": ["--set", "batch_size=0"],
        "alpha=nan": ["--set", "alpha=nan"],
        "critic_lr=-1": ["--set", "critic_lr=-1"],
    }
    expected = {
        "--seeds 0": "--seeds must be in [1, 65536], got 0",
        "--seeds -2": "--seeds must be in [1, 65536], got -2",
        "--eval-episodes -1": "--eval-episodes must be in [0, 65536], got -1",
        "--chunk-steps 0": "--chunk-steps must be a positive integer, got 0",
        "batch_size=0": "BRACConfig.batch_size must be >= 1, got 0",
        "alpha=nan": "BRACConfig.alpha must be >= 0 and finite or None, got nan",
        "critic_lr=-1": "BRACConfig.critic_lr must be > 0 and finite, got -1.0",
    }
    logdir = tmp_path / "run"
    base = [*brackit_entry_point(), "train", "brac", "--data", str(data), "--logdir", str(logdir)]
    processes = {  # in parallel: each start imports jax
        name: subprocess.Popen(
            [*base, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in cases.items()
    }
    for name, process in processes.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2, (name, err)
        assert "Traceback" not in err, (name, err)
        assert err.strip().splitlines() == [f"error: {expected[name]}"], (name, err)
    assert not logdir.exists() and list(cwd.iterdir()) == []


def test_a_sweep_value_out_of_range_is_refused_before_any_write(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz")
    with pytest.raises(ConfigError, match=r"BRACConfig\.alpha must be >= 0"):
        run_training(
            "brac", data, logdir=tmp_path / "run", steps=2, sweep={"alpha": [0.1, -1.0]}, eval_episodes=0
        )
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------- 2. debris


KILLED_WRITE = """
import os, signal, sys
from brackit.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temporaries_of_a_killed_atomic_write_are_removed_on_the_next_start(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz")
    logdir = tmp_path / "run"
    common = {"steps": 2, "eval_episodes": 0, "overrides": TINY_OVERRIDES, "tensorboard": False}
    run_training("bc", data, logdir=logdir, **common)
    checkpoint = (logdir / "checkpoint.npz").read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(logdir / "checkpoint.npz")], check=False)
    assert killed.returncode == -signal.SIGKILL
    (debris,) = logdir.glob(".checkpoint.npz.*.tmp")  # the kill skipped atomic_path's cleanup
    assert debris.read_bytes() == b"half a checkpoint"
    assert (logdir / "checkpoint.npz").read_bytes() == checkpoint  # the target is untouched
    stale_trash = logdir / ".metrics.jsonl.k2j4h5g6.old"  # a replaced directory's trash, target present
    (stale_trash / "old").mkdir(parents=True)
    only_copy = logdir / ".tensorboard.a1b2c3d4.old"  # its target is missing: the only copy, restored
    (only_copy / "old").mkdir(parents=True)
    (only_copy / "old" / "events").write_text("kept")
    keep = [
        logdir / ".notes.txt.abcdefgh.tmp",  # the pattern, but not a file a run writes
        logdir / ".checkpoint.npz.keep",
        logdir / "checkpoint.npz.tmp",
        logdir / ".checkpoint.npz.TOOLONG99.tmp",
        logdir / "mine.tmp",
    ]
    for path in keep:
        path.write_text("mine")
    assert AtomicDebris.matches(debris, RunDir.FILES)
    assert not any(AtomicDebris.matches(path, RunDir.FILES) for path in keep)
    run_training("bc", data, logdir=logdir, resume=True, **common)  # the next start in that logdir
    assert not debris.exists() and not stale_trash.exists()
    assert not only_copy.exists() and (logdir / "tensorboard" / "events").read_text() == "kept"
    assert all(path.read_text() == "mine" for path in keep)
    assert read_record(logdir / "checkpoint.npz")["step"] == 2


def tensorboard_events(directory: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in a run's tfevents files: records framed as uint64 length,
    uint32 crc, an Event proto, uint32 crc (parsed with tensorboardX's protos)."""
    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 8], "little")
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            out += [(value.tag, event.step, value.simple_value) for value in event.summary.value]
    return out


SIGNAL_RUN = ["--steps", "8", "--chunk-steps", "1", "--checkpoint-every", "4", "--eval-episodes", "0"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 8-step BC run (checkpoints every 4 steps, TensorBoard on)."""
    folder = tmp_path_factory.mktemp("reference")
    data = pendulum_dataset(folder / "p.npz")
    assert main(bc_args(data, folder / "ref", *SIGNAL_RUN, "--tensorboard")) == 0
    return data, folder / "ref"


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_with_its_checkpoint_then_resume_matches(
    reference_run, tmp_path, monkeypatch, capsys, signum, status
):
    data, reference = reference_run
    logdir = tmp_path / "cut"
    write = loggers.TensorBoard.write

    def write_then_signal(self, entry):  # the fault: a signal two chunks past the step-4 checkpoint
        write(self, entry)
        if entry["phase"] == "train" and entry["step"] == 6:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(loggers.TensorBoard, "write", write_then_signal)
    capsys.readouterr()
    assert main(bc_args(data, logdir, *SIGNAL_RUN, "--tensorboard")) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"interrupted by {signal.Signals(signum).name}"), err
    assert read_record(logdir / "checkpoint.npz")["step"] == 4
    before = [
        step for tag, step, _ in tensorboard_events(logdir / "tensorboard" / "seed0") if tag == "bc/loss"
    ]
    assert before == [1, 2, 3, 4, 5, 6]  # steps 5 and 6 are past the checkpoint: a resume redoes them
    assert not list(logdir.glob(".*.tmp"))
    monkeypatch.setattr(loggers.TensorBoard, "write", write)
    assert main(bc_args(data, logdir, *SIGNAL_RUN, "--tensorboard")) == 2  # refused without --resume
    assert main(bc_args(data, logdir, *SIGNAL_RUN, "--tensorboard", "--resume")) == 0
    assert_same_states(load_run(reference / "checkpoint.npz")[2], load_run(logdir / "checkpoint.npz")[2])
    events = tensorboard_events(logdir / "tensorboard" / "seed0")
    keys = [(tag, step) for tag, step, _ in events]
    assert len(keys) == len(set(keys)), "a step appears twice"
    expected = tensorboard_events(reference / "tensorboard" / "seed0")
    assert sorted(keys) == sorted((tag, step) for tag, step, _ in expected)
    values = {(tag, step): value for tag, step, value in events if not tag.startswith("time/")}
    assert values == {(tag, step): value for tag, step, value in expected if not tag.startswith("time/")}


def test_sigint_through_the_entry_point_exits_130_with_a_loadable_checkpoint(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz")
    logdir = tmp_path / "run"
    many = [
        "--steps",
        "100000000",
        "--chunk-steps",
        "100",
        "--checkpoint-every",
        "100",
        "--eval-episodes",
        "0",
    ]
    command = [*brackit_entry_point(), *bc_args(data, logdir, *many, "--no-tensorboard")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = logdir / "checkpoint.npz"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the condition, not timing the fault
    assert checkpoint.exists(), process.communicate(timeout=60)[1] if process.poll() is not None else "slow"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGINT"), err
    spec, _, states = load_run(checkpoint)  # whole and loadable
    assert spec.steps == 100_000_000 and 0 < read_record(checkpoint)["step"] < spec.steps
    assert jax.tree.leaves(states)
    assert not list(logdir.glob(".*.tmp"))
    DirectoryLock(logdir).acquire().release()  # the lock went with the process


# ----------------------------------------------------------------------------------------- 3. locks


def test_a_second_process_on_a_locked_logdir_is_refused_in_one_line(tmp_path):
    data = pendulum_dataset(tmp_path / "p.npz")
    logdir = tmp_path / "run"
    with DirectoryLock(logdir):  # this process holds the logdir, as a running `brackit train` would
        result = subprocess.run(
            [*brackit_entry_point(), *bc_args(data, logdir, "--steps", "2", "--eval-episodes", "0")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        with pytest.raises(DirectoryInUseError, match=rf"pid {os.getpid()}\)"):
            run_training("bc", data, logdir=logdir, steps=2, eval_episodes=0, overrides=TINY_OVERRIDES)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {logdir} is in use by another brackit process (pid {os.getpid()}); wait for it to finish "
        "or stop it, or choose another directory"
    ]
    assert sorted(p.name for p in logdir.iterdir()) == [".lock"]  # nothing else written
    run_training("bc", data, logdir=logdir, steps=2, eval_episodes=0, overrides=TINY_OVERRIDES)  # free now
    run_training("bc", data, logdir=logdir, steps=2, eval_episodes=0, overrides=TINY_OVERRIDES, resume=True)


def test_a_study_directory_in_use_is_refused(tmp_path):
    pendulum_dataset(tmp_path / "d.npz")
    spec = tmp_path / "study.toml"
    spec.write_text(
        'name = "tiny"\ndatasets = ["d.npz"]\nsteps = 2\nseeds = 1\neval_episodes = 0\nchunk_steps = 2\n\n'
        '[[variants]]\nname = "bc"\nalgorithm = "bc"\nset = { hidden = [8, 8], batch_size = 8 }\n'
    )
    out = tmp_path / "out"
    with DirectoryLock(out), pytest.raises(DirectoryInUseError, match="is in use by another brackit process"):
        run_study(spec, out)
    assert not (out / "study.json").exists()
    (result,) = run_study(spec, out)
    assert result.status == "trained"


# ----------------------------------------------------------------------------------------- 4. binding


def rewrite_record(path: Path, change) -> None:
    """Rewrites a checkpoint's JSON record in place (its arrays untouched)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    record = json.loads(str(arrays.pop("record_json")))
    change(record)
    with open(path, "wb") as handle:
        np.savez(handle, record_json=np.array(json.dumps(record)), **arrays)


def test_a_checkpoint_from_another_run_is_refused_and_unbound_ones_resume(tmp_path, capsys):
    data = pendulum_dataset(tmp_path / "p.npz")
    args = ["--steps", "4", "--chunk-steps", "2", "--checkpoint-every", "2", "--eval-episodes", "0"]
    assert main(bc_args(data, tmp_path / "a", *args, "--no-tensorboard")) == 0
    assert main(bc_args(data, tmp_path / "b", *args, "--no-tensorboard", "--set", "learning_rate=1e-3")) == 0
    record = read_record(tmp_path / "a" / "checkpoint.npz")
    spec = RunDir(tmp_path / "a").read_spec()
    assert record["run_sha256"] == spec.identity_sha256()
    moved = dataclasses.replace(spec, data="elsewhere.npz", provenance={"jax": "0"})
    assert moved.identity_sha256() == spec.identity_sha256()  # path and versions are not the run
    assert dataclasses.replace(spec, steps=5).identity_sha256() != spec.identity_sha256()
    # b's checkpoint copied into a: same structure, another run; the resume names both files
    shutil.copy(tmp_path / "b" / "checkpoint.npz", tmp_path / "a" / "checkpoint.npz")
    capsys.readouterr()
    assert main(bc_args(data, tmp_path / "a", *args, "--no-tensorboard", "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to another run" in err[0], err
    assert str(tmp_path / "a" / "checkpoint.npz") in err[0] and str(tmp_path / "a" / "run.json") in err[0]
    # a checkpoint written before the binding existed (no run_sha256) still resumes
    rewrite_record(tmp_path / "b" / "checkpoint.npz", lambda r: r.pop("run_sha256"))
    assert "run_sha256" not in read_record(tmp_path / "b" / "checkpoint.npz")
    b_args = [*args, "--no-tensorboard", "--set", "learning_rate=1e-3", "--resume"]
    assert main(bc_args(data, tmp_path / "b", *b_args)) == 0


def test_a_checkpoint_without_run_json_is_refused_unless_overwrite(tmp_path, capsys):
    data = pendulum_dataset(tmp_path / "p.npz")
    args = ["--steps", "2", "--eval-episodes", "0", "--no-tensorboard"]
    assert main(bc_args(data, tmp_path / "a", *args)) == 0
    logdir = tmp_path / "b"
    logdir.mkdir()
    shutil.copy(tmp_path / "a" / "checkpoint.npz", logdir / "checkpoint.npz")
    before = (logdir / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        assert main(bc_args(data, logdir, *args, *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "checkpoint.npz but no run.json" in err[0] and "--overwrite" in err[0], err
    assert (logdir / "checkpoint.npz").read_bytes() == before and not (logdir / "run.json").exists()
    assert main(bc_args(data, logdir, *args, "--overwrite")) == 0
    assert (logdir / "run.json").exists()
    assert (
        read_record(logdir / "checkpoint.npz")["run_sha256"] == RunDir(logdir).read_spec().identity_sha256()
    )


def test_atomic_path_cleanup_still_runs_on_errors(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
