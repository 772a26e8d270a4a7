"""Checkpoints without pickle: every leaf of the training state in one npz, the rest in JSON.

A checkpoint holds the state pytree (leaves keyed by their tree path; PRNG keys stored as their raw
data), the phase and step reached, the metrics history, the run's metadata (algorithm, config,
dataset sha256, runs) and, for a run trained on normalised observations (``normalize_obs``), the
observation statistics (arrays ``obs_mean`` and ``obs_std``; a checkpoint without them is a run on raw
observations). Restoring rebuilds the state's structure from the algorithm's ``init`` and fills
it leaf by leaf, matched by tree path (the saved order does not matter), checking every path, shape
and dtype. Writes are atomic.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.errors import BrackitError
from brackit.files import atomic_path
from brackit.types import ObsStats

FORMAT_VERSION = 1
_KEY_PREFIX = "key::"
LEAVES_ADDED_LATER = frozenset({".beta_actor", ".beta_critic"})
"""Leaves of training states that checkpoints written before they existed lack (TD3+BC/ReBRAC's betas,
state fields since they became sweepable): ``load_states`` takes them from the template, whose values
``init`` set from the config, as the old code read them."""


class CheckpointError(BrackitError, ValueError):
    """A checkpoint that cannot be used: names the file and what is wrong."""


# ----------------------------------------------------------------------------------------- pytrees


def _leaf_items(tree: Any) -> list[tuple[str, np.ndarray]]:
    items = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path)
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            items.append((_KEY_PREFIX + name, np.asarray(jax.random.key_data(leaf))))
        else:
            items.append((name, np.asarray(leaf)))
    return items


def save_checkpoint(
    path: str | Path,
    states: Any,
    *,
    phase: str,
    step: int,
    history: list[dict[str, Any]],
    metadata: dict[str, Any],
    obs_stats: ObsStats | None = None,
    run_sha256: str | None = None,
) -> Path:
    """Writes the states, the observation statistics (if any) and a JSON record (phase, step, history,
    metadata and ``run_sha256``, the hash of the run the checkpoint belongs to, ``RunSpec.identity_sha256``:
    a resume refuses a checkpoint of another run) into one npz, atomically."""
    path = Path(path)
    arrays = {f"leaf{index:05d}": value for index, (_, value) in enumerate(_leaf_items(states))}
    if obs_stats is not None:
        arrays["obs_mean"] = np.asarray(obs_stats.mean, np.float32)
        arrays["obs_std"] = np.asarray(obs_stats.std, np.float32)
    names = [name for name, _ in _leaf_items(states)]
    record = {
        "format_version": FORMAT_VERSION,
        "phase": phase,
        "step": int(step),
        "leaf_names": names,
        "history": [{k: np.asarray(v).tolist() for k, v in entry.items()} for entry in history],
        "metadata": metadata,
    }
    if run_sha256 is not None:
        record["run_sha256"] = run_sha256
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, record_json=np.array(json.dumps(record)), **arrays)
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """The JSON part of a checkpoint (phase, step, history, metadata) without its arrays."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return json.loads(str(npz["record_json"]))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as error:
        raise CheckpointError(f"{path}: not a readable brackit checkpoint ({error})") from error


def load_states(path: str | Path, template: Any) -> Any:
    """The saved states, in the structure of ``template`` (e.g. fresh states from ``init``)."""
    path = Path(path)
    record = read_record(path)
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {record.get('format_version')}, expected {FORMAT_VERSION}"
        )
    template_items = _leaf_items(template)
    names = record["leaf_names"]
    # leaves are matched by name, so a state whose fields moved (e.g. into a shared base class) still loads
    index_of = {name: index for index, name in enumerate(names)}
    fill = {name for name, _ in template_items if name in LEAVES_ADDED_LATER and name not in index_of}
    expected_names = {name for name, _ in template_items if name not in fill}
    if set(names) != expected_names or len(names) != len(index_of):
        missing = sorted(expected_names - set(names)) or sorted(set(names) - expected_names)
        raise CheckpointError(
            f"{path}: the state's structure differs from this algorithm/config's (first missing leaf: "
            f"{missing[0] if missing else '?'})"
        )
    leaves = []
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name, expected in template_items:
                if name in fill:
                    leaves.append(jnp.asarray(expected))
                    continue
                value = npz[f"leaf{index_of[name]:05d}"]
                if value.shape != expected.shape or value.dtype != expected.dtype:
                    raise CheckpointError(
                        f"{path}: leaf {name}: expected {expected.dtype}{list(expected.shape)}, "
                        f"found {value.dtype}{list(value.shape)}"
                    )
                leaves.append(
                    jax.random.wrap_key_data(value) if name.startswith(_KEY_PREFIX) else jnp.asarray(value)
                )
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: corrupted checkpoint ({error})") from error
    treedef = jax.tree_util.tree_structure(template)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def load_obs_stats(path: str | Path) -> ObsStats | None:
    """The observation statistics a run was trained with, or None (raw observations; every checkpoint
    written before they existed)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "obs_mean" not in npz.files:
                return None
            mean, std = npz["obs_mean"], npz["obs_std"]
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as error:
        raise CheckpointError(f"{path}: corrupted checkpoint ({error})") from error
    if mean.shape != std.shape or mean.ndim != 1 or not np.all(std > 0):
        raise CheckpointError(f"{path}: invalid observation statistics {mean.shape}, {std.shape}")
    return ObsStats(mean=mean, std=std)
