"""Reading and writing datasets: brackit npz, D4RL HDF5 (read) and Minari directories (read and write).

D4RL semantics, and how they differ from d4rl's ``qlearning_dataset``:
- ``terminals`` give discount 0; ``timeouts`` end an episode without ending the task (discount 1).
- With ``next_observations`` in the file, every row is kept, timeout rows included (discount 1, their
  true next observation). ``qlearning_dataset`` ignores ``next_observations``, takes ``observations[i+1]``
  and drops every timeout row and the last row.
- Without ``next_observations``, ``next_obs[i] = observations[i+1]``; timeout rows and a final row that is
  not terminal are dropped (their next observation is unknown), as ``qlearning_dataset`` does. A terminal
  row keeps ``next_obs = obs`` as a placeholder (its discount is 0, so it never enters a target), where
  ``qlearning_dataset`` takes the first observation of the next episode.
- ``next_action[i] = actions[i+1]`` only inside an episode; at an episode's last row it repeats the row's
  action and ``next_action_valid`` is False.

Every write is atomic: data goes to a hidden temporary sibling, is flushed, then renamed into place, so a
killed write never leaves a file under the target name.
"""

from __future__ import annotations

import errno
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brackit.data.dataset import (
    ARRAY_FIELDS,
    DatasetCard,
    Episode,
    OfflineDataset,
    arrays_from_episodes,
    coerce_field,
    episodes_from_arrays,
    make_dataset,
)
from brackit.errors import ConfigError, DatasetError
from brackit.files import atomic_path, atomic_write_text, restore_replaced_directory

FORMATS = ("npz", "minari")
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MINARI_WRITE_VERSION = "0.5.4"  # a version that minari's loader (0.4.0-0.5.4) accepts


# ----------------------------------------------------------------------------------------- detection


def detect_format(path: str | os.PathLike) -> str:
    """'npz', 'd4rl' or 'minari', from the content (not the file name)."""
    path = Path(path)
    restore_replaced_directory(path)  # a Minari directory whose replacement a kill interrupted
    if not path.exists():
        raise DatasetError(path, "path", "an existing file or directory")
    if path.is_dir():
        if is_minari_directory(path):
            return "minari"
        raise DatasetError(path, "data/metadata.json", "a Minari dataset directory")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    if head == _HDF5_MAGIC:
        return "d4rl"
    raise DatasetError(path, "file", "a brackit .npz (zip) or a D4RL HDF5 file", f"header {head!r}")


def is_minari_directory(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "data" / "metadata.json").is_file() or (path / "metadata.json").is_file()


def _json_object(text: str | bytes, path: object, field: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; anything else is a ``DatasetError`` naming ``field``."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, RecursionError) as error:
        raise DatasetError(path, field, "a JSON object", f"unreadable JSON ({error})") from error
    if not isinstance(value, dict):
        raise DatasetError(path, field, "a JSON object", f"a JSON {type(value).__name__}")
    return value


def load_dataset(path: str | os.PathLike, env_id: str | None = None) -> OfflineDataset:
    """Loads a dataset in any supported format (detected from the content) and validates it.

    ``env_id`` (a gymnasium id) checks observation/action widths and sets the action bounds; without it
    the id stored in the file, if any, is used.
    """
    fmt = detect_format(path)
    if fmt == "npz":
        return read_npz(path, env_id)
    if fmt == "d4rl":
        return read_d4rl(path, env_id)
    return read_minari(path, env_id)


def save_dataset(dataset: OfflineDataset, path: str | os.PathLike, format: str = "npz") -> Path:
    """Writes ``dataset`` atomically as 'npz' (file) or 'minari' (directory); returns the path."""
    if format == "npz":
        return write_npz(dataset, path)
    if format == "minari":
        return write_minari(dataset, path)
    raise DatasetError(path, "format", f"one of {FORMATS}", repr(format))


def check_writable(path: str | os.PathLike, format: str) -> None:
    """The writers' own refusals, whatever ``overwrite`` says: an npz onto a directory, a Minari dataset
    onto a file or onto a directory that holds something else (an ``OSError`` naming the path)."""
    path = Path(path)
    if format == "npz" and path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not an npz file to write", str(path))
    if format == "minari" and path.exists():
        if not (path.is_dir() and (is_minari_directory(path) or not any(path.iterdir()))):
            what = "a directory that is not a Minari dataset" if path.is_dir() else "not a directory"
            raise FileExistsError(errno.EEXIST, f"exists and is {what}: refusing to replace it", str(path))


def check_destination(path: str | os.PathLike, format: str, overwrite: bool) -> None:
    """Refuses, before a dataset is read or built, what ``save_dataset(dataset, path, format)`` could not
    write (an unknown format, ``check_writable``) or would replace without being asked (unless
    ``overwrite``): an npz file or the card beside it, a Minari dataset directory (``brackit data convert``
    and ``brackit data build``)."""
    if format not in FORMATS:
        raise DatasetError(path, "format", f"one of {FORMATS}", repr(format))
    check_writable(path, format)
    path = Path(path)
    if format == "npz":
        replaced = [target for target in (path, card_path(path)) if target.exists() or target.is_symlink()]
    else:
        replaced = [path] if path.is_dir() and is_minari_directory(path) else []
    if replaced and not overwrite:
        names = ", ".join(str(target) for target in replaced)
        verb = "exists" if len(replaced) == 1 else "exist"
        raise ConfigError(
            f"{names} already {verb}; pass --overwrite to replace it, or choose another destination"
        )


# ----------------------------------------------------------------------------------------- npz


def card_path(path: str | os.PathLike) -> Path:
    """The human-readable card written beside an npz: ``name.npz`` -> ``name.card.json``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".npz") + ".card.json")


def write_npz(dataset: OfflineDataset, path: str | os.PathLike) -> Path:
    """Compressed npz holding the arrays and the card (as a JSON string); a card file goes beside it."""
    path = Path(path)
    check_writable(path, "npz")
    arrays = dataset.host_arrays()
    card_json = json.dumps(dataset.card.to_dict(), sort_keys=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, card_json=np.array(card_json), **arrays)
    atomic_write_text(card_path(path), json.dumps(dataset.card.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_npz(path: str | os.PathLike, env_id: str | None = None) -> OfflineDataset:
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "card_json" not in names:
                raise DatasetError(path, "card_json", "present (a brackit npz holds its card)")
            for name in (*ARRAY_FIELDS, "card_json"):
                if name not in names:
                    raise DatasetError(path, name, "present")
                try:
                    arrays[name] = npz[name]
                except ValueError as error:  # object arrays need pickle, which is refused
                    raise DatasetError(
                        path, name, "a plain numeric array (pickled objects are refused)"
                    ) from error
    except (DatasetError, PermissionError):
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
        raise DatasetError(path, "file", "a complete, uncorrupted npz archive", str(error)) from error
    card_json = arrays.pop("card_json")
    if card_json.dtype.kind != "U" or card_json.ndim != 0:
        raise DatasetError(
            path, "card_json", "a JSON string", f"{card_json.dtype} array of shape {card_json.shape}"
        )
    card = DatasetCard.from_dict(_json_object(str(card_json), path, "card_json"), path)
    if env_id is not None and card.env_id is not None and env_id != card.env_id:
        raise DatasetError(path, "card.env_id", repr(env_id), repr(card.env_id))
    extra = card.extra
    return make_dataset(
        arrays,
        path=path,
        source_format=card.source_format,
        env_id=env_id or card.env_id,
        action_low=np.asarray(card.action_low),
        action_high=np.asarray(card.action_high),
        behavior=card.behavior,
        extra=extra,
        expected_sha256=card.sha256,
    )


# ----------------------------------------------------------------------------------------- D4RL HDF5


def _open_hdf5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except PermissionError as error:
        raise PermissionError(errno.EACCES, "Permission denied", str(path)) from error
    except OSError as error:
        raise DatasetError(path, "file", "a readable HDF5 file (it may be truncated or corrupted)") from error


def _hdf5_node(handle: Any, name: str, path: Path, kind: str, field: str | None = None) -> Any:
    """``handle[name]``, which must be an HDF5 ``kind`` ('dataset' or 'group')."""
    import h5py

    field = field or name
    if name not in handle:
        raise DatasetError(path, field, "present")
    try:
        node = handle[name]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:  # e.g. a dangling link
        raise DatasetError(path, field, f"a readable HDF5 {kind}", str(error)) from error
    wanted = h5py.Dataset if kind == "dataset" else h5py.Group
    if not isinstance(node, wanted):
        found = "a group" if isinstance(node, h5py.Group) else f"a {type(node).__name__}"
        found = "a dataset" if isinstance(node, h5py.Dataset) else found
        hint = " (an array; groups such as Dict spaces are unsupported)" if kind == "dataset" else ""
        raise DatasetError(path, field, f"an HDF5 {kind}{hint}", found)
    return node


def _read_hdf5_array(
    handle: Any, name: str, path: Path, dtype: Any, rank: int, field: str | None = None
) -> np.ndarray:
    """The dataset ``handle[name]`` as a checked array (``coerce_field``: dtype, rank, widths, values)."""
    field = field or name
    node = _hdf5_node(handle, name, path, "dataset", field)
    try:
        value = node[()]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise DatasetError(path, field, "a readable array (the file may be truncated)", str(error)) from error
    return coerce_field(value, dtype, rank, path, field)


# The arrays that D4RL and Minari name alike: (dtype, rank).
_STEP_FIELDS: dict[str, tuple[Any, int]] = {
    "observations": (np.float32, 2),
    "actions": (np.float32, 2),
    "rewards": (np.float32, 1),
}
# The arrays of a D4RL file as they are used: (dtype, rank); next_observations is optional.
_D4RL_FIELDS: dict[str, tuple[Any, int]] = {
    **_STEP_FIELDS,
    "terminals": (np.bool_, 1),
    "timeouts": (np.bool_, 1),
    "next_observations": (np.float32, 2),
}
# The arrays of a Minari episode group: (dtype, rank).
_MINARI_FIELDS: dict[str, tuple[Any, int]] = {
    **_STEP_FIELDS,
    "terminations": (np.bool_, 1),
    "truncations": (np.bool_, 1),
}
_EPISODE_NAME = re.compile(r"^episode_(\d+)$")


def read_d4rl(path: str | os.PathLike, env_id: str | None = None) -> OfflineDataset:
    """Reads a D4RL HDF5 file without the ``d4rl`` package (see the module docstring for semantics)."""
    path = Path(path)
    fields = {}
    with _open_hdf5(path) as handle:
        for name, (dtype, rank) in _D4RL_FIELDS.items():
            if name != "next_observations" or name in handle:
                fields[name] = _read_hdf5_array(handle, name, path, dtype, rank)
    n = fields["rewards"].shape[0]
    for name, array in fields.items():
        if array.shape[0] != n:
            raise DatasetError(path, name, f"{n} rows (as 'rewards')", f"{array.shape[0]} rows")
    observations, actions, rewards = fields["observations"], fields["actions"], fields["rewards"]
    next_observations = fields.get("next_observations")
    terminals = fields["terminals"]
    timeouts = fields["timeouts"] & ~terminals
    ends = terminals | timeouts
    if next_observations is not None:
        keep = np.ones(n, bool)
        next_obs = next_observations
    else:
        # The next observation of row i is observations[i + 1] unless row i ends an episode.
        keep = ~timeouts
        if n:
            keep[-1] = bool(terminals[-1])
        next_obs = np.concatenate([observations[1:], observations[-1:]])
        next_obs = np.where(terminals[:, None], observations, next_obs)
    if n and not keep.any():
        raise DatasetError(path, "rewards", "at least one usable transition")
    episode_id_all = (
        np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int32) if n else np.zeros(0, np.int32)
    )
    next_action_valid = np.zeros(n, bool)
    next_action = actions.copy()
    if n > 1:
        inside = ~ends[:-1]  # actions[i + 1] is taken at next_obs[i] even when row i + 1 is dropped
        next_action_valid[:-1] = inside
        next_action[:-1] = np.where(inside[:, None], actions[1:], actions[:-1])
    arrays = {
        "obs": observations[keep],
        "action": actions[keep],
        "reward": rewards[keep],
        "discount": 1.0 - terminals[keep].astype(np.float32),
        "next_obs": next_obs[keep],
        "next_action": next_action[keep],
        "next_action_valid": next_action_valid[keep],
        "episode_id": episode_id_all[keep],
        "timeout": timeouts[keep],
    }
    if n:  # renumber episodes consecutively (dropping rows can remove a whole one-row episode)
        _, arrays["episode_id"] = np.unique(arrays["episode_id"], return_inverse=True)
    return make_dataset(
        arrays,
        path=path,
        source_format="d4rl",
        env_id=env_id,
        extra={"d4rl_rows": int(n), "d4rl_rows_dropped": int(n - keep.sum())},
    )


# ----------------------------------------------------------------------------------------- Minari


def _minari_data_dir(path: Path) -> Path:
    return path / "data" if (path / "data" / "metadata.json").exists() else path


def _box_space_json(low: tuple[float, ...] | np.ndarray, high: tuple[float, ...] | np.ndarray) -> str:
    low, high = list(map(float, low)), list(map(float, high))
    return json.dumps({"type": "Box", "dtype": "float32", "shape": [len(low)], "low": low, "high": high})


def _minari_metadata(metadata_path: Path) -> dict[str, Any]:
    """metadata.json of a Minari dataset, each entry brackit uses checked (types, JSON, Box bounds)."""
    try:
        text = metadata_path.read_bytes()
    except PermissionError:
        raise
    except OSError as error:
        raise DatasetError(metadata_path, "metadata.json", "a readable file", str(error)) from error
    metadata = _json_object(text, metadata_path, "metadata.json")
    if metadata.get("data_format", "hdf5") != "hdf5":
        raise DatasetError(metadata_path, "data_format", "'hdf5'", repr(metadata.get("data_format")))
    for name in ("action_space", "env_spec", "algorithm_name"):
        if metadata.get(name) is not None and not isinstance(metadata[name], str):
            raise DatasetError(metadata_path, name, "a string", f"{metadata[name]!r}"[:80])
    if metadata.get("brackit_card") is not None and not isinstance(metadata["brackit_card"], dict):
        raise DatasetError(
            metadata_path, "brackit_card", "a JSON object", f"{metadata['brackit_card']!r}"[:80]
        )
    return metadata


def read_minari(path: str | os.PathLike, env_id: str | None = None) -> OfflineDataset:
    """Reads a Minari dataset directory with h5py (the ``minari`` package is not needed)."""
    path = Path(path)
    data_dir = _minari_data_dir(path)
    metadata_path = data_dir / "metadata.json"
    metadata = _minari_metadata(metadata_path)
    low = high = None
    if metadata.get("action_space"):
        space = _json_object(metadata["action_space"], metadata_path, "action_space")
        if space.get("type") != "Box":
            raise DatasetError(metadata_path, "action_space", "a Box space", repr(space.get("type")))
        for bound in ("low", "high"):
            if bound not in space:
                raise DatasetError(metadata_path, f"action_space.{bound}", "present in a Box space")
        low = coerce_field(space["low"], np.float32, 1, metadata_path, "action_space.low")
        high = coerce_field(space["high"], np.float32, 1, metadata_path, "action_space.high")
    if env_id is None and metadata.get("env_spec"):
        env_id = _json_object(metadata["env_spec"], metadata_path, "env_spec").get("id")
        if env_id is not None and not isinstance(env_id, str):
            raise DatasetError(metadata_path, "env_spec.id", "a string", f"{env_id!r}"[:80])
    h5_path = data_dir / "main_data.hdf5"
    if not h5_path.is_file():
        raise DatasetError(h5_path, "main_data.hdf5", "present (a file)")
    episodes: list[Episode] = []
    with _open_hdf5(h5_path) as handle:
        matches = (_EPISODE_NAME.match(k) for k in handle)
        names = [m.group(0) for m in sorted((m for m in matches if m), key=lambda m: int(m.group(1)))]
        if not names:
            raise DatasetError(h5_path, "episode_0", "at least one episode group")
        for name in names:
            group = _hdf5_node(handle, name, h5_path, "group")
            fields = {
                key: _read_hdf5_array(group, key, h5_path, dtype, rank, f"{name}/{key}")
                for key, (dtype, rank) in _MINARI_FIELDS.items()
            }
            episodes.append(Episode(**fields))
    arrays = arrays_from_episodes(episodes, h5_path)
    brackit_card = metadata.get("brackit_card")
    card = DatasetCard.from_dict(brackit_card, metadata_path) if brackit_card else None
    extra = card.extra if card else {"minari_dataset_id": metadata.get("dataset_id")}
    for name in ("ref_min_score", "ref_max_score"):  # the normalized score's references (brackit.scores)
        value = metadata.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not np.isfinite(value):
                raise DatasetError(metadata_path, name, "a finite number", repr(value))
            extra[name] = float(value)
    return make_dataset(
        arrays,
        path=path,
        source_format="minari",
        env_id=env_id,
        action_low=low,
        action_high=high,
        behavior=card.behavior if card else metadata.get("algorithm_name"),
        extra=extra,
    )


def write_minari(dataset: OfflineDataset, path: str | os.PathLike, dataset_id: str | None = None) -> Path:
    """Writes ``<path>/data/{metadata.json, main_data.hdf5}`` in Minari's layout (atomically).

    To load it with ``minari.load_dataset(ID)``, write it to ``$MINARI_DATASETS_PATH/ID``.
    """
    import h5py

    path = Path(path)
    check_writable(path, "minari")
    card = dataset.card
    episodes = episodes_from_arrays(dataset.host_arrays(), path)
    if dataset_id is None:
        parts = path.resolve().parts
        dataset_id = "/".join(parts[-2:]) if len(parts) >= 2 else path.name
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id,
        "total_episodes": len(episodes),
        "total_steps": card.num_transitions,
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": _box_space_json([-np.inf] * card.obs_dim, [np.inf] * card.obs_dim),
        "action_space": _box_space_json(card.action_low, card.action_high),
        "algorithm_name": card.behavior or "unknown",
        "minari_version": MINARI_WRITE_VERSION,
        "brackit_card": card.to_dict(),
    }
    for name in ("ref_min_score", "ref_max_score"):  # where Minari keeps a dataset's score references
        if name in card.extra:
            metadata[name] = card.extra[name]
    if card.env_id is not None:
        import gymnasium as gym

        metadata["env_spec"] = gym.spec(card.env_id).to_json()
    with atomic_path(path, directory=True) as tmp:
        data_dir = tmp / "data"
        data_dir.mkdir()
        with h5py.File(data_dir / "main_data.hdf5", "w") as handle:
            for index, episode in enumerate(episodes):
                group = handle.create_group(f"episode_{index}")
                group.attrs["id"] = index
                group.attrs["total_steps"] = int(episode.actions.shape[0])
                group.create_dataset("observations", data=episode.observations.astype(np.float32))
                group.create_dataset("actions", data=episode.actions.astype(np.float32))
                group.create_dataset("rewards", data=episode.rewards.astype(np.float64))
                group.create_dataset("terminations", data=episode.terminations.astype(bool))
                group.create_dataset("truncations", data=episode.truncations.astype(bool))
                group.create_group("infos")
        metadata["dataset_size"] = round((data_dir / "main_data.hdf5").stat().st_size / 1e6, 1)
        (data_dir / "metadata.json").write_text(json.dumps(metadata))
    return path


def with_card(dataset: OfflineDataset, update: Callable[[DatasetCard], DatasetCard]) -> OfflineDataset:
    """A copy of ``dataset`` with its card changed (arrays shared)."""
    return dataset.replace(card=update(dataset.card))
