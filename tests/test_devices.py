"""The run axis sharded across devices gives the numbers of the one-device path; the step counter stays
unbatched under vmap so a ``lax.cond`` on it remains a branch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from algos.algo_helpers import ACT, OBS, tiny_dataset
from test_run import pendulum_dataset

from brackit.algos import get_algorithm, make_config
from brackit.cli import main
from brackit.errors import ConfigError
from brackit.train import RunPlacement, make_train, over_runs, train

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from brackit.train import train

    tiny = dict(critic_hidden=(8, 8), actor_hidden=(8, 8), batch_size=8)
    out = {}
    for devices in (None, 4, "auto"):
        result = train("td3bc", sys.argv[1], steps=4, seeds=(0, 1, 2, 3), chunk_steps=2, eval_every=4,
                       eval_episodes=1, devices=devices, **tiny)
        leaves = jax.tree.leaves(result.states)
        out[str(devices)] = {
            "devices": sorted({len(leaf.sharding.device_set) for leaf in leaves}),
            "params": [np.asarray(leaf).tolist() for leaf in leaves if leaf.dtype == np.float32],
            "returns": result.final_eval()["eval/return_mean"].tolist(),
        }
    print(json.dumps(out))
    """
)


def test_sharded_runs_match_the_single_device_path(tmp_path: Path):
    data = pendulum_dataset(tmp_path / "pendulum.npz")
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["None"]["devices"] == [1] and out["4"]["devices"] == [4]
    assert out["auto"] == out["4"]  # four runs on four devices: "auto" takes all four
    single, sharded = out["None"], out["4"]
    assert len(single["params"]) == len(sharded["params"]) > 0
    for a, b in zip(single["params"], sharded["params"], strict=True):
        assert jnp.allclose(jnp.asarray(a), jnp.asarray(b), rtol=1e-5, atol=1e-6)
    assert jnp.allclose(jnp.asarray(single["returns"]), jnp.asarray(sharded["returns"]), rtol=1e-4)


def test_bad_device_requests_are_clear_errors(tmp_path: Path, capsys):
    with pytest.raises(ConfigError, match="device"):
        RunPlacement.create(len(jax.devices()) + 1, 4)
    if len(jax.devices()) == 1:
        assert RunPlacement.create(1, 3).mesh is None
    with pytest.raises(ConfigError, match="multiple of"):
        RunPlacement.create(jax.devices() * 2, 3)  # two entries, three runs
    with pytest.raises(ConfigError, match="device"):
        train("bc", tiny_dataset(), steps=1, seeds=(0,), devices=0)
    with pytest.raises(ConfigError, match="'auto'"):
        RunPlacement.create("all", 4)
    if len(jax.devices()) == 1:
        assert RunPlacement.create("auto", 3).mesh is None
    # from the CLI: exit status 2, and the refused request writes nothing into the logdir
    data = pendulum_dataset(tmp_path / "p.npz")
    args = ["train", "bc", "--data", str(data), "--steps", "2", "--chunk-steps", "2", "--seeds", "3"]
    assert main([*args, "--devices", str(len(jax.devices()) + 1), "--logdir", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
    assert main([*args, "--devices", "two", "--logdir", str(tmp_path / "run")]) == 2
    assert "expected a positive integer or 'auto'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_step_counter_is_unbatched_so_the_delayed_actor_stays_a_cond():
    config = make_config("td3bc", critic_hidden=(8,), actor_hidden=(8,), batch_size=4)
    fns = make_train(get_algorithm("td3bc"), config, OBS, ACT, chunk_steps=2)
    states = jax.vmap(fns.init)(jnp.stack([jax.random.key(s) for s in range(2)]))
    dataset = tiny_dataset()
    batched = str(jax.make_jaxpr(jax.vmap(fns.chunk, in_axes=(0, None)))(states, dataset))
    unbatched = str(jax.make_jaxpr(jax.vmap(fns.chunk, in_axes=(0, None, None)))(states, dataset, 0))
    assert "cond[" in unbatched and "cond[" not in batched  # vmapped predicate: select of both branches
    new_states, _ = jax.vmap(fns.chunk, in_axes=(0, None, None))(states, dataset, jnp.int32(6))
    assert new_states.step.tolist() == [8, 8]
    assert json.dumps(new_states.step.shape) == "[2]"


def test_one_run_skips_the_batch_of_one_and_matches_vmap():
    config = make_config("td3bc", critic_hidden=(8,), actor_hidden=(8,), batch_size=4)
    fns = make_train(get_algorithm("td3bc"), config, OBS, ACT, chunk_steps=3)
    dataset = tiny_dataset()
    states = jax.vmap(fns.init)(jnp.stack([jax.random.key(0)]))
    single, single_metrics = jax.jit(over_runs(fns.chunk, 1))(states, dataset, jnp.int32(0))
    batched, batched_metrics = jax.jit(jax.vmap(fns.chunk, in_axes=(0, None, None)))(
        states, dataset, jnp.int32(0)
    )
    assert single_metrics["critic/loss"].shape == batched_metrics["critic/loss"].shape == (1,)
    for x, y in zip(jax.tree.leaves(single), jax.tree.leaves(batched), strict=True):
        assert x.shape == y.shape
        if jnp.issubdtype(x.dtype, jnp.floating):
            assert jnp.allclose(x, y, rtol=1e-5, atol=1e-6)


def test_deterministic_gpu_ops_flag_is_added_once_and_respects_the_users_choice(monkeypatch):
    from brackit.xla_setup import request_deterministic_gpu_ops, with_deterministic_gpu_ops

    assert with_deterministic_gpu_ops("") == "--xla_gpu_deterministic_ops=true"
    assert with_deterministic_gpu_ops(" --a=1 ") == "--a=1 --xla_gpu_deterministic_ops=true"
    once = with_deterministic_gpu_ops("--a=1")
    assert with_deterministic_gpu_ops(once) == once
    assert (
        with_deterministic_gpu_ops("--xla_gpu_deterministic_ops=false") == "--xla_gpu_deterministic_ops=false"
    )
    monkeypatch.setenv("XLA_FLAGS", "--b=2")
    monkeypatch.setenv("BRACKIT_GPU_NONDETERMINISTIC", "1")
    request_deterministic_gpu_ops()
    assert os.environ["XLA_FLAGS"] == "--b=2"
    monkeypatch.delenv("BRACKIT_GPU_NONDETERMINISTIC")
    request_deterministic_gpu_ops()
    assert os.environ["XLA_FLAGS"] == "--b=2 --xla_gpu_deterministic_ops=true"


def test_host_devices_flag_is_added_once_and_respects_the_users_choice(monkeypatch):
    from brackit.xla_setup import (
        HOST_DEVICES_FLAG,
        request_host_devices,
        requested_host_devices,
        with_host_devices,
    )

    assert with_host_devices("", 2) == f"{HOST_DEVICES_FLAG}=2"
    assert with_host_devices(" --a=1 ", 3) == f"--a=1 {HOST_DEVICES_FLAG}=3"
    explicit = f"{HOST_DEVICES_FLAG}=8"
    assert with_host_devices(explicit, 2) == explicit  # an explicit XLA_FLAGS choice wins
    with pytest.raises(ConfigError, match=">= 1"):
        with_host_devices("", 0)
    monkeypatch.setenv("BRACKIT_HOST_DEVICES", "3")
    assert requested_host_devices() == 3
    monkeypatch.setenv("XLA_FLAGS", "--b=2")
    assert request_host_devices() == 3 and os.environ["XLA_FLAGS"] == f"--b=2 {HOST_DEVICES_FLAG}=3"
    monkeypatch.setenv("BRACKIT_HOST_DEVICES", "many")
    with pytest.raises(ConfigError, match="BRACKIT_HOST_DEVICES='many': expected a positive integer"):
        requested_host_devices()
    monkeypatch.delenv("BRACKIT_HOST_DEVICES")
    assert requested_host_devices() >= 1


def test_cpu_training_programs_use_eigen_dots_unless_told_otherwise(monkeypatch):
    from brackit.xla_setup import CPU_DOTS_ENV, CPU_DOTS_OPTION
    from brackit.xla_setup import training_compiler_options as options

    monkeypatch.delenv(CPU_DOTS_ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    assert options("cpu") == {CPU_DOTS_OPTION: ""}
    assert options("gpu") is None and options("tpu") is None
    monkeypatch.setenv(CPU_DOTS_ENV, "XLA")
    assert options("cpu") is None
    monkeypatch.setenv(CPU_DOTS_ENV, "mkl")
    with pytest.raises(ConfigError, match="BRACKIT_CPU_DOTS='mkl': expected one of eigen, xla"):
        options("cpu")
    monkeypatch.delenv(CPU_DOTS_ENV)
    monkeypatch.setenv("XLA_FLAGS", f"--{CPU_DOTS_OPTION}=individual_dot")  # the user's explicit choice wins
    assert options("cpu") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

    # The compiled training chunk: no YNNPACK fusion under brackit's option, XLA's default ones without it.
    config = make_config("bc", hidden=(16, 16), batch_size=8)
    fns = make_train(get_algorithm("bc"), config, OBS, ACT, chunk_steps=2)
    states, dataset = jax.vmap(fns.init)(jnp.stack([jax.random.key(0)])), tiny_dataset()
    chunk = over_runs(fns.chunk, 1)

    def hlo(jitted):
        return jitted.lower(states, dataset, jnp.int32(0)).compile().as_text()

    placement = RunPlacement.create(1, 1)
    assert placement.platform == jax.default_backend()
    if placement.platform == "cpu":
        assert "__ynn_fusion" in hlo(jax.jit(chunk))  # JAX's default at the pinned version
        assert "__ynn_fusion" not in hlo(placement.jit(chunk))
        monkeypatch.setenv(CPU_DOTS_ENV, "xla")
        assert "__ynn_fusion" in hlo(placement.jit(chunk))
