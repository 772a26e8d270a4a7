"""Dataset I/O benchmark: load time and peak memory per format, and on-device sampling throughput.

Generates a synthetic Hopper-sized dataset (obs 11, action 3, 1000-step episodes), writes it as brackit
npz, Minari and D4RL HDF5, then loads each in a fresh subprocess (so peak RSS is that load's alone).

    python benchmarks/data_io.py [--size 1000000] [--out benchmarks/results/data_io.md]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchmarks_common import machine_header


def synthetic_episodes(size: int, obs_dim: int = 11, action_dim: int = 3, episode_length: int = 1000):
    from brackit.data import Episode

    rng = np.random.default_rng(0)
    episodes, left = [], size
    while left > 0:
        steps = min(episode_length, left)
        terminations = np.zeros(steps, bool)
        truncations = np.zeros(steps, bool)
        if steps < episode_length or len(episodes) % 2:
            terminations[-1] = True
        else:
            truncations[-1] = True
        episodes.append(
            Episode(
                observations=rng.normal(size=(steps + 1, obs_dim)).astype(np.float32),
                actions=rng.uniform(-1, 1, size=(steps, action_dim)).astype(np.float32),
                rewards=rng.normal(size=steps).astype(np.float32),
                terminations=terminations,
                truncations=truncations,
            )
        )
        left -= steps
    return episodes


def write_all(size: int, folder: Path) -> dict[str, Path]:
    import h5py

    from brackit.data import arrays_from_episodes, make_dataset, save_dataset

    arrays = arrays_from_episodes(synthetic_episodes(size))
    dataset = make_dataset(arrays, path="<synthetic>", source_format="synthetic", env_id="Hopper-v5")
    paths = {
        "npz": folder / "hopper.npz",
        "minari": folder / "minari" / "hopper-v0",
        "d4rl": folder / "hopper.hdf5",
    }
    save_dataset(dataset, paths["npz"], "npz")
    save_dataset(dataset, paths["minari"], "minari")
    with h5py.File(paths["d4rl"], "w") as handle:
        handle["observations"] = arrays["obs"]
        handle["next_observations"] = arrays["next_obs"]
        handle["actions"] = arrays["action"]
        handle["rewards"] = arrays["reward"]
        handle["terminals"] = arrays["discount"] == 0
        handle["timeouts"] = arrays["timeout"]
    return paths


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_once(path: str) -> None:
    """Child process: load and report seconds and peak RSS."""
    import jax

    from brackit.data import load_dataset
    from brackit.data.dataset import env_spaces

    env_spaces("Hopper-v5")  # imports and the MuJoCo env are part of the baseline, not of the load
    baseline_mib = peak_rss_mib()
    start = time.perf_counter()
    dataset = load_dataset(path)
    jax.block_until_ready(dataset.transitions.obs)
    seconds = time.perf_counter() - start
    peak_mib = peak_rss_mib()
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib, "baseline_mib": baseline_mib}))


def sampling_rate(path: Path, batch_size: int = 256, steps: int = 10_000) -> float:
    import jax

    from brackit.data import load_dataset

    dataset = load_dataset(path)

    @jax.jit
    def run(key):
        def body(carry, key):
            batch = dataset.sample(key, batch_size)
            return carry + batch.reward.sum() + batch.obs[:, 0].sum(), None

        total, _ = jax.lax.scan(body, 0.0, jax.random.split(key, steps))
        return total

    jax.block_until_ready(run(jax.random.key(0)))
    start = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(1)))
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_io.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        load_once(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = write_all(args.size, Path(tmp))
        write_seconds = time.perf_counter() - start
        rows = []
        for fmt, path in paths.items():
            size_mib = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*"))) / 2**20
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path)], check=True, capture_output=True, text=True
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((fmt, size_mib, result["seconds"], result["peak_rss_mib"] - result["baseline_mib"]))
            print(rows[-1], flush=True)
        rate = sampling_rate(paths["npz"])
    lines = [
        "# Dataset I/O benchmark",
        "",
        machine_header(f"python benchmarks/data_io.py --size {args.size}"),
        "",
        f"Synthetic Hopper-sized dataset: {args.size:,} transitions (obs 11, action 3, 1000-step episodes).",
        f"Writing all three formats took {write_seconds:.1f} s.",
        "",
        "| format | file size (MiB) | load time (s) | peak memory added by the load (MiB) |",
        "|---|---|---|---|",
        *[f"| {fmt} | {size:.0f} | {seconds:.2f} | {peak:.0f} |" for fmt, size, seconds, peak in rows],
        "",
        "Load time includes validation, the content sha256 and the copy to the device. Peak memory is the",
        "loading process's peak RSS minus its RSS after imports and creating the env (the raw arrays are",
        "about 130 MiB; reading, casting and the device copy each hold one more copy for a moment).",
        "",
        f"On-device sampling inside one jitted `lax.scan` (batch 256): **{rate:,.0f} batches/s**.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
