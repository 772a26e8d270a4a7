"""Round trips of every format, D4RL semantics, Minari through the real package, bad input."""

from __future__ import annotations

import json
import zipfile

import h5py
import jax
import numpy as np
import pytest

from brackit.cli import main
from brackit.data import DatasetError, Episode, arrays_from_episodes, load_dataset, make_dataset, save_dataset
from brackit.data.formats import card_path, detect_format


def random_episodes(seed: int = 0, lengths=(5, 3, 4), obs_dim: int = 3, action_dim: int = 2) -> list[Episode]:
    rng = np.random.default_rng(seed)
    episodes = []
    for index, steps in enumerate(lengths):
        terminations = np.zeros(steps, bool)
        truncations = np.zeros(steps, bool)
        if index % 3 == 0:
            terminations[-1] = True
        elif index % 3 == 1:
            truncations[-1] = True  # the last episode of a 3-cycle is cut off by the end of data
        episodes.append(
            Episode(
                observations=rng.normal(size=(steps + 1, obs_dim)).astype(np.float32),
                actions=rng.uniform(-1, 1, size=(steps, action_dim)).astype(np.float32),
                rewards=rng.normal(size=steps).astype(np.float32),
                terminations=terminations,
                truncations=truncations,
            )
        )
    return episodes


def small_dataset(seed: int = 0, **kwargs):
    arrays = arrays_from_episodes(random_episodes(seed, **kwargs))
    return make_dataset(arrays, path="<test>", source_format="episodes")


def assert_same_arrays(a, b):
    for name, value in a.host_arrays().items():
        np.testing.assert_array_equal(value, b.host_arrays()[name], err_msg=name)


def test_arrays_from_episodes_semantics():
    dataset = small_dataset()
    arrays = dataset.host_arrays()
    assert dataset.card.num_transitions == 12 and dataset.card.num_episodes == 3
    np.testing.assert_array_equal(arrays["episode_id"], [0] * 5 + [1] * 3 + [2] * 4)
    # discount 0 only on the terminal row of episode 0; timeout only on the last row of episode 1
    np.testing.assert_array_equal(np.flatnonzero(arrays["discount"] == 0), [4])
    np.testing.assert_array_equal(np.flatnonzero(arrays["timeout"]), [7])
    # next_action never crosses an episode boundary
    np.testing.assert_array_equal(np.flatnonzero(~arrays["next_action_valid"]), [4, 7, 11])
    np.testing.assert_array_equal(arrays["next_action"][0], arrays["action"][1])
    np.testing.assert_array_equal(arrays["next_action"][4], arrays["action"][4])
    np.testing.assert_array_equal(arrays["next_obs"][:4], arrays["obs"][1:5])


@pytest.mark.parametrize("fmt", ["npz", "minari"])
def test_round_trip(tmp_path, fmt):
    dataset = small_dataset()
    target = tmp_path / ("ds.npz" if fmt == "npz" else "ns/ds-v0")
    save_dataset(dataset, target, format=fmt)
    assert detect_format(target) == fmt
    loaded = load_dataset(target)
    assert_same_arrays(dataset, loaded)
    assert loaded.card.sha256 == dataset.card.sha256
    assert loaded.card.action_low == dataset.card.action_low
    if fmt == "npz":
        assert json.loads(card_path(target).read_text())["sha256"] == dataset.card.sha256
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_round_trip_with_env_id(tmp_path):
    episodes = random_episodes(obs_dim=3, action_dim=1)
    for episode in episodes:
        episode.actions = np.clip(episode.actions * 2, -2, 2)
    dataset = make_dataset(
        arrays_from_episodes(episodes), path="<t>", source_format="t", env_id="Pendulum-v1"
    )
    assert dataset.card.action_high == (2.0,)
    save_dataset(dataset, tmp_path / "p.npz")
    loaded = load_dataset(tmp_path / "p.npz")
    assert loaded.card.env_id == "Pendulum-v1"


def write_d4rl(path, with_next: bool, **overrides):
    """8 rows: episode A = rows 0-2 (terminal at 2), B = rows 3-5 (timeout at 5), C = rows 6-7 (cut)."""
    obs = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)
    data = {
        "observations": obs,
        "actions": np.linspace(-1, 1, 8 * 2, dtype=np.float32).reshape(8, 2),
        "rewards": np.arange(8, dtype=np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0, 0, 0], bool),
        "timeouts": np.array([0, 0, 0, 0, 0, 1, 0, 0], bool),
    }
    if with_next:
        data["next_observations"] = obs + 100.0
    data.update(overrides)
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            if value is not None:
                handle.create_dataset(key, data=value)
        handle.create_dataset("metadata/algorithm", data="test")
    return data


def test_d4rl_with_next_observations_keeps_timeouts(tmp_path):
    data = write_d4rl(tmp_path / "d.hdf5", with_next=True)
    dataset = load_dataset(tmp_path / "d.hdf5")
    arrays = dataset.host_arrays()
    assert dataset.card.num_transitions == 8 and dataset.card.num_episodes == 3
    np.testing.assert_array_equal(arrays["discount"], [1, 1, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(arrays["timeout"], [0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(arrays["next_obs"], data["next_observations"])
    np.testing.assert_array_equal(arrays["episode_id"], [0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(arrays["next_action_valid"], [1, 1, 0, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(arrays["next_action"][3], data["actions"][4])
    stats = dataset.stats()
    assert (stats["num_terminals"], stats["num_timeouts"]) == (1, 1)
    assert stats["episode_return_max"] == pytest.approx(6 + 7)  # episodes: 0+1+2, 3+4+5, 6+7


def test_d4rl_without_next_observations_drops_timeouts_and_last_row(tmp_path):
    data = write_d4rl(tmp_path / "d.hdf5", with_next=False)
    dataset = load_dataset(tmp_path / "d.hdf5")
    arrays = dataset.host_arrays()
    # rows kept: 0, 1, 2 (terminal), 3, 4, 6; dropped: 5 (timeout) and 7 (last, not terminal)
    assert dataset.card.num_transitions == 6
    np.testing.assert_array_equal(arrays["reward"], [0, 1, 2, 3, 4, 6])
    np.testing.assert_array_equal(arrays["discount"], [1, 1, 0, 1, 1, 1])
    obs = data["observations"]
    np.testing.assert_array_equal(arrays["next_obs"], [obs[1], obs[2], obs[2], obs[4], obs[5], obs[7]])
    np.testing.assert_array_equal(arrays["episode_id"], [0, 0, 0, 1, 1, 2])
    # rows 5 and 7 were dropped, but their actions are still the dataset's actions at next_obs of 4 and 6
    np.testing.assert_array_equal(arrays["next_action_valid"], [1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(arrays["next_action"][4:], data["actions"][[5, 7]])
    assert dataset.card.extra["d4rl_rows_dropped"] == 2
    assert dataset.card.extra["action_bounds_source"] == "assumed [-1, 1]"


def test_minari_written_by_brackit_loads_in_minari(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    episodes = random_episodes(obs_dim=3, action_dim=1)
    for episode in episodes:
        episode.actions = np.clip(episode.actions * 2, -2, 2)
    dataset = make_dataset(
        arrays_from_episodes(episodes), path="<t>", source_format="t", env_id="Pendulum-v1"
    )
    save_dataset(dataset, tmp_path / "brackit" / "pendulum-v0", format="minari")
    loaded = minari.load_dataset("brackit/pendulum-v0")
    assert loaded.total_episodes == 3 and loaded.total_steps == 12
    for episode, ours in zip(loaded.iterate_episodes(), episodes, strict=True):
        np.testing.assert_allclose(episode.observations, ours.observations)
        np.testing.assert_allclose(episode.actions, ours.actions)
        np.testing.assert_allclose(episode.rewards, ours.rewards)
        np.testing.assert_array_equal(episode.terminations, ours.terminations)
        np.testing.assert_array_equal(episode.truncations, ours.truncations)


def test_minari_made_by_minari_loads_in_brackit(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make("Pendulum-v1", max_episode_steps=6))
    env.action_space.seed(0)
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(6):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    reference = env.create_dataset(dataset_id="test/pendulum-v0", algorithm_name="random")
    dataset = load_dataset(tmp_path / "test" / "pendulum-v0")
    assert dataset.card.env_id == "Pendulum-v1"
    assert dataset.card.num_transitions == reference.total_steps == 18
    arrays = dataset.host_arrays()
    rows = 0
    for episode in reference.iterate_episodes():
        steps = len(episode.actions)
        np.testing.assert_allclose(arrays["obs"][rows : rows + steps], episode.observations[:-1])
        np.testing.assert_allclose(arrays["next_obs"][rows : rows + steps], episode.observations[1:])
        np.testing.assert_allclose(arrays["reward"][rows : rows + steps], episode.rewards, rtol=1e-6)
        assert arrays["timeout"][rows + steps - 1]  # the 6-step time limit truncates each episode
        rows += steps
    assert rows == 18


def test_sampling_deterministic_and_jittable():
    dataset = small_dataset()
    key = jax.random.key(3)
    a = dataset.sample(key, 7)
    b = jax.jit(lambda d, k: d.sample(k, 7))(dataset, key)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.obs.shape == (7, 3) and a.reward.shape == (7,)

    def body(key, _):
        key, sample_key = jax.random.split(key)
        return key, dataset.sample(sample_key, 4).reward.sum()

    _, sums = jax.jit(lambda k: jax.lax.scan(body, k, None, length=5))(key)
    _, sums_again = jax.jit(lambda k: jax.lax.scan(body, k, None, length=5))(key)
    np.testing.assert_array_equal(sums, sums_again)
    assert sums.shape == (5,)
    # every sampled row is a real row of the dataset
    rewards = set(np.asarray(dataset.transitions.reward).tolist())
    assert set(np.asarray(a.reward).tolist()) <= rewards


# ----------------------------------------------------------------------------------------- bad input


def expect_error(path, field, **kwargs):
    with pytest.raises(DatasetError) as info:
        load_dataset(path, **kwargs)
    assert info.value.field == field, str(info.value)
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize("missing", ["observations", "actions", "rewards", "terminals", "timeouts"])
def test_d4rl_missing_key(tmp_path, missing):
    write_d4rl(tmp_path / "d.hdf5", with_next=True, **{missing: None})
    expect_error(tmp_path / "d.hdf5", missing)


def test_d4rl_mismatched_lengths_and_ranks(tmp_path):
    write_d4rl(tmp_path / "a.hdf5", with_next=True, actions=np.zeros((7, 2), np.float32))
    expect_error(tmp_path / "a.hdf5", "actions")
    write_d4rl(tmp_path / "b.hdf5", with_next=True, observations=np.zeros((8,), np.float32))
    expect_error(tmp_path / "b.hdf5", "observations")


def test_non_finite_and_out_of_bounds(tmp_path):
    rewards = np.arange(8, dtype=np.float32)
    rewards[3] = np.nan
    write_d4rl(tmp_path / "nan.hdf5", with_next=True, rewards=rewards)
    error = expect_error(tmp_path / "nan.hdf5", "rewards")  # the file's own field name
    assert "row 3" in str(error)
    # a Minari file whose action_space is [-1, 1] but holds an action of 1.5
    dataset = small_dataset()
    save_dataset(dataset, tmp_path / "m", format="minari")
    with h5py.File(tmp_path / "m" / "data" / "main_data.hdf5", "r+") as handle:
        handle["episode_1/actions"][1, 0] = 1.5
    error = expect_error(tmp_path / "m", "action")
    assert "1.5" in str(error) and "row 6" in str(error)


def test_dims_must_match_env(tmp_path):
    write_d4rl(tmp_path / "d.hdf5", with_next=True)
    error = expect_error(tmp_path / "d.hdf5", "obs", env_id="Hopper-v5")
    assert "11" in str(error)
    expect_error(tmp_path / "d.hdf5", "env_id", env_id="NoSuchEnv-v0")


def test_truncated_files(tmp_path):
    dataset = small_dataset()
    save_dataset(dataset, tmp_path / "ok.npz")
    blob = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(blob[: len(blob) // 2])
    expect_error(tmp_path / "cut.npz", "file")
    write_d4rl(tmp_path / "d.hdf5", with_next=True)
    blob = (tmp_path / "d.hdf5").read_bytes()
    (tmp_path / "cut.hdf5").write_bytes(blob[: len(blob) // 2])
    expect_error(tmp_path / "cut.hdf5", "file")
    (tmp_path / "junk.bin").write_bytes(b"not a dataset at all")
    expect_error(tmp_path / "junk.bin", "file")


def test_corrupted_npz_content_fails_hash(tmp_path):
    dataset = small_dataset()
    save_dataset(dataset, tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["reward"] = arrays["reward"] + 1.0  # a silent edit: the zip is fine, the content is not
    np.savez_compressed(tmp_path / "edited.npz", **arrays)
    expect_error(tmp_path / "edited.npz", "sha256")


def test_npz_that_needs_pickle_is_refused(tmp_path):
    dataset = small_dataset()
    arrays = dataset.host_arrays()
    arrays["reward"] = np.array([{"evil": 1}] * 12, dtype=object)
    np.savez(tmp_path / "pickle.npz", card_json=np.array("{}"), **arrays)
    expect_error(tmp_path / "pickle.npz", "reward")


def test_killed_write_leaves_no_loadable_file(tmp_path, monkeypatch):
    dataset = small_dataset()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill in the middle of the write

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        save_dataset(dataset, tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_dataset(dataset, tmp_path / "x.npz")
    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        save_dataset(small_dataset(seed=1), tmp_path / "x.npz")
    assert_same_arrays(load_dataset(tmp_path / "x.npz"), dataset)  # the old file is intact


def test_npz_missing_array(tmp_path):
    dataset = small_dataset()
    arrays = dataset.host_arrays()
    del arrays["next_action"]
    np.savez(tmp_path / "m.npz", card_json=np.array(json.dumps(dataset.card.to_dict())), **arrays)
    expect_error(tmp_path / "m.npz", "next_action")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        assert "next_action.npy" not in archive.namelist()


# ----------------------------------------------------------------------------------------- CLI


def test_cli_info_json_and_convert(tmp_path, capsys):
    write_d4rl(tmp_path / "d.hdf5", with_next=False)
    assert main(["data", "info", str(tmp_path / "d.hdf5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_transitions"] == 6 and info["num_episodes"] == 3
    assert info["num_terminals"] == 1 and info["obs_dim"] == 2 and info["action_dim"] == 2
    assert info["episode_return_mean"] == pytest.approx((3 + 7 + 6) / 3)
    assert main(["data", "convert", str(tmp_path / "d.hdf5"), str(tmp_path / "m"), "--format", "minari"]) == 0
    assert main(["data", "convert", str(tmp_path / "m"), str(tmp_path / "d.npz")]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(tmp_path / "d.npz")]) == 0
    assert "sha256" in capsys.readouterr().out


def test_minari_export_needs_contiguous_episodes(tmp_path, capsys):
    write_d4rl(tmp_path / "d.hdf5", with_next=True)  # next_observations = observations + 100
    assert main(["data", "convert", str(tmp_path / "d.hdf5"), str(tmp_path / "m"), "--format", "minari"]) == 2
    assert "next_obs" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    assert main(["data", "info", str(tmp_path / "junk.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "junk.npz" in err and "\n" not in err
