"""``brackit export``: one run of a trained logdir as a standalone ``jax.export`` program and its card.

The program (format and calling convention: ``brackit.policy``) holds the run's parameters as constants
and computes, from raw observations [B, O] with B symbolic: the run's observation normalisation (if it
was trained with ``normalize_obs``), the algorithm's ``act`` under the evaluation rule (the run's
``eval_mode`` unless ``mode`` is given) and the scaling from the unit box to the action bounds. A rule
that samples (BCQ and BEAR's 'max_q', 'sample') takes the PRNG key as a second input (raw threefry2x32
data, uint32[2]) rather than baking one in, so a deployment draws fresh candidates each step; whether the
rule reads its key is found by lowering it once with a concrete batch and asking jax.export which inputs
the program keeps. The program is lowered for CPU and CUDA.

``onnx=True`` (``brackit export --onnx``; needs the optional ``brackit[onnx]`` extra, jax2onnx) also writes
``FILE.onnx``: the same computation as an ONNX model with input ``obs`` [B, O] and output ``actions``
[B, A], for deterministic rules only (jax2onnx turns JAX's PRNG into ONNX RandomNormal nodes with a fixed
seed, which onnxruntime does not run, and cannot keep the batch symbolic through BCQ's sampling).

The action bounds are the environment's (a run with an env id) or, without one, those on the card of the
dataset the run was trained on (it must still be at the path in run.json): the bounds the training
mapped to the unit box. The card (``FILE.json``) records the run's last evaluation from metrics.jsonl.

An export replaces an earlier export at the same path (its program, card and ONNX model) and nothing else:
an existing ``FILE``, ``FILE.json`` or ``FILE.onnx`` that is not part of one (a dataset, a directory) is
refused before anything is computed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from brackit.errors import BrackitError
from brackit.files import atomic_path, atomic_write_text
from brackit.policy import FORMAT, FORMAT_VERSION, KEY_IMPL, card_path
from brackit.rundir import RunDir, RunError, RunSpec

PLATFORMS = ("cpu", "cuda")
MODES = ("mode", "sample", "max_q")


class ExportError(BrackitError, ValueError):
    """A run that cannot be exported (no checkpoint, a seed out of range ...)."""


def onnx_path(out: str | os.PathLike) -> Path:
    """``FILE`` -> ``FILE.onnx``."""
    return Path(str(out) + ".onnx")


def check_outputs(out: str | os.PathLike, onnx: bool) -> None:
    """Refuses, in one line, an ``out`` (or its card, or its ONNX model) that exists and is not a file of an
    earlier export: a directory, a dataset, anything else a user would lose."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out}: a directory; --out names the policy file to write")
    card = card_path(out)
    try:
        earlier = out.is_file() and {"algorithm", "inputs"} <= set(json.loads(card.read_text()))
    except (OSError, ValueError, TypeError):  # no card, not JSON, not an object
        earlier = False
    for path in (out, card, *([onnx_path(out)] if onnx else [])):
        if (path.exists() or path.is_symlink()) and not earlier:
            raise ExportError(
                f"--out {out}: {path} exists and is not part of an earlier export; choose another --out "
                "(or move it away)"
            )


def find_checkpoint(logdir: str | os.PathLike) -> Path:
    """The checkpoint of the run directory ``logdir`` (``RunDir.checkpoint``), or ``logdir`` itself when it
    is a checkpoint file."""
    rundir = RunDir(Path(logdir))
    if rundir.path.is_file():
        return rundir.path
    if not rundir.path.is_dir():
        raise ExportError(f"{rundir.path}: no such run directory")
    if not rundir.checkpoint.is_file():
        raise ExportError(
            f"{rundir.path}: no {RunDir.CHECKPOINT} (a run directory written by `brackit train`?)"
        )
    return rundir.checkpoint


def final_evaluation(checkpoint: Path, history: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    """The last train-phase evaluation of run ``index``: from the metrics of the run directory of the
    checkpoint when they are there (``RunDir.metrics``; rewritten from the same history), else from the
    checkpoint's ``history``."""
    rundir = RunDir(checkpoint.parent)
    if rundir.metrics_path.is_file():
        try:
            history = [entry for _, entry in rundir.metrics()]
        except (OSError, UnicodeDecodeError, RunError):
            pass  # a damaged metrics file: the checkpoint's copy of the history
    evaluations = [e for e in history if e.get("phase") == "train" and "eval/return_mean" in e]
    if not evaluations:
        return None
    last = evaluations[-1]
    out: dict[str, Any] = {"step": int(last["step"])}
    for name in ("return_mean", "return_std", "length_mean", "score_mean"):
        value = last.get(f"eval/{name}")
        if value is not None:
            out[name] = float(np.asarray(value).reshape(-1)[index])
    return out


def action_bounds(spec: RunSpec, action_dim: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(low, high, source) of the run's actions: the env's, else the training dataset card's."""
    from brackit.data.dataset import env_spaces

    if spec.env_id is not None:
        _, env_action_dim, low, high = env_spaces(spec.env_id, RunDir.SPEC)
        if env_action_dim != action_dim:
            raise ExportError(f"{spec.env_id} has {env_action_dim} action dims, the run {action_dim}")
        return low, high, "env"
    from brackit.data import load_dataset

    try:
        card = load_dataset(spec.data).card
    except BrackitError as error:
        raise ExportError(
            f"the run has no env id and its dataset {spec.data!r} (for the action bounds) does not load: {error}"
        ) from error
    if card.sha256 != spec.dataset_sha256:
        raise ExportError(f"{spec.data}: not the dataset the run was trained on (sha256 differs)")
    return np.asarray(card.action_low, np.float32), np.asarray(card.action_high, np.float32), "dataset"


def export_policy(
    logdir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    mode: str | None = None,
    platforms: tuple[str, ...] = PLATFORMS,
    onnx: bool = False,
) -> dict[str, Any]:
    """Writes run ``seed`` (an index into the run grid, 0..R-1) of ``logdir`` to ``out`` and its card to
    ``out.json`` (and with ``onnx`` the ONNX model to ``out.onnx``), each atomically; returns the card."""
    import brackit
    from brackit.algos import get_algorithm
    from brackit.checkpoint import load_obs_stats, read_record
    from brackit.config import to_dict as config_to_dict
    from brackit.nets import scale_action
    from brackit.run import load_run
    from brackit.train import run_grid

    if onnx:
        import importlib.util

        if importlib.util.find_spec("jax2onnx") is None:
            raise ExportError("--onnx needs jax2onnx: pip install 'brackit[onnx]'")
    check_outputs(out, onnx)
    checkpoint = find_checkpoint(logdir)
    record = read_record(checkpoint)
    spec, config, states = load_run(checkpoint)
    runs = run_grid(spec.seeds, spec.sweep)
    if not 0 <= seed < len(runs):
        raise ExportError(
            f"--seed {seed} is out of range: {checkpoint} holds {len(runs)} run(s), indices 0..{len(runs) - 1}"
        )
    mode = mode or spec.eval_mode
    if mode not in MODES:
        raise ExportError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
    algo = get_algorithm(spec.algorithm)
    algo.check_act_mode(mode, "--mode")
    obs_dim, action_dim = (int(d) for d in record["metadata"]["dims"])
    low, high, bounds_source = action_bounds(spec, action_dim)
    state = jax.tree.map(lambda leaf: leaf[seed], states)
    obs_stats = load_obs_stats(checkpoint)

    def policy(obs: jax.Array, key_data: jax.Array) -> jax.Array:
        if obs_stats is not None:
            obs = obs_stats.normalize(obs)
        key = jax.random.wrap_key_data(key_data, impl=KEY_IMPL)
        return scale_action(algo.act(config, state, obs, key, mode), low, high)

    obs_spec = jax.ShapeDtypeStruct((1, obs_dim), jnp.float32)
    key_spec = jax.ShapeDtypeStruct((2,), jnp.uint32)
    # A concrete batch lets jax.export drop unused inputs: a rule that never reads its key is deterministic.
    probe = jax.export.export(jax.jit(policy), platforms=platforms[:1])(obs_spec, key_spec)
    needs_key = 1 in probe.module_kept_var_idx
    if onnx and needs_key:
        raise ExportError(
            f"--onnx: the rule {mode!r} of {spec.algorithm} samples; ONNX export supports deterministic rules only"
        )
    (batch,) = jax.export.symbolic_shape("B")
    obs_spec = jax.ShapeDtypeStruct((batch, obs_dim), jnp.float32)
    if needs_key:
        exported = jax.export.export(jax.jit(policy), platforms=platforms)(obs_spec, key_spec)
    else:
        exported = jax.export.export(
            jax.jit(lambda obs: policy(obs, jnp.zeros(2, jnp.uint32))), platforms=platforms
        )(obs_spec)
    program = bytes(exported.serialize())
    run = runs[seed]
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "brackit_version": brackit.__version__,
        "jax_version": jax.__version__,
        "algorithm": spec.algorithm,
        "env_id": spec.env_id,
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "action_low": [float(v) for v in low],
        "action_high": [float(v) for v in high],
        "action_bounds_source": bounds_source,
        "eval_mode": mode,
        "inputs": ["obs float32[B, O]", *(["key uint32[2]"] if needs_key else [])],
        "key_impl": KEY_IMPL if needs_key else None,
        "normalizes_obs": obs_stats is not None,
        "dataset_sha256": spec.dataset_sha256,
        "data": spec.data,
        "run_index": seed,
        "run": run,
        "runs_in_logdir": len(runs),
        "phase": record["phase"],
        "steps": int(record["step"]) if record["phase"] == "train" else 0,
        "final_eval": final_evaluation(checkpoint, record["history"], seed),
        "score_reference": record["metadata"].get("score_reference"),
        "config": config_to_dict(config),
        "platforms": list(exported.platforms),
        "calling_convention_version": exported.calling_convention_version,
        "program_sha256": hashlib.sha256(program).hexdigest(),
        "onnx": onnx_path(out).name if onnx else None,
        "checkpoint": str(checkpoint),
    }
    if onnx:
        import jax2onnx

        model = jax2onnx.to_onnx(
            lambda obs: policy(obs, jnp.zeros(2, jnp.uint32)),
            [("B", obs_dim)],
            model_name=f"brackit_{spec.algorithm}",
            input_names=["obs"],
            output_names=["actions"],
        )
        with atomic_path(onnx_path(out)) as tmp:
            tmp.write_bytes(model.SerializeToString())
    with atomic_path(out) as tmp:
        tmp.write_bytes(program)
    atomic_write_text(card_path(out), json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card
