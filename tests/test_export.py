"""Exported policies: `brackit export` writes a jax.export program and card; `load_policy` runs it without
training code; `brackit eval` gives a checkpoint and its export the same returns."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from test_run import pendulum_dataset

from brackit.algos import get_algorithm
from brackit.checkpoint import load_obs_stats
from brackit.cli import main
from brackit.evaluation import evaluate, exported_act
from brackit.export import export_policy
from brackit.nets import scale_action
from brackit.policy import PolicyError, card_path, load_policy
from brackit.run import load_run, run_training
from brackit.train import batched_act

TINY = {
    "td3bc": {"critic_hidden": (8, 8), "actor_hidden": (8, 8), "batch_size": 8},  # normalize_obs by default
    "bcq": {"critic_hidden": (8, 8), "actor_hidden": (8, 8), "vae_hidden": (8, 8), "batch_size": 8},
}
SEEDS = {"td3bc": (0, 1), "bcq": (0,)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """20-step runs on a random Pendulum dataset: TD3+BC with 2 seeds (deterministic rule, normalised
    observations), BCQ with 1 (a sampling rule, 'max_q')."""
    tmp = tmp_path_factory.mktemp("export")
    data = pendulum_dataset(tmp / "pendulum.npz")
    out = {}
    for algorithm in ("td3bc", "bcq"):
        run_training(
            algorithm,
            data,
            logdir=tmp / algorithm,
            steps=20,
            seeds=SEEDS[algorithm],
            overrides=TINY[algorithm],
            eval_every=20,
            eval_episodes=1,
            tensorboard=False,
        )
        out[algorithm] = tmp / algorithm
    return out


def checkpoint_actions(logdir: Path, index: int, obs: np.ndarray, key: jax.Array) -> np.ndarray:
    """Run ``index``'s actions in env units, computed from the checkpoint as `brackit eval` does."""
    spec, config, states = load_run(logdir / "checkpoint.npz")
    act = batched_act(get_algorithm(spec.algorithm), config, load_obs_stats(logdir / "checkpoint.npz"))
    runs = len(jax.tree.leaves(states)[0])
    obs_runs = np.broadcast_to(obs, (runs, *obs.shape))
    unit = act(states, obs_runs, jax.random.split(key, runs), spec.eval_mode)[index]
    return np.asarray(scale_action(unit, np.float32(-2.0), np.float32(2.0)))


def test_export_card_and_actions_match_the_checkpoint(runs, tmp_path):
    card = export_policy(runs["td3bc"], tmp_path / "p.jaxexport", seed=1)
    assert json.loads(card_path(tmp_path / "p.jaxexport").read_text()) == card
    run_json = json.loads((runs["td3bc"] / "run.json").read_text())
    metrics = [json.loads(line) for line in (runs["td3bc"] / "metrics.jsonl").read_text().splitlines()]
    final = [m for m in metrics if "eval/return_mean" in m][-1]
    assert card["algorithm"] == "td3bc" and card["env_id"] == "Pendulum-v1"
    assert (card["obs_dim"], card["action_dim"]) == (3, 1)
    assert card["action_low"] == [-2.0] and card["action_high"] == [2.0]
    assert card["dataset_sha256"] == run_json["dataset_sha256"] and card["steps"] == 20
    assert card["run"] == {"seed": 1} and card["run_index"] == 1 and card["eval_mode"] == "mode"
    assert card["final_eval"]["return_mean"] == pytest.approx(final["eval/return_mean"][1])
    assert card["normalizes_obs"] is True and card["inputs"] == ["obs float32[B, O]"]
    assert card["brackit_version"] and set(card["platforms"]) == {"cpu", "cuda"}

    policy = load_policy(tmp_path / "p.jaxexport")
    assert not policy.needs_key and (policy.obs_dim, policy.action_dim) == (3, 1)
    rng = np.random.default_rng(0)
    for batch in (1, 7, 64):  # the batch dimension is symbolic
        obs = rng.normal(size=(batch, 3)).astype(np.float32) * 3
        expected = checkpoint_actions(runs["td3bc"], 1, obs, jax.random.key(0))
        actions = policy(obs)
        assert actions.shape == (batch, 1) and actions.dtype == np.float32
        np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    assert policy(obs[0]).shape == (1,)  # one observation -> one action
    with pytest.raises(PolicyError, match=r"expected observations \[B, 3\]"):
        policy(np.zeros((2, 4)))


def test_sampling_rule_takes_a_key(runs, tmp_path):
    card = export_policy(runs["bcq"], tmp_path / "bcq.jaxexport")
    assert card["eval_mode"] == "max_q" and card["inputs"] == ["obs float32[B, O]", "key uint32[2]"]
    policy = load_policy(tmp_path / "bcq.jaxexport")
    assert policy.needs_key
    obs = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
    key = jax.random.key(7)
    # the checkpoint's run 0 acting with split(key, 1)[0] is the export called with that key's data
    data = np.asarray(jax.random.key_data(jax.random.split(key, 1)[0]))
    expected = checkpoint_actions(runs["bcq"], 0, obs, key)
    np.testing.assert_allclose(policy(obs, data), expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(policy(obs)) <= 2.0)  # without a key: the policy's own key stream
    first = load_policy(tmp_path / "bcq.jaxexport", seed=3)
    again = load_policy(tmp_path / "bcq.jaxexport", seed=3)
    np.testing.assert_array_equal(first(obs), again(obs))


@pytest.mark.parametrize("algorithm", ["td3bc", "bcq"])
def test_evaluate_gives_the_same_returns_for_checkpoint_and_export(runs, tmp_path, algorithm):
    export_policy(runs[algorithm], tmp_path / "p.jaxexport")
    spec, config, states = load_run(runs[algorithm] / "checkpoint.npz")
    act = batched_act(get_algorithm(algorithm), config, load_obs_stats(runs[algorithm] / "checkpoint.npz"))
    from_checkpoint = evaluate(act, states, "Pendulum-v1", 2, seed=5, mode=spec.eval_mode, max_steps=60)
    policy = load_policy(tmp_path / "p.jaxexport")
    from_export = evaluate(
        exported_act(policy), np.zeros(1), "Pendulum-v1", 2, seed=5, mode="-", max_steps=60, env_units=True
    )
    np.testing.assert_allclose(from_export.returns[0], from_checkpoint.returns[0], rtol=1e-5)


def test_cli_eval_accepts_an_export(runs, tmp_path, capsys):
    out = tmp_path / "td3bc.jaxexport"
    assert main(["export", str(runs["td3bc"]), "--out", str(out)]) == 0
    assert "card:" in capsys.readouterr().out
    assert main(["eval", str(runs["td3bc"] / "checkpoint.npz"), "--episodes", "1"]) == 0
    from_checkpoint = capsys.readouterr().out.splitlines()
    assert main(["eval", str(out), "--episodes", "1"]) == 0
    from_export = capsys.readouterr().out.splitlines()
    assert (
        len(from_checkpoint) == 2 and from_export == from_checkpoint[:1]
    )  # run 0: "{'seed': 0}: return ..."
    assert main(["eval", str(out), "--mode", "sample"]) == 2
    assert "rule 'mode' built in" in capsys.readouterr().err


def test_export_errors_are_one_line(runs, tmp_path, capsys):
    out = tmp_path / "p.jaxexport"
    assert main(["export", str(runs["td3bc"]), "--out", str(out), "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "--seed 2 is out of range" in err and "0..1" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not card_path(out).exists()
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no checkpoint.npz" in capsys.readouterr().err
    with pytest.raises(PolicyError, match="zip archive"):
        load_policy(runs["td3bc"] / "checkpoint.npz")
    # the real entry point: exit status 2, one line, no traceback
    done = subprocess.run(
        [sys.executable, "-m", "brackit.cli", "export", str(tmp_path / "nope"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run directory"


LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import brackit

    obs = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    actions = brackit.load_policy(sys.argv[1])(obs)
    # the README's loader: jax and numpy only
    import jax
    program = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
    plain = np.asarray(program.call(obs))
    training = sorted(m for m in sys.modules if m.split(".")[0] in ("flax", "optax")
                      or m.startswith(("brackit.algos", "brackit.train", "brackit.run", "brackit.nets")))
    print(json.dumps({"actions": actions.tolist(), "plain": plain.tolist(), "training": training}))
    """
)


def test_load_policy_loads_no_training_code(runs, tmp_path):
    export_policy(runs["td3bc"], tmp_path / "p.jaxexport")
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(tmp_path / "p.jaxexport")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["training"] == []
    assert np.asarray(out["actions"]).shape == (4, 1) and out["actions"] == out["plain"]
    expected = checkpoint_actions(
        runs["td3bc"], 0, np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), jax.random.key(0)
    )
    np.testing.assert_allclose(out["actions"], expected, rtol=1e-5, atol=1e-6)


def test_onnx_export_of_a_deterministic_rule(runs, tmp_path):
    pytest.importorskip("jax2onnx")  # the optional brackit[onnx] extra
    ort = pytest.importorskip("onnxruntime")
    from brackit.errors import BrackitError

    card = export_policy(runs["td3bc"], tmp_path / "p.jaxexport", seed=1, onnx=True)
    assert card["onnx"] == "p.jaxexport.onnx"
    session = ort.InferenceSession(str(tmp_path / "p.jaxexport.onnx"))
    policy = load_policy(tmp_path / "p.jaxexport")
    for batch in (1, 9):
        obs = np.random.default_rng(batch).normal(size=(batch, 3)).astype(np.float32)
        (actions,) = session.run(["actions"], {"obs": obs})
        np.testing.assert_allclose(actions, policy(obs), rtol=1e-5, atol=1e-6)
    with pytest.raises(BrackitError, match="deterministic rules only"):
        export_policy(runs["bcq"], tmp_path / "bcq.jaxexport", onnx=True)
    assert not (tmp_path / "bcq.jaxexport").exists()


def test_an_empty_zip_is_not_taken_for_an_exported_policy(tmp_path, capsys):
    """``np.savez`` of nothing writes an empty zip (its first bytes are the end-of-archive record, not a
    member's header): ``brackit eval`` reports it as an unreadable checkpoint, not a foreign program."""
    from brackit.policy import is_exported_policy

    path = tmp_path / "empty.npz"
    np.savez(path)
    assert path.read_bytes()[:4] == b"PK\x05\x06" and not is_exported_policy(path)
    with pytest.raises(PolicyError, match="a zip archive"):
        load_policy(path)
    assert main(["eval", str(path)]) == 2
    assert "not a readable brackit checkpoint" in capsys.readouterr().err
