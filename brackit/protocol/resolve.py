"""``--data PATH|TASK-MIX|MINARI-ID``: a dataset path, a BRAC-protocol dataset built once and cached, or a
Minari dataset in the local Minari cache.

A name ``TASK-MIX`` (e.g. ``hopper-eps1``, see ``brackit.protocol.build``) is built from the shipped
behavior policy with ``size`` transitions (the paper's 1M by default) and ``seed``, then cached as
``<cache_dir>/<task>-<mix>-<size>-s<seed>.npz``; the next call returns the cached file (``load_dataset``
validates it when a run loads it). ``cache_dir`` defaults to ``$BRACKIT_DATA_DIR``, else
``~/.cache/brackit/datasets``. The write is atomic, so a killed build never leaves a partial file.

A Minari dataset id (``[namespace/]name-vN``, e.g. ``mujoco/hopper/medium-v0``) resolves to
``<root>/<id>``, the directory Minari itself uses, with ``<root>`` ``$MINARI_DATASETS_PATH`` or
``~/.minari/datasets``; it must be there already (``minari download ID`` puts it there): brackit never
downloads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brackit.data.formats import save_dataset
from brackit.errors import ConfigError
from brackit.files import restore_replaced_directory
from brackit.protocol.behavior import TASKS
from brackit.protocol.build import MIXES, build

DEFAULT_SIZE = 1_000_000
"""Transitions per dataset in the BRAC paper."""
CACHE_ENV = "BRACKIT_DATA_DIR"
MINARI_ENV = "MINARI_DATASETS_PATH"
_MINARI_ID = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*-v\d+")


def default_cache_dir() -> Path:
    """``$BRACKIT_DATA_DIR`` if set, else ``~/.cache/brackit/datasets``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "brackit" / "datasets"


def parse_task_mix(name: str) -> tuple[str, str]:
    """``'hopper-eps1'`` -> ``('hopper', 'eps1')``; anything else is a ConfigError listing the valid names."""
    task, _, mix = name.partition("-")
    if task not in TASKS or mix not in MIXES:
        raise ConfigError(
            f"{name!r} is neither an existing dataset path nor a TASK-MIX name "
            f"(TASK one of {', '.join(sorted(TASKS))}; MIX one of {', '.join(MIXES)})"
        )
    return task, mix


def is_task_mix(name: str) -> bool:
    try:
        parse_task_mix(name)
    except ConfigError:
        return False
    return True


def minari_root() -> Path:
    """Minari's local dataset cache: ``$MINARI_DATASETS_PATH`` if set, else ``~/.minari/datasets``."""
    configured = os.environ.get(MINARI_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".minari" / "datasets"


def is_minari_id(name: str) -> bool:
    """``mujoco/hopper/medium-v0``-shaped (``[namespace/]name-vN``)."""
    return _MINARI_ID.fullmatch(name) is not None and not name.startswith(("/", "."))


def minari_path(dataset_id: str) -> Path:
    """The local copy of a Minari dataset: ``<minari_root()>/<id>``; a ConfigError saying where it looked
    when it is not there (nothing is downloaded)."""
    path = minari_root() / dataset_id
    restore_replaced_directory(path)  # a replacement a kill interrupted
    if (path / "data" / "metadata.json").is_file():
        return path
    where = "$MINARI_DATASETS_PATH" if os.environ.get(MINARI_ENV) else "Minari's default cache"
    raise ConfigError(
        f"{dataset_id!r} is not an existing path, and no Minari dataset of that id is in {where}: "
        f"{path}/data/metadata.json is missing (brackit does not download; `minari download {dataset_id}` does)"
    )


def cache_path(task: str, mix: str, size: int, seed: int, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"{task}-{mix}-{size}-s{seed}.npz"


def dataset_label(data: str | os.PathLike) -> str:
    """A dataset's label in reports: the file stem, without the ``-<size>-s<seed>`` that ``cache_path``
    appends (``.../hopper-eps1-100000-s0.npz`` -> ``hopper-eps1``)."""
    stem = Path(data).stem
    match = re.fullmatch(r"([a-z0-9]+-[a-z0-9]+)-\d+-s\d+", stem)
    return match.group(1) if match else stem


def resolve_data(
    data: str | os.PathLike,
    *,
    size: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Path:
    """The path of ``data``: an existing path as is, a Minari id's local copy (``minari_path``), else the
    cached (built on first use) TASK-MIX dataset.

    ``size`` and ``seed`` apply to TASK-MIX names only.
    """
    path = Path(data).expanduser()
    restore_replaced_directory(path)  # a Minari directory whose replacement a kill interrupted
    if path.exists():
        return path
    if is_minari_id(str(data)) and not is_task_mix(str(data)):
        return minari_path(str(data))
    task, mix = parse_task_mix(str(data))
    size = DEFAULT_SIZE if size is None else size
    if size < 1:
        raise ConfigError(f"dataset size must be >= 1, got {size}")
    target = cache_path(task, mix, size, seed, None if cache_dir is None else Path(cache_dir))
    if target.exists():
        return target
    dataset = build(task, mix, size=size, seed=seed, progress=progress)
    return save_dataset(dataset, target)
