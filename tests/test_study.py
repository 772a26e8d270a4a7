"""Studies: TOML validation, the brac-paper preset and budgets, batching into sweeps, skip/resume on
restart, and ``--data TASK-MIX`` resolution with its cache."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import random_episode_arrays

from brackit.algos import get_algorithm
from brackit.checkpoint import read_record
from brackit.cli import main
from brackit.data import load_dataset, make_dataset, save_dataset
from brackit.errors import ConfigError
from brackit.protocol import resolve as resolve_module
from brackit.protocol.resolve import default_cache_dir, resolve_data
from brackit.run import RunError
from brackit.study import Group, load_spec, plan_study, rich_group_progress, run_study, sweepable_fields

TINY_BRAC = (
    "critic_hidden = [8, 8], actor_hidden = [8, 8], behavior.hidden = [8, 8], behavior.batch_size = 8, "
    "batch_size = 8, behavior_steps = 10, warm_start_steps = 5"
)


def tiny_dataset(path: Path) -> Path:
    """Three 20-step episodes, obs 3 / action 2, no env id (so no evaluation)."""
    save_dataset(make_dataset(random_episode_arrays(), path=path, source_format="test"), path)
    return path


def write_spec(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------- parsing

VALID = """
name = "demo"
datasets = ["hopper-eps1", "d.npz"]
steps = 1000
seeds = 2
eval_every = 500
chunk_steps = 100

[[variants]]
name = "brac-v"
algorithm = "brac"
description = "the base"
set = { penalty = "value", critic_hidden = [64, 64], behavior.hidden = [32, 32], actor_lr = "none" }
grid = { alpha = [0.1, 1] }

[[variants]]
name = "bc"
algorithm = "bc"
"""


def test_valid_spec_is_typed_and_relative_paths_follow_the_file(tmp_path):
    tiny_dataset(tmp_path / "d.npz")
    spec = load_spec(write_spec(tmp_path, VALID))
    assert spec.name == "demo" and spec.steps == 1000 and spec.seeds == 2 and spec.eval_episodes == 20
    assert spec.datasets == ("hopper-eps1", str(tmp_path / "d.npz"))
    brac = spec.variants[0]
    assert brac.overrides["critic_hidden"] == (64, 64) and brac.overrides["actor_lr"] is None
    assert brac.overrides["behavior"].hidden == (32, 32)
    assert brac.grid == {"alpha": (0.1, 1.0)} and isinstance(brac.grid["alpha"][1], float)


ONE_VARIANT = "[[variants]]\nname = 'bc'\nalgorithm = 'bc'\n"


def document(top: str = "", variants: str = ONE_VARIANT) -> str:
    """A small valid study with ``top`` lines replacing (or adding) top-level keys."""
    lines = {"name": 'name = "demo"', "datasets": 'datasets = ["hopper-pure"]', "steps": "steps = 1000"}
    for line in top.splitlines():
        lines[line.split("=")[0].strip()] = line
    return "\n".join(lines.values()) + "\n" + variants


def brac(body: str) -> str:
    return f"[[variants]]\nname = 'v'\nalgorithm = 'brac'\n{body}\n"


BAD = [
    ('nmae = "x"', ONE_VARIANT, r"unknown key 'nmae'; valid keys: name, description, datasets"),
    ("steps = 'many'", ONE_VARIANT, r"steps: expected a positive integer, got 'many'"),
    ("seeds = 0", ONE_VARIANT, r"seeds: expected a positive integer, got 0"),
    ("eval_every = true", ONE_VARIANT, r"eval_every: expected an integer >= 0"),
    ('datasets = ["hopper-eps9"]', ONE_VARIANT, r"datasets\[0\]: .*TASK-MIX.*eps1"),
    ('datasets = ["nope/x.npz"]', ONE_VARIANT, r"datasets\[0\]: 'nope/x.npz': no such dataset file"),
    ("steps = [", ONE_VARIANT, r"not valid TOML"),
    (
        "",
        "[[variants]]\nname = 'v'\nalgorithm = 'brax'\n",
        r"variants\[0\] \(v\)\.algorithm: unknown algorithm",
    ),
    ("", ONE_VARIANT + "sett = {}\n", r"variants\[0\]: unknown key 'sett'"),
    ("", ONE_VARIANT + ONE_VARIANT, r"variants\[1\]\.name: 'bc' is used twice"),
    ("", "[[variants]]\nname = 'a b'\nalgorithm = 'bc'\n", r"variants\[0\]\.name: expected letters"),
    (
        "",
        brac("set = { alpah = 1.0 }"),
        r"\(v\)\.set\.alpah: no config field 'alpah'; valid fields: num_critics",
    ),
    ("", brac("set = { num_critics = 'two' }"), r"\.set\.num_critics: expected an integer, got 'two'"),
    ("", brac("set = { behavior.hidden = 8 }"), r"\.set\.behavior\.hidden: expected a list"),
    ("", brac("grid = { alpha = 0.1 }"), r"\.grid\.alpha: expected a non-empty list"),
    ("", brac("grid = { num_critics = [2, 'x'] }"), r"\.grid\.num_critics: expected an integer, got 'x'"),
    ("", brac("set = { divergence = 'w', form = 'primal' }"), r"variants\[0\] \(v\): .*dual"),
]


@pytest.mark.parametrize(("top", "variants", "message"), BAD)
def test_bad_spec_names_the_file_and_the_key(tmp_path, top, variants, message):
    path = write_spec(tmp_path, document(top, variants))
    with pytest.raises(ConfigError, match=message) as error:
        load_spec(path)
    assert str(path) in str(error.value)


# ----------------------------------------------------------------------------------------- the preset


def test_brac_paper_preset_covers_the_design_choices_and_budgets_scale_it(tmp_path):
    spec = load_spec("brac-paper")
    tasks, mixes = (
        ("ant", "halfcheetah", "hopper", "walker2d"),
        ("pure", "eps1", "eps3", "gaussian1", "gaussian3"),
    )
    assert sorted(spec.datasets) == sorted(f"{t}-{m}" for t in tasks for m in mixes)
    assert (spec.steps, spec.seeds, spec.dataset_size, spec.eval_every, spec.eval_episodes) == (
        500_000,
        5,
        1_000_000,
        5_000,
        20,
    )
    plan = plan_study(spec, tmp_path)
    assert plan.duplicates == () and len(plan.groups) == len(spec.variants) * 20
    groups = [g for g in plan.groups if g.dataset_name == "hopper-eps1"]
    configs = [get_algorithm(g.algorithm).config_cls(**g.overrides) for g in groups]
    keys = {json.dumps([g.algorithm, repr(c)]) for g, c in zip(groups, configs, strict=True)}
    assert len(keys) == len(groups)  # no two variants are the same run
    brac = [c for g, c in zip(groups, configs, strict=True) if g.algorithm == "brac"]
    assert {c.tune_alpha for c in brac} == {False, True}
    assert {c.num_critics for c in brac} == {1, 2, 4}
    assert {c.ensemble_lam for c in brac} == {1.0, 0.75}
    assert {c.penalty for c in brac} == {"value", "policy"}
    pairs = {(c.divergence, c.form) for c in brac}
    assert pairs == {("mmd", "primal"), ("kl", "primal"), ("kl", "dual"), ("w", "dual")}
    for penalty in ("value", "policy"):  # every divergence under both penalties
        assert {(c.divergence, c.form) for c in brac if c.penalty == penalty} == pairs
    assert {g.algorithm for g in groups} == {"brac", "bear", "bcq", "bc", "sac_offline"}
    assert all(
        c.alpha is None and c.initial_alpha in (0.1, 10.0) for c in brac
    )  # the reference's fixed alpha

    tiny = plan_study(
        spec, tmp_path, budget="tiny", tasks=["hopper"], mixes=["eps1", "pure"], variants=["brac-v-*", "bc"]
    )
    assert (tiny.spec.steps, tiny.spec.seeds, tiny.spec.dataset_size, tiny.spec.eval_episodes) == (
        20,
        1,
        2_000,
        1,
    )
    assert tiny.spec.datasets == ("hopper-pure", "hopper-eps1")
    assert {g.variants[0] for g in tiny.groups} == {
        v.name for v in spec.variants if v.name.startswith("brac-v-")
    } | {"bc"}
    base = next(g for g in tiny.groups if g.name == "brac-v-kl-primal")
    assert base.overrides["behavior_steps"] == 12 and base.overrides["warm_start_steps"] == 1  # x 20 / 500k
    assert base.logdir == tmp_path / "hopper-pure" / "brac-v-kl-primal"
    laptop = plan_study(spec, tmp_path, budget="laptop", variants=["bear"])
    assert (laptop.spec.steps, laptop.spec.seeds, laptop.spec.dataset_size) == (50_000, 2, 100_000)
    assert laptop.groups[0].overrides["warm_start_steps"] == 2_000
    for bad in ({"tasks": ["cartpole"]}, {"mixes": ["eps2"]}, {"variants": ["nope*"]}, {"budget": "huge"}):
        with pytest.raises(ConfigError, match=r"nope|cartpole|eps2|huge"):
            plan_study(spec, tmp_path, **bad)


def test_cli_dry_run_prints_the_plan_and_builds_nothing(tmp_path, capsys):
    args = ["study", "brac-paper", "--budget", "tiny", "--tasks", "hopper", "--mixes", "eps1"]
    args += ["--variants", "bc,brac-v-kl-primal", "--dry-run", "--out", str(tmp_path / "out")]
    assert main([*args, "--data-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "brac-v-kl-primal" in out and "hopper-eps1" in out and "pending" in out
    assert "2 groups = vmapped programs" in out and "(1 to build)" in out
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
    assert main(["study", "no-such-preset"]) == 2
    assert "presets: brac-paper" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- batching


def test_fixed_alpha_values_batch_into_one_sweep_other_choices_do_not(tmp_path):
    text = """
name = "batching"
datasets = ["hopper-eps1", "walker2d-pure"]
[[variants]]
name = "a"
algorithm = "brac"
set = { alpha = 0.1 }
[[variants]]
name = "b"
algorithm = "brac"
set = { alpha = 1.0 }
[[variants]]
name = "k"
algorithm = "brac"
set = { alpha = 0.1 }
grid = { num_critics = [1, 4] }
[[variants]]
name = "g"
algorithm = "brac"
set = { penalty = "policy" }
grid = { alpha = [0.3, 3.0] }
[[variants]]
name = "same-as-a"
algorithm = "brac"
set = { alpha = 0.1, num_critics = 2 }
"""
    assert sweepable_fields("brac") == ("alpha", "alpha_entropy") and sweepable_fields("bcq") == ()
    plan = plan_study(load_spec(write_spec(tmp_path, text)), tmp_path / "out")
    hopper = {g.name: g for g in plan.groups if g.dataset_name == "hopper-eps1"}
    assert sorted(hopper) == ["a+b", "g", "k@num_critics=1", "k@num_critics=4"]
    assert hopper["a+b"].sweep == {"alpha": [0.1, 1.0]} and hopper["a+b"].variants == ("a", "b")
    assert hopper["g"].sweep == {"alpha": [0.3, 3.0]} and plan.runs(hopper["g"]) == 2 * 5
    assert hopper["k@num_critics=4"].sweep == {} and hopper["k@num_critics=4"].overrides["num_critics"] == 4
    assert hopper["a+b"].logdir == tmp_path / "out" / "hopper-eps1" / "a+b"
    assert len(plan.groups) == 8  # per dataset; datasets are never batched together
    assert ("hopper-eps1/same-as-a", "hopper-eps1/a") in plan.duplicates


# ----------------------------------------------------------------------------------------- running

TINY_SPEC = f"""
name = "tiny"
datasets = ["d.npz"]
steps = 20
seeds = 2
eval_episodes = 0
chunk_steps = 10
checkpoint_every = 10

[[variants]]
name = "bc"
algorithm = "bc"
set = {{ hidden = [8, 8], batch_size = 8 }}

[[variants]]
name = "brac"
algorithm = "brac"
set = {{ {TINY_BRAC} }}
grid = {{ alpha = [0.1, 1.0] }}
"""


class Stop(Exception):
    pass


def recorder(counts: collections.Counter, stop_at: tuple[str, int] | None = None):
    """A ``progress`` hook counting each group's chunks; raises Stop at (group name, train step)."""

    @contextlib.contextmanager
    def progress(group, index, total, steps):
        def log(entry):
            if stop_at == (group.name, entry["step"]) and entry["phase"] == "train":
                raise Stop
            counts[group.name] += 1

        yield log

    return progress


def test_run_study_writes_logdirs_skips_finished_and_resumes_partial(tmp_path, capsys):
    tiny_dataset(tmp_path / "d.npz")
    spec_path = write_spec(tmp_path, TINY_SPEC)
    out = tmp_path / "out"
    # 1. interrupted in the brac group's last chunk: bc finished, brac has its step-10 checkpoint
    counts: collections.Counter = collections.Counter()
    with pytest.raises(Stop):
        run_study(spec_path, out, progress=recorder(counts, stop_at=("brac", 20)))
    index = json.loads((out / "study.json").read_text())
    assert {g["name"]: g["status"] for g in index["groups"]} == {"bc": "finished", "brac": "interrupted"}
    assert read_record(out / "d" / "brac" / "checkpoint.npz")["step"] == 10
    # 2. again: bc is skipped, brac resumes from step 10 (one chunk left)
    counts.clear()
    results = run_study(spec_path, out, progress=recorder(counts))
    assert [(r.group.name, r.status) for r in results] == [("bc", "skipped"), ("brac", "resumed")]
    assert counts == {"brac": 1}
    run = json.loads((out / "d" / "brac" / "run.json").read_text())
    assert run["label"] == "brac" and run["sweep"] == {"alpha": [0.1, 1.0]} and run["seeds"] == [0, 1]
    assert Path(run["data"]).stem == "d"
    record = read_record(out / "d" / "brac" / "checkpoint.npz")
    assert (record["phase"], record["step"]) == ("train", 20)
    lines = [json.loads(line) for line in (out / "d" / "brac" / "metrics.jsonl").read_text().splitlines()]
    assert [(e["phase"], e["step"]) for e in lines] == [("pretrain", 10), ("train", 10), ("train", 20)]
    assert len(lines[-1]["critic/loss"]) == 4  # 2 alphas x 2 seeds in one program
    index = json.loads((out / "study.json").read_text())
    assert index["budget"] == "paper" and index["steps"] == 20
    assert [(g["logdir"], g["status"], g["runs"]) for g in index["groups"]] == [
        ("d/bc", "finished", 2),
        ("d/brac", "finished", 4),
    ]
    # 3. a third time, through the CLI: nothing trains, no run file changes
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "study.json")
    stamps = [(p.stat().st_mtime_ns, p.read_bytes()) for p in files]
    assert main(["study", str(spec_path), "--out", str(out)]) == 0
    assert "0 groups trained, 2 already finished" in capsys.readouterr().out
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in files] == stamps
    # results kept without their checkpoints (run.json + metrics.jsonl, as committed) still count as finished
    for checkpoint in out.rglob("checkpoint.npz"):
        checkpoint.unlink()
    results = run_study(spec_path, out)
    assert [(r.group.name, r.status) for r in results] == [("bc", "skipped"), ("brac", "skipped")]
    assert results[0].final_return is None or np.isfinite(results[0].final_return)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "study.json")
    stamps = [(p.stat().st_mtime_ns, p.read_bytes()) for p in files]
    # 4. the same out with other settings is refused before anything runs
    longer = write_spec(tmp_path, TINY_SPEC.replace("steps = 20", "steps = 40"), "longer.toml")
    with pytest.raises(RunError, match=r"holds a different run \(steps: 20 != 40"):
        run_study(longer, out)
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in files] == stamps


def test_rich_group_progress_names_the_group(capsys):
    group = Group(
        "g@num_critics=4", "hopper-eps1", "brac", {}, {}, ("g",), Path("out/hopper-eps1/g@num_critics=4")
    )
    with rich_group_progress(group, 1, 3, 20) as log:
        log({"phase": "pretrain", "step": 10, "time/updates_per_s": 5.0, "bc/loss": np.array([1.0])})
        log({"phase": "train", "step": 20, "critic/loss": np.array([0.5, 0.7])})
    assert "[2/3] hopper-eps1/g@num_critics=4 (brac)" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- datasets


def test_resolve_data_paths_names_and_cache(tmp_path, monkeypatch, capsys):
    existing = tiny_dataset(tmp_path / "d.npz")
    assert resolve_data(existing) == existing and resolve_data(str(existing), size=5) == existing
    with pytest.raises(
        ConfigError, match=r"'hopper-eps9' is neither an existing dataset path nor a TASK-MIX.*eps1"
    ):
        resolve_data("hopper-eps9", cache_dir=tmp_path)
    assert main(["train", "bc", "--data", "nowhere.npz"]) == 2
    assert "neither an existing dataset path" in capsys.readouterr().err
    monkeypatch.setenv("BRACKIT_DATA_DIR", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    builds = []
    real_build = resolve_module.build
    monkeypatch.setattr(resolve_module, "build", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    path = resolve_data("hopper-random", size=500, seed=1, progress=False)
    assert path == tmp_path / "env-cache" / "hopper-random-500-s1.npz" and len(builds) == 1
    dataset = load_dataset(path)
    assert dataset.card.num_transitions == 500 and dataset.card.env_id == "Hopper-v5"
    assert resolve_data("hopper-random", size=500, seed=1) == path and len(builds) == 1  # cached


def test_budget_caps_keep_the_chunk_a_divisor_of_steps_and_eval_interval():
    from brackit.study import BUDGETS, apply_budget

    spec = load_spec("brac-paper")
    caps = dataclasses.replace(BUDGETS["laptop"], steps=2000, eval_every=500)
    scaled, factor = apply_budget(spec, caps)
    assert (scaled.steps, scaled.eval_every, scaled.chunk_steps) == (2000, 500, 500)
    assert factor == 2000 / spec.steps
    assert (
        main(
            [
                "study",
                "brac-paper",
                "--budget",
                "laptop",
                "--steps",
                "2000",
                "--eval-every",
                "500",
                "--tasks",
                "hopper",
                "--mixes",
                "eps1",
                "--variants",
                "bc",
                "--dry-run",
            ]
        )
        == 0
    )


def test_variant_budget_caps_and_per_dataset_settings(tmp_path):
    """A variant's ``budgets.<name>`` caps its steps, seeds and datasets under that budget only; its
    ``per_dataset`` table sets config fields on one dataset; the learning preset plans under cpu."""
    text = """
name = "caps"
datasets = ["hopper-eps1", "halfcheetah-eps1"]
steps = 400
seeds = 4
eval_every = 100
eval_episodes = 2
chunk_steps = 100
[[variants]]
name = "bc"
algorithm = "bc"
[[variants]]
name = "heavy"
algorithm = "brac"
set = { behavior_steps = 40 }
per_dataset = { hopper-eps1 = { alpha = 3.0 } }
budgets = { laptop = { steps = 200, seeds = 2, datasets = ["hopper-eps1"] } }
"""
    spec = load_spec(write_spec(tmp_path, text))
    paper = {(g.dataset_name, g.name): g for g in plan_study(spec, tmp_path / "out").groups}
    assert paper["hopper-eps1", "heavy"].steps == 400 and paper["hopper-eps1", "heavy"].num_seeds == 4
    assert paper["hopper-eps1", "heavy"].overrides["alpha"] == 3.0
    assert "alpha" not in paper["halfcheetah-eps1", "heavy"].overrides  # the default elsewhere
    laptop = {(g.dataset_name, g.name): g for g in plan_study(spec, tmp_path / "out", budget="laptop").groups}
    assert ("halfcheetah-eps1", "heavy") not in laptop  # datasets cap
    heavy, bc = laptop["hopper-eps1", "heavy"], laptop["hopper-eps1", "bc"]
    assert (heavy.steps, heavy.num_seeds, bc.steps, bc.num_seeds) == (200, 2, 400, 2)
    assert heavy.overrides["behavior_steps"] == 20  # step fields scale with the variant's own steps
    assert heavy.steps % heavy.chunk_steps == 0 and heavy.eval_every == 100
    with pytest.raises(ConfigError, match="unknown budget 'huge'"):
        load_spec(write_spec(tmp_path, text.replace("laptop =", "huge ="), "bad.toml"))
    with pytest.raises(ConfigError, match=r"per_dataset\.hopper-eps1\.alpha"):
        load_spec(write_spec(tmp_path, text.replace("alpha = 3.0", 'alpha = "x"'), "bad2.toml"))
    learning = plan_study(load_spec("learning"), tmp_path / "learning", budget="cpu")
    by_name = {(g.dataset_name, g.name): g for g in learning.groups}
    assert by_name["hopper-eps1", "bear"].steps == 50_000 and by_name["hopper-eps1", "bear"].num_seeds == 2
    # the BEAR authors' kernel: their sigma 10 on Hopper and HalfCheetah (brackit's 20), 20 on Walker2d and Ant
    assert "mmd_sigma" not in by_name["hopper-eps1", "bear"].overrides
    assert by_name["walker2d-eps1", "bear"].overrides["mmd_sigma"] == 40.0
    assert by_name["hopper-eps1", "td3bc"].steps == 100_000 and by_name["hopper-eps1", "td3bc"].num_seeds == 3
    rebrac = by_name["hopper-eps1", "rebrac"]
    assert rebrac.steps == 50_000 and rebrac.num_seeds == 2 and rebrac.overrides["beta_actor"] == 0.1
    assert by_name["halfcheetah-eps1", "rebrac"].overrides["beta_actor"] == 0.001
    assert by_name["hopper-eps1", "brac-v-alpha"].sweep == {"alpha": [0.1, 1.0, 10.0]}
    assert ("ant-eps1", "brac-v-alpha") not in by_name


def test_a_budget_may_run_fewer_values_of_a_variants_grid(tmp_path):
    """``budgets.<name>.grid`` replaces the values of the variant's grid fields under that budget (one
    vmapped sweep still); a field outside the variant's grid or a value its config refuses is an error."""
    text = """
name = "grids"
datasets = ["hopper-eps1"]
steps = 200
seeds = 2
eval_every = 100
eval_episodes = 2
chunk_steps = 100
[[variants]]
name = "rebrac-beta"
algorithm = "rebrac"
grid = { beta_actor = [0.001, 0.01, 0.1], beta_critic = [0.0, 0.5] }
budgets = { laptop = { grid = { beta_critic = [0.01] } } }
"""
    spec = load_spec(write_spec(tmp_path, text))
    (full,) = plan_study(spec, tmp_path / "out").groups
    assert full.sweep == {"beta_actor": [0.001, 0.01, 0.1], "beta_critic": [0.0, 0.5]}
    (small,) = plan_study(spec, tmp_path / "out", budget="laptop").groups
    assert small.sweep == {"beta_actor": [0.001, 0.01, 0.1]} and small.overrides["beta_critic"] == 0.01
    with pytest.raises(ConfigError, match=r"budgets\.laptop\.grid\.gamma: not a field of the variant's grid"):
        load_spec(
            write_spec(tmp_path, text.replace("{ beta_critic = [0.01] }", "{ gamma = [0.9] }"), "b.toml")
        )
    with pytest.raises(ConfigError, match="beta_critic"):
        load_spec(write_spec(tmp_path, text.replace("[0.01] }", "[-1.0] }"), "c.toml"))


def test_first_seed_adds_seeds_beside_a_finished_study_and_reports_pool_them(tmp_path, capsys):
    from brackit.report import load_runs, summarize

    tiny_dataset(tmp_path / "d.npz")
    spec_path = write_spec(tmp_path, TINY_SPEC.replace("seeds = 2", "seeds = 1"))
    out = tmp_path / "out"
    run_study(spec_path, out, variants=["bc"])
    plan = plan_study(load_spec(spec_path), out, variants=["bc"], first_seed=1)
    (group,) = plan.groups
    assert (group.name, group.logdir.name, group.seed_values) == ("bc", "bc+seeds1-1", (1,))
    assert plan_study(load_spec(spec_path), out, first_seed=0).groups[0].logdir == out / "d" / "bc"
    # through the CLI: the first seed's group is untouched, seed 1 trains in a logdir of its own
    before = (out / "d" / "bc" / "metrics.jsonl").read_bytes()
    assert main(["study", str(spec_path), "--out", str(out), "--variants", "bc", "--first-seed", "1"]) == 0
    assert "1 groups trained" in capsys.readouterr().out
    assert (out / "d" / "bc" / "metrics.jsonl").read_bytes() == before
    run = json.loads((out / "d" / "bc+seeds1-1" / "run.json").read_text())
    assert (run["label"], run["seeds"]) == ("bc", [1])
    index = {
        g["logdir"]: (g["name"], g["first_seed"])
        for g in json.loads((out / "study.json").read_text())["groups"]
    }
    assert index == {"d/bc": ("bc", 0), "d/bc+seeds1-1": ("bc", 1)}
    groups = summarize(load_runs([out]))["datasets"]["d"]["groups"]
    assert list(groups) == ["bc"] and groups["bc"]["seeds"] == [0, 1]
    # a negative first seed is a one-line error (exit 2), nothing written
    assert main(["study", str(spec_path), "--out", str(tmp_path / "o2"), "--first-seed", "-1"]) == 2
    assert "error: --first-seed must be in [0, 4294901760], got -1" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
