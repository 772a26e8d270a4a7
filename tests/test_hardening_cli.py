"""Hardening, second pass: rules across config fields (declared beside the ranges, one checker), the
extras' configs under the same ranges, ``brackit algos NAME`` showing both, and bad input on every command
as an adversarial user would type it: one line on stderr, exit status 2, nothing written (or replaced)."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Annotated

import pytest
from helpers import random_episode_arrays

from brackit.algos import ALGORITHMS
from brackit.algos.bc import BCConfig
from brackit.algos.bear import BEARConfig
from brackit.algos.brac import BRACConfig
from brackit.cli import main
from brackit.config_checks import (
    INT32_MAX,
    Rule,
    check_option,
    check_ranges,
    comparison,
    declared_rules,
    field_facts,
    rule_texts,
)
from brackit.data import make_dataset, save_dataset
from brackit.divergences import make_divergence
from brackit.errors import ConfigError
from brackit.extras import fedavg, iht, simclr
from brackit.extras import randomization as rz
from brackit.protocol.sac import SACConfig

TINY_BC = ["--set", "hidden=8,8", "--set", "batch_size=8"]


def pendulum_dataset(path: Path) -> Path:
    """Three random 20-step episodes with Pendulum's dims (obs 3, action 1 in [-2, 2])."""
    arrays = random_episode_arrays(action_dim=1, action_bound=2.0)
    save_dataset(make_dataset(arrays, path=path, source_format="test", env_id="Pendulum-v1"), path)
    return path


# ----------------------------------------------------------------------------------------- 1. rules


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: BCConfig(log_std_min=1.0),
            "BCConfig: need log_std_min <= log_std_max; got log_std_min=1.0, log_std_max=0.0",
        ),
        (
            lambda: BRACConfig(behavior=BCConfig(log_std_min=0.5, log_std_max=0.1)),
            "BCConfig: need log_std_min <= log_std_max; got log_std_min=0.5, log_std_max=0.1",
        ),
        (
            lambda: BEARConfig(initial_log_lagrange=20.0),
            "BEARConfig: need log_lagrange_min <= initial_log_lagrange <= log_lagrange_max; got "
            "log_lagrange_min=-5.0, initial_log_lagrange=20.0, log_lagrange_max=10.0",
        ),
        (
            lambda: BEARConfig(log_lagrange_min=3.0, log_lagrange_max=2.0, initial_log_lagrange=2.5),
            "BEARConfig: need log_lagrange_min <= initial_log_lagrange <= log_lagrange_max",
        ),
        (lambda: BEARConfig(log_std_max=-6.0), "BEARConfig: need log_std_min <= log_std_max"),
        (
            lambda: BRACConfig(divergence="none", tune_alpha=True),
            "BRACConfig: tune_alpha needs a divergence: set divergence to 'kl', 'mmd' or 'w', or tune_alpha "
            "to false; got tune_alpha=True, divergence='none'",
        ),
        (
            lambda: BRACConfig(tune_alpha=True, alpha=600.0),
            "BRACConfig: with tune_alpha, need alpha <= alpha_max (a tuned alpha is clipped to [0, "
            "alpha_max]); got tune_alpha=True, alpha=600.0, alpha_max=500.0",
        ),
        (lambda: SACConfig(buffer_size=10), "SACConfig: need batch_size <= buffer_size; got batch_size=256"),
        (
            lambda: SACConfig(random_steps=10),
            "SACConfig: need batch_size <= random_steps (the random steps fill the first batch)",
        ),
        (lambda: SACConfig(log_std_min=1.0), "SACConfig: need log_std_min <= log_std_max"),
        (lambda: make_divergence("mmd", "primal", sigma=-1.0), "MMD.sigma must be > 0 and finite, got -1.0"),
        (
            lambda: make_divergence("kl", "dual", penalty_weight=math.nan),
            "KL.penalty_weight must be >= 0 and finite, got nan",
        ),
        (
            lambda: BCConfig(batch_size=10**20),
            "BCConfig.batch_size must be >= 1 and within int32 (|value| <= 2147483647), got 10000",
        ),
        (
            lambda: BRACConfig(critic_hidden=(8, 2**40)),
            "BRACConfig.critic_hidden must be a tuple with every entry >= 1 and within int32",
        ),
    ],
)
def test_rules_across_fields_name_the_class_the_fields_and_their_values(build, message):
    with pytest.raises(ConfigError) as error:
        build()
    assert str(error.value).startswith(message), str(error.value)


def test_rules_hold_for_equal_bounds_and_the_defaults():
    BCConfig(log_std_min=-1.0, log_std_max=-1.0)  # a fixed std is a valid policy
    BEARConfig(log_lagrange_min=0.0, initial_log_lagrange=0.0, log_lagrange_max=0.0)
    BRACConfig(tune_alpha=True, alpha=500.0)
    BRACConfig(tune_alpha=False, alpha=600.0)  # a fixed alpha is never clipped
    SACConfig(buffer_size=256, random_steps=256)
    for algorithm in ALGORITHMS.values():
        check_ranges(algorithm.config_cls())


def test_the_rule_mechanism():
    @dataclasses.dataclass(frozen=True)
    class Window:
        RULES = (comparison("low < mid <= high", "the middle"),)
        low: Annotated[float, "finite"] = 0.0
        mid: Annotated[float, "finite"] = 1.0
        high: Annotated[float, "finite"] = 1.0

    check_ranges(Window())
    with pytest.raises(
        ConfigError, match=r"^Window: need low < mid <= high \(the middle\); got low=1\.0, mid=1"
    ):
        check_ranges(Window(low=1.0))
    with pytest.raises(ConfigError, match=r"got low=0\.0, mid=2\.0, high=1\.0$"):
        check_ranges(Window(mid=2.0))
    with pytest.raises(ConfigError, match=r"Window\.mid must be finite, got nan"):  # ranges come first
        check_ranges(Window(mid=math.nan, high=-1.0))

    @dataclasses.dataclass(frozen=True)
    class Misnamed:
        RULES = (Rule(("a", "b"), lambda a, b: a <= b, "need a <= b"),)
        a: bool = True

    with pytest.raises(TypeError, match=r"Misnamed\.RULES: 'need a <= b' names no field b"):
        declared_rules(Misnamed)
    with pytest.raises(ValueError, match="not a comparison chain"):
        comparison("low = high")


def test_options_share_the_grammar():
    check_option("--episodes", 1, ">= 1")
    check_option("--num-envs", None, ">= 1")  # an option left out
    with pytest.raises(ConfigError, match=r"^--episodes must be >= 1, got 0$"):
        check_option("--episodes", 0, ">= 1")
    with pytest.raises(ConfigError, match=r"^--steps must be >= 1 and within int32"):
        check_option("--steps", INT32_MAX + 1, ">= 1")
    with pytest.raises(ConfigError, match=r"^--target must be in \(0, 1\], got nan$"):
        check_option("--target", math.nan, "(0, 1]")


# ----------------------------------------------------------------------------------------- 2. algos NAME


def test_algos_shows_types_defaults_ranges_and_rules(capsys):
    assert main(["algos", "bear"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  epsilon: float = 0\.05 +>= 0 +Divergence threshold", out, re.M), out
    assert re.search(r"^  batch_size: int = 256 +>= 1\s*$", out, re.M)  # a conventional range
    assert re.search(r"^  critic_hidden: tuple\[int, \.\.\.\] = 400,300 +each >= 1\s*$", out, re.M)
    assert re.search(r"^  mmd_kernel: str = laplacian +'laplacian'", out, re.M)  # no range
    assert out.rstrip().endswith(
        "rules:\n  net_init must be one of 'flax', 'torch'\n"
        "  need log_lagrange_min <= initial_log_lagrange <= log_lagrange_max\n"
        "  need log_std_min <= log_std_max"
    )
    assert main(["algos", "brac"]) == 0
    out = capsys.readouterr().out
    assert "\n  behavior: need log_std_min <= log_std_max" in out  # a nested config's rule, by its place
    assert re.search(r"^  behavior\.learning_rate: float = 0\.0005 +> 0 ", out, re.M)
    assert field_facts(BRACConfig)["alpha"] == ("float | None", ">= 0 or None")
    assert rule_texts(SACConfig)[0] == "need batch_size <= buffer_size"


# ----------------------------------------------------------------------------------------- 3. extras


EXTRAS_CONFIGS = [
    fedavg.FedConfig,
    iht.RecoveryConfig,
    iht.DefenseConfig,
    rz.FitConfig,
    simclr.AugmentConfig,
    simclr.PretrainConfig,
    simclr.ProbeConfig,
    simclr.StudyConfig,
]


@pytest.mark.parametrize("config_cls", EXTRAS_CONFIGS, ids=lambda cls: cls.__name__)
def test_every_numeric_field_of_the_extras_has_a_range(config_cls):
    facts = field_facts(config_cls)  # a numeric field without a range is a TypeError
    check_ranges(config_cls())
    numeric = [name for name, (kind, _) in facts.items() if re.search(r"\b(int|float)\b", kind)]
    assert numeric and all(facts[name][1] for name in numeric), facts


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: fedavg.FedConfig(client_fraction=1.5),
            "FedConfig.client_fraction must be in [0, 1], got 1.5",
        ),
        (lambda: fedavg.FedConfig(batch_size=0), "FedConfig.batch_size must be >= 1 or None, got 0"),
        (lambda: fedavg.FedConfig(cnn_widths=(8, 8)), "FedConfig.cnn_widths must be a tuple of 3 entries"),
        (lambda: fedavg.FedConfig(seed=-1), "FedConfig.seed must be in [0, 4294967296), got -1"),
        (
            lambda: iht.RecoveryConfig(height=4, width=4, ks=(20,)),
            "RecoveryConfig: need at least one k and one t, each at most height * width (the pixels)",
        ),
        (lambda: iht.RecoveryConfig(ks=()), "RecoveryConfig: need at least one k and one t"),
        (lambda: iht.RecoveryConfig(tolerance=0.0), "RecoveryConfig.tolerance must be > 0"),
        (
            lambda: iht.DefenseConfig(budgets=(5, -1)),
            "DefenseConfig.budgets must be a tuple with every entry",
        ),
        (lambda: iht.DefenseConfig(learning_rate=-1e-3), "DefenseConfig.learning_rate must be > 0"),
        (lambda: rz.FitConfig(momentum=1.0), "FitConfig.momentum must be in [0, 1), got 1.0"),
        (lambda: rz.FitConfig(eval_block=0), "FitConfig.eval_block must be >= 1, got 0"),
        (
            lambda: simclr.AugmentConfig(crop_area=(0.9, 0.5)),
            "AugmentConfig: need crop_area low <= high; got crop_area=(0.9, 0.5)",
        ),
        (lambda: simclr.AugmentConfig(crop_area=(0.5,)), "AugmentConfig.crop_area must be a tuple of 2"),
        (lambda: simclr.AugmentConfig(contrast=1.0), "AugmentConfig.contrast must be in [0, 1), got 1.0"),
        (
            lambda: simclr.PretrainConfig(steps=7, chunk_steps=2),
            "PretrainConfig: need steps a multiple of chunk_steps; got steps=7, chunk_steps=2",
        ),
        (lambda: simclr.PretrainConfig(batch_size=1), "PretrainConfig: simclr needs batch_size >= 2"),
        (lambda: simclr.PretrainConfig(temperature=math.nan), "PretrainConfig.temperature must be > 0"),
        (lambda: simclr.ProbeConfig(l2=-1.0), "ProbeConfig.l2 must be >= 0 and finite, got -1.0"),
        (lambda: simclr.StudyConfig(salt_pepper_fraction=2.0), "StudyConfig.salt_pepper_fraction must be in"),
        (
            lambda: simclr.StudyConfig(pretrain_sizes=(4000, 500)),
            "StudyConfig: need pretrain_sizes non-empty and strictly increasing",
        ),
    ],
)
def test_extras_configs_refuse_out_of_range_values(build, message):
    with pytest.raises(ConfigError) as error:
        build()
    assert str(error.value).startswith(message), str(error.value)


# ----------------------------------------------------------------------------------------- 4. the CLI


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with a dataset, a trained 2-step BC run, an empty directory, a binary file and a TOML."""
    folder = tmp_path_factory.mktemp("adversary")
    pendulum_dataset(folder / "p.npz")
    run = ["train", "bc", "--data", str(folder / "p.npz"), "--logdir", str(folder / "run"), *TINY_BC]
    assert main([*run, "--steps", "2", "--eval-episodes", "0", "--no-tensorboard"]) == 0
    (folder / "adir").mkdir()
    (folder / "study.toml").write_text(
        'name = "s"\ndatasets = ["p.npz"]\nsteps = 2\nseeds = 100000000000\n\n'
        '[[variants]]\nname = "bc"\nalgorithm = "bc"\n'
    )
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a directory)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


TRAIN = ["train", "bc", "--data", "p.npz", "--logdir", "new", *TINY_BC]

CASES = {
    "steps beyond int32": (
        [*TRAIN, "--steps", "99999999999"],
        "--steps must be >= 1 and within int32 (|value| <= 2147483647), got 99999999999",
    ),
    "steps not a number": ([*TRAIN, "--steps", "abc"], "Invalid value for '--steps'"),
    "a million seeds": ([*TRAIN, "--seeds", "1000000"], "--seeds must be in [1, 65536], got 1000000"),
    "eval-every past steps": (
        [*TRAIN, "--steps", "5", "--eval-every", "7"],
        "--eval-every 7 is more than --steps 5: it would act only at the end",
    ),
    "checkpoint-every past steps": (
        [*TRAIN, "--steps", "5", "--checkpoint-every", "7"],
        "--checkpoint-every 7 is more than --steps 5",
    ),
    "eval-episodes huge": ([*TRAIN, "--eval-episodes", "10000000"], "--eval-episodes must be in [0, 65536]"),
    "batch size beyond int32": (
        [*TRAIN, "--set", "batch_size=100000000000000000000"],
        "BCConfig.batch_size must be >= 1 and within int32",
    ),
    "a rule across fields": ([*TRAIN, "--set", "log_std_min=1"], "BCConfig: need log_std_min <= log_std_max"),
    "an eval rule bc lacks": (
        [*TRAIN, "--eval-mode", "max_q"],
        "--eval-mode 'max_q': bc acts by one of the rules mode, sample",
    ),
    "data size of a file": ([*TRAIN, "--data-size", "10"], "--data-size 10: the size of a TASK-MIX dataset"),
    "process id without coordinator": ([*TRAIN, "--process-id", "3"], "pass --coordinator HOST:PORT too"),
    "coordinator without port": (
        [*TRAIN, "--coordinator", "nohost", "--num-processes", "2"],
        "--coordinator 'nohost': expected HOST:PORT",
    ),
    "process id past the count": (
        [*TRAIN, "--coordinator", "host:1234", "--num-processes", "2", "--process-id", "2"],
        "--process-id must be in [0, 1], got 2",
    ),
    "eval no episodes": (
        ["eval", "run/checkpoint.npz", "--episodes", "0"],
        "--episodes must be in [1, 65536]",
    ),
    "eval negative seed": (
        ["eval", "run/checkpoint.npz", "--seed", "-1"],
        "--seed must be in [0, 4294967296)",
    ),
    "eval a rule bc lacks": (["eval", "run/checkpoint.npz", "--mode", "max_q"], "--mode 'max_q': bc acts by"),
    "export over a dataset": (
        ["export", "run", "--out", "p.npz"],
        "--out p.npz: p.npz exists and is not part of an earlier export",
    ),
    "export to a directory": (["export", "run", "--out", "adir"], "--out adir: a directory"),
    "export a rule bc lacks": (["export", "run", "--out", "pol", "--mode", "max_q"], "--mode 'max_q'"),
    "study a binary file": (["study", "p.npz"], "p.npz: not a study TOML file (not UTF-8 text"),
    "study seeds beyond the cap": (
        ["study", "study.toml", "--dry-run"],
        "study.toml: seeds must be in [1, 65536]",
    ),
    "study steps cap 0": (
        ["study", "brac-paper", "--steps", "0", "--dry-run"],
        "--steps must be >= 1, got 0",
    ),
    "study seeds cap -1": (
        ["study", "brac-paper", "--seeds", "-1", "--dry-run"],
        "--seeds must be in [1, 65536]",
    ),
    "study eval-every cap 0": (
        ["study", "brac-paper", "--eval-every", "0", "--dry-run"],
        "--eval-every must be",
    ),
    "study devices 0 dry": (
        ["study", "brac-paper", "--devices", "0", "--dry-run"],
        "--devices '0': expected",
    ),
    "convert over a checkpoint": (
        ["data", "convert", "p.npz", "run/checkpoint.npz"],
        "run/checkpoint.npz already exists; pass --overwrite to replace it",
    ),
    "convert onto itself": (["data", "convert", "p.npz", "p.npz"], "p.npz, p.card.json already exist"),
    "build negative seed": (
        ["data", "build", "hopper-eps1", "--size", "100", "--seed", "-1"],
        "--seed must be in",
    ),
    "build more envs than transitions": (
        ["data", "build", "hopper-eps1", "--size", "100", "--num-envs", "101"],
        "--num-envs must be in [1, 100], got 101",
    ),
    "build over a dataset": (
        ["data", "build", "hopper-eps1", "--size", "100", "--out", "p.npz"],
        "p.npz, p.card.json already exist",
    ),
    "build size beyond int32": (
        ["data", "build", "hopper-eps1", "--size", "99999999999"],
        "--size must be >= 1",
    ),
    "bench no seeds": (["bench", "--tiny", "--seeds", "0"], "--seeds must be in [1, 65536], got 0"),
    "bench no devices": (["bench", "--tiny", "--devices", "0"], "--devices must be >= 1, got 0"),
    "bench out a directory": (["bench", "--tiny", "--out", "adir"], "--out adir: a directory"),
    "extras negative seed": (
        ["extras", "iht", "recovery", "--budget", "tiny", "--seeds", "-1", "--out", "o"],
        "--seeds must be in [0, 4294967296), got -1",
    ),
    "extras out a file": (
        ["extras", "simclr", "study", "--budget", "tiny", "--out", "p.npz"],
        "--out p.npz: not a folder",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(workspace, monkeypatch, capsys, name):
    args, message = CASES[name]
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert snapshot(workspace) == before  # nothing written, nothing replaced


def test_overwrite_and_an_earlier_export_are_replaced_when_asked(workspace, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    data = workspace / "p.npz"
    assert main(["data", "convert", str(data), "copy.npz"]) == 0
    assert main(["data", "convert", str(data), "copy.npz"]) == 2
    assert main(["data", "convert", str(data), "copy.npz", "--overwrite"]) == 0
    (tmp_path / "empty").mkdir()  # an empty directory is no output to lose
    assert main(["data", "convert", str(data), "empty", "--format", "minari"]) == 0
    assert main(["export", str(workspace / "run"), "--out", "pol"]) == 0
    assert main(["export", str(workspace / "run"), "--out", "pol", "--mode", "sample"]) == 0  # its own
    assert (tmp_path / "pol.json").read_text().count('"eval_mode": "sample"') == 1
