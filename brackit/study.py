"""Studies: grids of runs (variants x datasets x seeds) from a TOML file or a preset, batched and resumable.

A study file (TOML; every key is checked, and an error names the file, the key and what was expected)::

    name = "my-study"                      # required
    datasets = ["hopper-eps1", "data/walker.npz"]   # TASK-MIX names (built and cached) or paths
    dataset_size = 1000000                 # transitions per TASK-MIX dataset (default 1M, the paper's)
    dataset_seed = 0                       # seed of the TASK-MIX builds
    steps = 500000                         # training updates per run
    seeds = 5                              # seeds 0..seeds-1 of every variant
    eval_every = 5000                      # 0: evaluate only at the end
    eval_episodes = 20                     # 0: no evaluation
    chunk_steps = 1000                     # updates per jitted chunk (divides steps and eval_every)
    checkpoint_every = 0                   # 0: at every evaluation (or only at the end)

    [[variants]]
    name = "brac-v-kl-primal"              # unique; letters, digits, '.', '_', '-'
    algorithm = "brac"                     # a name in brackit.algos.ALGORITHMS
    description = "..."                    # optional
    set = { penalty = "value", divergence = "kl", behavior.hidden = [64, 64] }   # config fields
    grid = { alpha = [0.1, 1.0] }          # optional: one cell per value (the product over keys)
    per_dataset = { hopper-eps1 = { alpha = 1.0 } }   # optional: config fields for one dataset only
    budgets = { cpu = { steps = 50000, seeds = 2, datasets = ["hopper-eps1"] } }   # optional, see below

Relative dataset paths are taken from the study file's folder. Config values are typed as TOML values
(``"none"`` sets an optional field to None); a combination the algorithm's config refuses is an error at
load time. Presets (``brackit/studies/*.toml``) are loaded by name: ``brac-paper`` is the BRAC paper's
design-choice study.

Expansion and batching: every variant x grid point x dataset is a cell; cells identical in algorithm,
config and dataset are run once (the first name is kept). Cells of one dataset and algorithm whose
configs differ only in scalar fields of the training state (``sweepable_fields``, e.g. BRAC's fixed
``alpha``) form one group, trained as one vmapped program over seeds x values (``run_training(sweep=...)``);
every other cell is a group of its own with its seeds vmapped. Group ``g`` on dataset ``d`` writes
``OUT/<d>/<g>/`` (a run directory, ``brackit.rundir``) with ``label`` = the group's name (variant
names joined by '+', then '@key=value' for grid values shared by the group); ``d`` is the TASK-MIX name
or the file's stem. ``OUT/study.json`` lists every group, its logdir and status, rewritten atomically.

Budgets (``--budget``) cap steps, seeds, dataset size, evaluation and chunk length for smaller machines;
config fields that count steps (``STEP_FIELDS``: warm-up and behavior-policy steps) shrink in the same
proportion as the steps. A variant's ``budgets.<name>`` table caps that variant further under that budget
(``steps``, ``seeds``; ``datasets``: only these; ``grid``: these values of the variant's grid fields
instead), e.g. to give algorithms whose updates cost more fewer steps, or a smaller sweep, on a CPU. Restarting a study skips finished groups, resumes partial ones from their last
checkpoint (bit-identical), and refuses a logdir that holds a different run (``RunError``).

More seeds for a finished study: ``first_seed`` (``--first-seed N``) runs seeds N..N+seeds-1 instead of
0..seeds-1, each group in ``OUT/<d>/<g>+seedsN-M/`` with the group's own label ``g``, so that a report
(``brackit.report``, which pools the runs of one label) puts them beside the first seeds' runs of ``g``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import importlib.resources
import itertools
import json
import math
import re
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import jax

from brackit import config as config_lib
from brackit.algos import get_algorithm
from brackit.checkpoint import read_record
from brackit.config_checks import (
    MAX_EPISODES,
    MAX_RUNS,
    check_option,
    check_ranges,
    check_value,
    declared_ranges,
)
from brackit.errors import ConfigError
from brackit.files import AtomicDebris, DirectoryLock, atomic_write_text
from brackit.protocol.resolve import (
    DEFAULT_SIZE,
    cache_path,
    is_minari_id,
    is_task_mix,
    minari_path,
    parse_task_mix,
    resolve_data,
)
from brackit.run import make_spec, run_training
from brackit.rundir import RunDir, RunSpec

STEP_FIELDS = ("warm_start_steps", "behavior_steps")
"""Config fields counting training steps: a budget scales them with the steps (at least 1 if positive)."""
PRESET_PACKAGE = "brackit"
PRESET_FOLDER = "studies"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Logger = Callable[[dict[str, Any]], None]
GroupProgress = Callable[["Group", int, int, int], AbstractContextManager[Logger | None]]


# ----------------------------------------------------------------------------------------- the spec


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    algorithm: str
    overrides: dict[str, Any]
    """Typed config overrides (nested configs as dataclass instances), as ``run_training`` takes them."""
    grid: dict[str, tuple[Any, ...]]
    """Field (dotted for nested configs) -> typed values; the cells are the product over fields."""
    description: str = ""
    per_dataset: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Dataset name -> the typed config overrides on that dataset (``overrides`` with its own on top)."""
    budgets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Budget name -> this variant's own caps under it: ``steps``, ``seeds``, ``datasets`` (names)."""


@dataclasses.dataclass(frozen=True)
class StudySpec:
    name: str
    datasets: tuple[str, ...]
    """TASK-MIX names or paths (relative paths already joined to the study file's folder)."""
    variants: tuple[Variant, ...]
    dataset_size: Annotated[int, ">= 1"] = DEFAULT_SIZE
    dataset_seed: Annotated[int, "[0, 4294967296)"] = 0
    steps: Annotated[int, ">= 1"] = 500_000
    seeds: Annotated[int, f"[1, {MAX_RUNS}]"] = 5
    eval_every: Annotated[int, ">= 0"] = 5_000
    eval_episodes: Annotated[int, f"[0, {MAX_EPISODES}]"] = 20
    chunk_steps: Annotated[int, ">= 1"] = 1_000
    checkpoint_every: Annotated[int, ">= 0"] = 0
    source: str = "<study>"
    """Where the spec came from (the file, or 'preset NAME'), for messages."""

    def __post_init__(self) -> None:
        check_ranges(self)


_INT_MINIMUM: dict[str, int] = {key: int(valid.low) for key, (_, valid) in declared_ranges(StudySpec).items()}
"""The least value of each integer key of a study file (1 or 0): the lower end of its range in
``StudySpec``'s field types."""
_TOP_KEYS: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "description": (str, "a string"),
    "datasets": (list, "a non-empty list of TASK-MIX names or paths"),
    **{key: (int, "a positive integer" if low else "an integer >= 0") for key, low in _INT_MINIMUM.items()},
    "variants": (list, "a non-empty array of tables ([[variants]])"),
}
_VARIANT_KEYS = ("name", "algorithm", "description", "set", "grid", "per_dataset", "budgets")
_VARIANT_BUDGET_KEYS = ("steps", "seeds", "datasets", "grid")


def load_spec(spec: str | Path) -> StudySpec:
    """A study from a TOML file, or a preset by name (``list_presets()``)."""
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: no such study file; presets: {', '.join(list_presets())}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not a study TOML file (not UTF-8 text: {error.reason})") from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML ({error})") from error
        return parse_spec(data, source=str(path), base_dir=path.parent)
    if str(spec) not in list_presets():
        raise ConfigError(
            f"{spec!r} is neither a study file nor a preset; presets: {', '.join(list_presets())}"
        )
    text = (importlib.resources.files(PRESET_PACKAGE) / PRESET_FOLDER / f"{spec}.toml").read_text()
    return parse_spec(tomllib.loads(text), source=f"preset {spec}")


def list_presets() -> list[str]:
    folder = importlib.resources.files(PRESET_PACKAGE) / PRESET_FOLDER
    return sorted(item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml"))


def parse_spec(data: dict[str, Any], *, source: str = "<study>", base_dir: Path | None = None) -> StudySpec:
    """Validates a parsed TOML document; every error names ``source`` and the offending key."""
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(_TOP_KEYS)}")
    for key, value in data.items():
        kind, expected = _TOP_KEYS[key]
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            ok = ok and value >= _INT_MINIMUM[key]
        else:
            ok = isinstance(value, kind) and bool(value)
        if not ok:
            raise ConfigError(f"{source}: {key}: expected {expected}, got {value!r}")
        if kind is int:  # the upper bounds (int32, MAX_RUNS, MAX_EPISODES)
            check_option(f"{source}: {key}", value, declared_ranges(StudySpec)[key][1].text)
    for key in ("name", "datasets", "variants"):
        if key not in data:
            raise ConfigError(f"{source}: missing key {key!r} ({_TOP_KEYS[key][1]})")
    if not _NAME.match(data["name"]):
        raise ConfigError(f"{source}: name: expected letters, digits, '.', '_' or '-', got {data['name']!r}")
    datasets = tuple(
        _parse_dataset(item, f"{source}: datasets[{i}]", base_dir) for i, item in enumerate(data["datasets"])
    )
    names = [study_dataset_name(d) for d in datasets]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(
                f"{source}: datasets[{i}]: a second dataset named {name!r} (logdirs would clash)"
            )
    variants: list[Variant] = []
    for i, item in enumerate(data["variants"]):
        variant = _parse_variant(item, f"{source}: variants[{i}]")
        if any(v.name == variant.name for v in variants):
            raise ConfigError(f"{source}: variants[{i}].name: {variant.name!r} is used twice")
        variants.append(variant)
    scalars = {k: v for k, v in data.items() if k not in ("datasets", "variants", "description")}
    return StudySpec(datasets=datasets, variants=tuple(variants), source=source, **scalars)


def _parse_dataset(item: Any, where: str, base_dir: Path | None) -> str:
    if not isinstance(item, str) or not item:
        raise ConfigError(f"{where}: expected a TASK-MIX name or a path, got {item!r}")
    path = Path(item).expanduser()
    candidates = [base_dir / path] if base_dir is not None and not path.is_absolute() else []
    found = next((p for p in [*candidates, path] if p.exists()), None)
    if found is not None:
        return str(found)
    if is_minari_id(item) and not is_task_mix(item):  # a Minari id, found in the local Minari cache
        try:
            return str(minari_path(item))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    if "/" in item or path.suffix:
        raise ConfigError(f"{where}: {item!r}: no such dataset file")
    try:
        parse_task_mix(item)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return item


def study_dataset_name(dataset: str) -> str:
    """The name of a study's dataset in its logdirs and tables: the TASK-MIX name, or the file's whole stem
    (``brackit.protocol.resolve.dataset_label`` also drops a cache suffix; this one does not, so existing
    logdirs keep their names)."""
    return dataset if "/" not in dataset and not Path(dataset).suffix else Path(dataset).stem


def _parse_variant(item: Any, where: str) -> Variant:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a table with keys {', '.join(_VARIANT_KEYS)}")
    unknown = sorted(set(item) - set(_VARIANT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(_VARIANT_KEYS)}")
    for key in ("name", "algorithm"):
        if not isinstance(item.get(key), str):
            raise ConfigError(f"{where}.{key}: expected a string, got {item.get(key)!r}")
    name, algorithm = item["name"], item["algorithm"]
    if not _NAME.match(name):
        raise ConfigError(f"{where}.name: expected letters, digits, '.', '_' or '-', got {name!r}")
    where = f"{where} ({name})"
    try:
        config_cls = get_algorithm(algorithm).config_cls
    except ConfigError as error:
        raise ConfigError(f"{where}.algorithm: {error}") from None
    for key in ("set", "grid"):
        if not isinstance(item.get(key, {}), dict):
            raise ConfigError(f"{where}.{key}: expected a table of config fields, got {item[key]!r}")
    if not isinstance(item.get("description", ""), str):
        raise ConfigError(f"{where}.description: expected a string")
    overrides = config_lib.overrides_from_table(config_cls, item.get("set", {}), f"{where}.set")
    grid: dict[str, tuple[Any, ...]] = {}
    for key, values in config_lib.flatten(item.get("grid", {})).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{key}: expected a non-empty list of values, got {values!r}")
        if key in config_lib.flatten(item.get("set", {})):
            raise ConfigError(f"{where}.grid.{key}: also given in set; give it in one place")
        hint = config_lib.field_hint(config_cls, key, f"{where}.grid.{key}")
        grid[key] = tuple(config_lib.check_value(hint, v, f"{where}.grid.{key}") for v in values)
    per_dataset: dict[str, dict[str, Any]] = {}
    if not isinstance(item.get("per_dataset", {}), dict):
        raise ConfigError(f"{where}.per_dataset: expected a table of dataset name -> config fields")
    for dataset, table in item.get("per_dataset", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{where}.per_dataset.{dataset}: expected a table of config fields, got {table!r}"
            )
        for key in config_lib.flatten(table):
            if key in grid:
                raise ConfigError(
                    f"{where}.per_dataset.{dataset}.{key}: also a grid field; give it in one place"
                )
        # the variant's overrides, then this dataset's
        fields = config_lib.overrides_from_table(
            config_cls, table, f"{where}.per_dataset.{dataset}", overrides
        )
        per_dataset[dataset] = fields
    budgets = _parse_variant_budgets(item.get("budgets", {}), f"{where}.budgets")
    for budget_name, caps in budgets.items():  # a budget's grid: fewer values of the variant's grid fields
        at = f"{where}.budgets.{budget_name}.grid"
        typed = {}
        for key, values in config_lib.flatten(caps.get("grid", {})).items():
            if key not in grid:
                raise ConfigError(
                    f"{at}.{key}: not a field of the variant's grid ({', '.join(grid) or 'none'})"
                )
            hint = config_lib.field_hint(config_cls, key, f"{at}.{key}")
            typed[key] = tuple(config_lib.check_value(hint, v, f"{at}.{key}") for v in values)
        if typed:
            caps["grid"] = typed
    variant = Variant(name, algorithm, overrides, grid, item.get("description", ""), per_dataset, budgets)
    budget_grids = [None, *(caps["grid"] for caps in budgets.values() if "grid" in caps)]
    for dataset, budget_grid in itertools.product([None, *per_dataset], budget_grids):
        for point in _grid_points(variant, budget_grid):  # every cell's config must build
            try:
                config_cls(**_cell_overrides(variant, point, dataset))
            except ConfigError as error:
                suffix = f" at grid point {point}" if point else ""
                suffix += f" on {dataset}" if dataset else ""
                raise ConfigError(f"{where}{suffix}: {error}") from None
    return variant


def _parse_variant_budgets(table: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of budget name -> {{steps, seeds, datasets}}")
    out: dict[str, dict[str, Any]] = {}
    for name, caps in table.items():
        if name not in BUDGETS:
            raise ConfigError(f"{where}: unknown budget {name!r}; budgets: {', '.join(BUDGETS)}")
        if not isinstance(caps, dict) or set(caps) - set(_VARIANT_BUDGET_KEYS):
            raise ConfigError(f"{where}.{name}: expected a table with keys {', '.join(_VARIANT_BUDGET_KEYS)}")
        for key in ("steps", "seeds"):
            value = caps.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}.{name}.{key}: expected a positive integer, got {value!r}")
        grid = caps.get("grid", {})
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise ConfigError(
                f"{where}.{name}.grid: expected a table of field -> non-empty list, got {grid!r}"
            )
        datasets = caps.get("datasets", [])
        if not isinstance(datasets, list) or not all(isinstance(d, str) and d for d in datasets):
            raise ConfigError(f"{where}.{name}.datasets: expected a list of dataset names, got {datasets!r}")
        out[name] = {**caps, **({"datasets": tuple(datasets)} if "datasets" in caps else {})}
    return out


def _grid_points(
    variant: Variant, budget_grid: dict[str, tuple[Any, ...]] | None = None
) -> list[dict[str, Any]]:
    """The product of the variant's grid values; ``budget_grid`` (a budget's ``grid`` cap) replaces the
    values of its keys."""
    grid = {**variant.grid, **(budget_grid or {})}
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _cell_overrides(variant: Variant, point: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """The config overrides of one cell: the variant's, then its ``per_dataset`` ones for ``dataset`` (a
    name), then the grid point's."""
    config_cls = get_algorithm(variant.algorithm).config_cls
    overrides = variant.per_dataset.get(dataset or "", variant.overrides)
    for key, value in point.items():
        overrides = config_lib.put(config_cls, overrides, key, value)
    return overrides


# ----------------------------------------------------------------------------------------- budgets


@dataclasses.dataclass(frozen=True)
class Budget:
    """Caps on the spec's values (None: the spec's own)."""

    name: str
    steps: Annotated[int | None, ">= 1 or None"] = None
    seeds: Annotated[int | None, f"[1, {MAX_RUNS}] or None"] = None
    dataset_size: Annotated[int | None, ">= 1 or None"] = None
    eval_every: Annotated[int | None, ">= 1 or None"] = None
    eval_episodes: Annotated[int | None, f"[0, {MAX_EPISODES}] or None"] = None
    chunk_steps: Annotated[int | None, ">= 1 or None"] = None
    description: str = ""

    def __post_init__(self) -> None:
        check_ranges(self)


BUDGETS: dict[str, Budget] = {
    "tiny": Budget("tiny", 20, 1, 2_000, 20, 1, 10, "seconds per run: checks that a study goes through"),
    "laptop": Budget("laptop", 50_000, 2, 100_000, 5_000, 5, 1_000, "a CPU laptop: one task in hours"),
    "cpu": Budget(
        "cpu", 100_000, 3, None, 10_000, 10, 1_000, "a 2-core CPU: 100k steps, 3 seeds, full-size datasets"
    ),
    "gpu": Budget(
        "gpu", 100_000, 5, None, 10_000, 10, 1_000, "one GPU: 100k steps, 5 seeds, full-size datasets"
    ),
    "paper": Budget("paper", description="the study's own values (500k steps, 5 seeds, 1M transitions)"),
}


def resolve_budget(budget: str | Budget, caps: Mapping[str, int | None] | None = None) -> Budget:
    """The named budget (or ``budget`` itself), tightened by the explicit ``caps`` (``steps``, ``seeds``,
    ``dataset_size``, ``eval_every``, ``eval_episodes``; None: no cap), named ``NAME+caps`` when capped."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
        budget = BUDGETS[budget]
    given = {key: value for key, value in (caps or {}).items() if value is not None}
    for key, value in given.items():  # the caps are the command's options: --steps, --dataset-size ...
        valid = declared_ranges(Budget)[key][1].text.removesuffix(" or None")
        check_option(f"--{key.replace('_', '-')}", value, valid)
    if not given:
        return budget
    tightened = {key: min(value, getattr(budget, key) or value) for key, value in given.items()}
    return dataclasses.replace(budget, name=f"{budget.name}+caps", **tightened)


def apply_budget(spec: StudySpec, budget: str | Budget) -> tuple[StudySpec, float]:
    """The spec with the budget's caps, and the factor by which the steps shrank."""
    budget = resolve_budget(budget)

    def cap(value: int, limit: int | None) -> int:
        return value if limit is None else min(value, limit)

    steps = cap(spec.steps, budget.steps)
    eval_every = cap(spec.eval_every or steps, budget.eval_every)
    scaled = dataclasses.replace(
        spec,
        steps=steps,
        seeds=cap(spec.seeds, budget.seeds),
        dataset_size=cap(spec.dataset_size, budget.dataset_size),
        eval_every=min(eval_every, steps),
        eval_episodes=cap(spec.eval_episodes, budget.eval_episodes),
        # a chunk length that divides the steps and the evaluation interval after the caps
        chunk_steps=math.gcd(
            min(cap(spec.chunk_steps, budget.chunk_steps), steps), steps, min(eval_every, steps)
        ),
        checkpoint_every=spec.checkpoint_every if spec.checkpoint_every <= steps else 0,
    )
    return scaled, steps / spec.steps


# ----------------------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Cell:
    """A variant at one grid point on one dataset, under the budget."""

    variant: Variant
    dataset: str
    point: dict[str, Any]
    """The grid values of this cell."""
    overrides: dict[str, Any]
    config: Any
    steps: int = 0
    """Training steps of this cell (the spec's, or its variant's cap under the budget)."""
    num_seeds: int = 0

    @property
    def algorithm(self) -> str:
        return self.variant.algorithm


@dataclasses.dataclass(frozen=True)
class Group:
    """One ``run_training`` call: one dataset, one config, seeds x sweep values vmapped."""

    name: str
    """Also the label, and the logdir's folder name when the seeds start at 0."""
    dataset: str
    algorithm: str
    overrides: dict[str, Any]
    sweep: dict[str, list[float]]
    variants: tuple[str, ...]
    logdir: Path
    steps: int = 0
    """Training steps of every run of the group."""
    num_seeds: int = 1
    """Seeds first_seed..first_seed+num_seeds-1 of every sweep value."""
    chunk_steps: int = 1
    eval_every: int = 0
    checkpoint_every: int = 0
    first_seed: int = 0

    @property
    def dataset_name(self) -> str:
        return study_dataset_name(self.dataset)

    @property
    def seed_values(self) -> tuple[int, ...]:
        return tuple(range(self.first_seed, self.first_seed + self.num_seeds))


FIRST_SEED_RANGE = f"[0, {2**32 - MAX_RUNS}]"
"""``first_seed``'s range: every seed of a group (at most ``MAX_RUNS``) stays a 32-bit seed."""


def seeds_suffix(first_seed: int, num_seeds: int) -> str:
    """The logdir suffix of a group whose seeds do not start at 0 (``first_seed``), e.g. ``+seeds2-4``."""
    return f"+seeds{first_seed}-{first_seed + num_seeds - 1}" if first_seed else ""


@dataclasses.dataclass(frozen=True)
class StudyPlan:
    spec: StudySpec
    """After the budget."""
    budget: str
    out_dir: Path
    groups: tuple[Group, ...]
    duplicates: tuple[tuple[str, str], ...]
    """(dropped cell, the identical cell kept), per dataset."""

    def runs(self, group: Group) -> int:
        return group.num_seeds * math.prod(len(values) for values in group.sweep.values())

    def run_arguments(self, group: Group) -> dict[str, Any]:
        """The arguments of ``run_training`` for ``group`` that its run.json records (``make_spec``): its
        seeds, sweep, schedule and label."""
        return {
            "seeds": group.seed_values,
            "sweep": group.sweep or None,
            "steps": group.steps,
            "chunk_steps": group.chunk_steps,
            "eval_every": group.eval_every,
            "eval_episodes": self.spec.eval_episodes,
            "label": group.name,
        }

    @property
    def eval_every(self) -> int:
        return self.spec.eval_every if self.spec.eval_episodes > 0 else 0

    @property
    def checkpoint_every(self) -> int:
        return self.spec.checkpoint_every or self.eval_every or self.spec.steps


@functools.cache
def sweepable_fields(algorithm: str) -> tuple[str, ...]:
    """Config fields mirrored by a scalar field of the training state (a sweep can vmap over them)."""
    algo = get_algorithm(algorithm)
    state_cls = typing.get_type_hints(algo.init)["return"]
    # the field annotations as written (strings under postponed evaluation): optax's types do not resolve
    scalars = {f.name for f in dataclasses.fields(state_cls) if f.type in ("jax.Array", jax.Array)}
    return tuple(name for name in config_lib.fields(algo.config_cls) if name in scalars)


def plan_study(
    spec: StudySpec,
    out_dir: str | Path,
    *,
    budget: str | Budget = "paper",
    tasks: Sequence[str] | None = None,
    mixes: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    first_seed: int = 0,
) -> StudyPlan:
    """The groups to run: the spec after the budget and the filters (task and mix names, variant names or
    globs), expanded into cells, deduplicated and batched (see the module docstring); every group runs seeds
    ``first_seed``.. (its logdir then ends in ``seeds_suffix``)."""
    out_dir = Path(out_dir)
    check_value("first_seed", "int", FIRST_SEED_RANGE, first_seed)
    spec, factor = apply_budget(spec, budget)
    spec = _filtered(spec, tasks, mixes, variants)
    for key in ("eval_every", "checkpoint_every"):
        if getattr(spec, key) % spec.chunk_steps or spec.steps % spec.chunk_steps:
            raise ConfigError(
                f"{spec.source}: steps ({spec.steps}) and {key} ({getattr(spec, key)}) must be multiples of "
                f"chunk_steps ({spec.chunk_steps})"
            )
    budget_name = budget if isinstance(budget, str) else budget.name
    cells: list[Cell] = []
    duplicates: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for dataset in spec.datasets:
        for variant in spec.variants:
            caps = variant.budgets.get(budget_name.split("+")[0], {})  # "cpu+caps": the cpu budget, capped
            if "datasets" in caps and study_dataset_name(dataset) not in caps["datasets"]:
                continue
            steps = min(spec.steps, caps.get("steps", spec.steps))
            num_seeds = min(spec.seeds, caps.get("seeds", spec.seeds))
            config_cls = get_algorithm(variant.algorithm).config_cls
            for point in _grid_points(variant, caps.get("grid")):
                overrides = _cell_overrides(variant, point, study_dataset_name(dataset))
                overrides = _scaled(config_cls, overrides, factor * steps / spec.steps)
                config = config_cls(**overrides)
                cell = Cell(variant, dataset, point, overrides, config, steps, num_seeds)
                key = json.dumps(
                    [dataset, variant.algorithm, config_lib.to_dict(config), steps, num_seeds], sort_keys=True
                )
                if key in seen:
                    duplicates.append((f"{study_dataset_name(dataset)}/{_cell_label(cell)}", seen[key]))
                    continue
                seen[key] = f"{study_dataset_name(dataset)}/{_cell_label(cell)}"
                cells.append(cell)
    groups = tuple(_schedule(group, spec, first_seed) for group in _batch(cells, out_dir))
    return StudyPlan(spec, budget_name, out_dir, groups, tuple(duplicates))


def _filtered(
    spec: StudySpec, tasks: Sequence[str] | None, mixes: Sequence[str] | None, patterns: Sequence[str] | None
) -> StudySpec:
    from brackit.protocol.behavior import TASKS
    from brackit.protocol.build import MIXES

    for given, valid, what in ((tasks, TASKS, "task"), (mixes, MIXES, "mix")):
        for item in given or ():
            if item not in valid:
                raise ConfigError(f"unknown {what} {item!r}; choose from {', '.join(valid)}")
    datasets = []
    for dataset in spec.datasets:
        try:
            task, mix = parse_task_mix(study_dataset_name(dataset))
        except ConfigError:
            task = mix = None
        if (tasks and task not in tasks) or (mixes and mix not in mixes):
            continue
        datasets.append(dataset)
    if not datasets:
        raise ConfigError(f"{spec.source}: no dataset matches --tasks {tasks} --mixes {mixes}")
    kept = spec.variants
    if patterns:
        names = [v.name for v in spec.variants]
        for pattern in patterns:
            if not fnmatch.filter(names, pattern):
                raise ConfigError(
                    f"{spec.source}: no variant matches {pattern!r}; variants: {', '.join(names)}"
                )
        kept = tuple(v for v in spec.variants if any(fnmatch.fnmatchcase(v.name, p) for p in patterns))
    return dataclasses.replace(spec, datasets=tuple(datasets), variants=kept)


def _scaled(config_cls: type, overrides: dict[str, Any], factor: float) -> dict[str, Any]:
    if factor == 1.0:
        return overrides
    config = config_cls(**overrides)
    overrides = dict(overrides)
    for name in STEP_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            overrides[name] = max(1, round(value * factor))
    return overrides


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(_format(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("/", "_")


def _cell_label(cell: Cell) -> str:
    suffix = ",".join(f"{k}={_format(v)}" for k, v in cell.point.items())
    return f"{cell.variant.name}@{suffix}" if suffix else cell.variant.name


def _batch(cells: list[Cell], out_dir: Path) -> Iterator[Group]:
    """Cells that differ only in sweepable fields (given explicitly) become one group with a sweep."""
    buckets: dict[str, list[Cell]] = {}
    for cell in cells:
        sweepable = [f for f in sweepable_fields(cell.algorithm) if getattr(cell.config, f) is not None]
        rest = {k: v for k, v in config_lib.to_dict(cell.config).items() if k not in sweepable}
        key = json.dumps(
            [cell.dataset, cell.algorithm, sorted(sweepable), rest, cell.steps, cell.num_seeds],
            sort_keys=True,
        )
        buckets.setdefault(key, []).append(cell)
    for bucket in buckets.values():
        fields = [
            f for f in sweepable_fields(bucket[0].algorithm) if getattr(bucket[0].config, f) is not None
        ]
        values = {f: list(dict.fromkeys(float(getattr(c.config, f)) for c in bucket)) for f in fields}
        sweep = {f: v for f, v in values.items() if len(v) > 1}
        combos = {tuple(float(getattr(c.config, f)) for f in sweep) for c in bucket}
        full_product = len(combos) == len(bucket) == len(list(itertools.product(*sweep.values())))
        if len(bucket) == 1 or not full_product:
            for cell in bucket:
                yield _group([cell], {}, out_dir)
        else:
            yield _group(bucket, sweep, out_dir)


def _group(cells: list[Cell], sweep: dict[str, list[float]], out_dir: Path) -> Group:
    first = cells[0]
    names = tuple(dict.fromkeys(c.variant.name for c in cells))
    if len(cells) == 1:
        name = _cell_label(first)
    else:
        shared = {
            k: v for k, v in first.point.items() if k not in sweep and all(c.point.get(k) == v for c in cells)
        }
        suffix = ",".join(f"{k}={_format(v)}" for k, v in shared.items())
        name = "+".join(names) + (f"@{suffix}" if suffix else "")
    return Group(
        name=name,
        dataset=first.dataset,
        algorithm=first.algorithm,
        overrides=first.overrides,
        sweep=sweep,
        variants=names,
        logdir=out_dir / study_dataset_name(first.dataset) / name,
        steps=first.steps,
        num_seeds=first.num_seeds,
    )


def _schedule(group: Group, spec: StudySpec, first_seed: int = 0) -> Group:
    """The group with its evaluation, checkpoint and chunk intervals for its own number of steps, and its
    seeds from ``first_seed`` (in a logdir of their own)."""
    eval_every = min(spec.eval_every, group.steps) if spec.eval_episodes > 0 else 0
    checkpoint_every = spec.checkpoint_every if 0 < spec.checkpoint_every <= group.steps else 0
    checkpoint_every = checkpoint_every or eval_every or group.steps
    chunk = math.gcd(spec.chunk_steps, group.steps, eval_every, checkpoint_every)
    logdir = group.logdir.with_name(group.logdir.name + seeds_suffix(first_seed, group.num_seeds))
    return dataclasses.replace(
        group,
        chunk_steps=chunk,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        first_seed=first_seed,
        logdir=logdir,
    )


# ----------------------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class GroupResult:
    group: Group
    status: str
    """'skipped' (finished before), 'trained' or 'resumed'."""
    final_return: float | None = None
    """Mean final evaluation return over the group's runs, when evaluated."""


REMEDY = "use another --out, or the budget it was run with"
"""What a study's refusal of a logdir's content says to do."""


def group_state(plan: StudyPlan, group: Group) -> str:
    """'pending', 'partial' or 'finished' from the logdir; a logdir holding another run is a RunError."""
    rundir = RunDir(group.logdir)
    if not rundir.has_spec():
        return "pending"
    old = rundir.read_spec(REMEDY)
    rundir.refuse_other_run(old, _expected_spec(plan, group, old), REMEDY)
    if not rundir.has_checkpoint():
        # results kept without their checkpoints (e.g. committed): finished if metrics.jsonl reached the end
        history = rundir.history()
        finished = any(e.get("phase") == "train" and e.get("step") == group.steps for e in history)
        return "finished" if finished else "pending"
    record = read_record(rundir.checkpoint)
    return "finished" if record["phase"] == "train" and record["step"] == group.steps else "partial"


def _expected_spec(plan: StudyPlan, group: Group, old: RunSpec) -> RunSpec:
    """The RunSpec ``run_training`` would write, with the dataset's hash and env id taken from ``old``
    (comparing them needs the dataset, which ``run_training`` checks when it runs)."""
    return make_spec(
        group.algorithm,
        get_algorithm(group.algorithm).config_cls(**group.overrides),
        data=old.data,
        dataset_sha256=old.dataset_sha256,
        env_id=old.env_id,
        **plan.run_arguments(group),
    )


def run_study(
    spec: StudySpec | str | Path,
    out_dir: str | Path,
    *,
    budget: str | Budget = "paper",
    tasks: Sequence[str] | None = None,
    mixes: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    data_dir: Path | None = None,
    progress: GroupProgress | None = None,
    devices: int | str | None = None,
    first_seed: int = 0,
) -> list[GroupResult]:
    """Runs every group of the study in turn (see the module docstring); returns one result per group.

    ``progress(group, index, total, steps)`` is a context manager around each trained group that yields
    a logger for its metrics (or None), e.g. ``rich_group_progress``. ``devices`` shards each group's runs
    (``brackit.train.train``; ``"auto"``: the most devices that divide the group's runs). The output
    directory is locked (``OUT/.lock``) for the study's duration: a second study there is refused.
    """
    if not isinstance(spec, StudySpec):
        spec = load_spec(spec)
    plan = plan_study(
        spec, out_dir, budget=budget, tasks=tasks, mixes=mixes, variants=variants, first_seed=first_seed
    )
    with DirectoryLock(plan.out_dir):
        AtomicDebris.sweep(plan.out_dir, ["study.json"])  # a killed index write's temporary
        return _run_plan(plan, data_dir=data_dir, progress=progress, devices=devices)


def _run_plan(
    plan: StudyPlan,
    *,
    data_dir: Path | None,
    progress: GroupProgress | None,
    devices: int | str | None,
) -> list[GroupResult]:
    states = {group.logdir: group_state(plan, group) for group in plan.groups}  # refuses clashes up front
    statuses = {group.logdir: states[group.logdir] for group in plan.groups}
    write_index(plan, statuses)
    resolved: dict[str, Path] = {}
    results = []
    for index, group in enumerate(plan.groups):
        if states[group.logdir] == "finished":
            results.append(GroupResult(group, "skipped", _final_return(group.logdir)))
            continue
        if group.dataset not in resolved:
            resolved[group.dataset] = resolve_data(
                group.dataset, size=plan.spec.dataset_size, seed=plan.spec.dataset_seed, cache_dir=data_dir
            )
        statuses[group.logdir] = "running"
        write_index(plan, statuses)
        try:
            context = progress(group, index, len(plan.groups), group.steps) if progress else None
            with context or contextlib.nullcontext() as logger:
                run_training(
                    group.algorithm,
                    resolved[group.dataset],
                    logdir=group.logdir,
                    overrides=group.overrides,
                    checkpoint_every=group.checkpoint_every,
                    resume=states[group.logdir] == "partial",
                    logger=logger,
                    progress=False,  # ``progress`` above shows the group's bar
                    devices=devices,
                    **plan.run_arguments(group),
                )
        except BaseException:
            statuses[group.logdir] = "interrupted"
            write_index(plan, statuses)
            raise
        statuses[group.logdir] = "finished"
        write_index(plan, statuses)
        status = "resumed" if states[group.logdir] == "partial" else "trained"
        results.append(GroupResult(group, status, _final_return(group.logdir)))
    return results


def _final_return(logdir: Path) -> float | None:
    history = RunDir(logdir).history()
    evals = [entry["eval/return_mean"] for entry in history if "eval/return_mean" in entry]
    return float(sum(evals[-1]) / len(evals[-1])) if evals else None


def write_index(plan: StudyPlan, statuses: dict[Path, str]) -> Path:
    """``OUT/study.json``: this plan's groups (and those of earlier invocations with other filters)."""
    path = plan.out_dir / "study.json"
    groups: dict[str, dict[str, Any]] = {}
    if path.exists():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            groups = {g["logdir"]: g for g in json.loads(path.read_text())["groups"]}
    for group in plan.groups:
        logdir = str(group.logdir.relative_to(plan.out_dir))
        groups[logdir] = {
            "logdir": logdir,
            "dataset": group.dataset_name,
            "data": group.dataset,
            "name": group.name,
            "label": group.name,
            "variants": list(group.variants),
            "algorithm": group.algorithm,
            "sweep": group.sweep,
            "steps": group.steps,
            "seeds": group.num_seeds,
            "first_seed": group.first_seed,
            "runs": plan.runs(group),
            "status": statuses[group.logdir],
        }
    spec = plan.spec
    index = {
        "study": spec.name,
        "source": spec.source,
        "budget": plan.budget,
        "steps": spec.steps,
        "seeds": spec.seeds,
        "dataset_size": spec.dataset_size,
        "eval_every": plan.eval_every,
        "eval_episodes": spec.eval_episodes,
        "groups": sorted(groups.values(), key=lambda g: g["logdir"]),
    }
    atomic_write_text(path, json.dumps(index, indent=2) + "\n")
    return path


@contextlib.contextmanager
def rich_group_progress(group: Group, index: int, total: int, steps: int) -> Iterator[Logger]:
    """A line naming the group, then a progress bar over its steps (``run_study(progress=...)``)."""
    from rich.console import Console

    from brackit.progress import TrainProgressBar

    Console().print(
        f"[bold]\\[{index + 1}/{total}][/bold] {group.dataset_name}/{group.logdir.name} ({group.algorithm})"
    )
    with TrainProgressBar(steps) as bar:
        yield bar.update


def print_plan(plan: StudyPlan, data_dir: Path | None = None) -> None:
    """One line per group (dataset, logdir name, algorithm, runs, sweep, state on disk), then totals."""
    spec = plan.spec
    print(f"study {spec.name} ({spec.source}), budget {plan.budget}, out {plan.out_dir}")
    states = [group_state(plan, group) for group in plan.groups]
    for group, state in zip(plan.groups, states, strict=True):
        sweep = " ".join(f"{k}={'/'.join(_format(v) for v in vs)}" for k, vs in group.sweep.items())
        print(
            f"  {group.dataset_name:<22} {group.logdir.name:<30} {group.algorithm:<12} "
            f"{plan.runs(group):>3} runs x {group.steps:>7,} steps  {state:<8} {sweep}".rstrip()
        )
    to_build = [
        d
        for d in spec.datasets
        if not Path(d).exists()
        and not cache_path(*parse_task_mix(d), spec.dataset_size, spec.dataset_seed, data_dir).exists()
    ]
    todo = [g for g, s in zip(plan.groups, states, strict=True) if s != "finished"]
    print(
        f"{len(plan.groups)} groups = vmapped programs ({len(todo)} to run: "
        f"{sum(plan.runs(g) for g in todo)} runs, {sum(plan.runs(g) * g.steps for g in todo):,} updates); "
        f"{len(spec.datasets)} datasets of {spec.dataset_size:,} transitions ({len(to_build)} to build); "
        f"evaluation every {plan.eval_every:,} steps x {spec.eval_episodes} episodes"
        + (f"; {len(plan.duplicates)} duplicate cells dropped" if plan.duplicates else "")
    )
