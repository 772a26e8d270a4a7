"""Exported policies: ``brackit export`` writes one, ``load_policy`` runs it with jax and numpy alone.

An exported policy is two files:

    FILE        the bytes of ``jax.export.Exported.serialize()``: a StableHLO program (lowered for CPU and
                CUDA) with the trained parameters as constants and the batch dimension symbolic
    FILE.json   its card: algorithm, env id, dims, action bounds, dataset sha256, steps, final score ...

The program maps raw environment observations to actions in environment units; the observation
normalisation of the run (if any), the evaluation rule and the scaling from the unit box to the action
bounds are inside it. Its calling convention depends on the rule (the card's ``inputs`` says which):

    deterministic rule ('mode'):            actions = program(obs)
    sampling rule ('max_q' of BCQ/BEAR, 'sample'):  actions = program(obs, key)

with ``obs`` float32[B, O], ``key`` uint32[2] (raw threefry2x32 key data, e.g.
``jax.random.key_data(jax.random.key(0))``) and ``actions`` float32[B, A]. Any B works.

Loading needs no brackit at all::

    import jax, numpy as np
    program = jax.export.deserialize(bytearray(open("policy.jaxexport", "rb").read()))
    actions = np.asarray(program.call(obs))  # sampling rules: program.call(obs, key)

``load_policy`` does the same with checks and a key stream for sampling rules. This module imports only
jax, numpy and the standard library (and brackit.errors, which imports nothing), so it pulls no training
code (flax, optax, brackit.algos) into the process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from brackit.errors import BrackitError

FORMAT = "brackit-policy"
FORMAT_VERSION = 1
KEY_IMPL = "threefry2x32"
"""The PRNG whose raw key data (uint32[2]) a sampling program takes."""
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip (np.savez of nothing)


class PolicyError(BrackitError, ValueError):
    """An exported policy that cannot be used (or a bad call of one): names the file and the problem."""


def card_path(path: str | os.PathLike) -> Path:
    """The card of an exported policy: ``FILE`` -> ``FILE.json``."""
    return Path(str(path) + ".json")


def is_exported_policy(path: str | os.PathLike) -> bool:
    """True for an existing file that is not a zip archive (a checkpoint or dataset npz is one)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(4) not in _ZIP_MAGICS


class Policy:
    """A loaded exported policy: ``policy(obs)`` -> actions in environment units (numpy).

    ``obs`` is float32-convertible [B, O] (or one observation [O], giving [A]). A sampling rule takes
    ``key`` (uint32[2], see the module docstring); without one the policy draws its keys from a numpy
    generator seeded with ``seed``, so a fresh ``load_policy(path, seed=s)`` repeats its action sequence.
    """

    def __init__(self, exported: Any, card: dict[str, Any], path: Path, seed: int = 0) -> None:
        self.exported = exported
        self.card = card
        self.path = path
        avals = exported.in_avals
        if len(avals) not in (1, 2) or len(avals[0].shape) != 2 or len(exported.out_avals) != 1:
            raise PolicyError(f"{path}: not a brackit policy program (inputs {avals})")
        self.obs_dim = int(avals[0].shape[1])
        self.action_dim = int(exported.out_avals[0].shape[1])
        self.needs_key = len(avals) == 2
        self._keys = np.random.default_rng(seed)
        self._call = jax.jit(exported.call)

    def __call__(self, obs: Any, key: Any = None) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise PolicyError(
                f"{self.path}: expected observations [B, {self.obs_dim}], got shape {list(obs.shape)}"
            )
        if self.needs_key:
            if key is None:
                key = self._keys.integers(0, 2**32, size=2, dtype=np.uint32)
            actions = self._call(obs, np.asarray(key, np.uint32).reshape(2))
        else:
            if key is not None:
                raise PolicyError(f"{self.path}: this policy is deterministic and takes no key")
            actions = self._call(obs)
        actions = np.asarray(actions)
        return actions[0] if single else actions

    def __repr__(self) -> str:
        what = ", ".join(
            f"{k}={self.card[k]!r}" for k in ("algorithm", "env_id", "eval_mode") if k in self.card
        )
        return f"Policy({str(self.path)!r}, obs_dim={self.obs_dim}, action_dim={self.action_dim}, {what})"


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card beside an exported policy, or {} when there is none."""
    card = card_path(path)
    if not card.exists():
        return {}
    try:
        data = json.loads(card.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PolicyError(f"{card}: not a readable policy card ({error})") from error
    if not isinstance(data, dict):
        raise PolicyError(f"{card}: not a policy card (expected a JSON object)")
    return data


def load_policy(path: str | os.PathLike, seed: int = 0) -> Policy:
    """The exported policy at ``path`` (written by ``brackit export``) as a callable ``Policy``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the policy file ({error.strerror or error})") from error
    if data[:4] in _ZIP_MAGICS:
        raise PolicyError(
            f"{path}: a zip archive (a checkpoint?), not an exported policy; see `brackit export`"
        )
    try:
        exported = jax.export.deserialize(bytearray(data))
    except Exception as error:  # flatbuffers raises assorted errors on foreign bytes
        raise PolicyError(
            f"{path}: not a serialized jax.export program ({type(error).__name__}: {error})"
        ) from error
    return Policy(exported, read_card(path), path, seed)
