"""d3rlpy's update rate for BEAR, BCQ and TD3+BC at the sizes of ``throughput_family.py``, measured on this
machine, so that brackit's "x times d3rlpy" compares two numbers taken under the same conditions.

Run it with a Python that has torch and d3rlpy (it never imports brackit or JAX), for example:

    python3.11 -m venv /tmp/peer && /tmp/peer/bin/pip install torch==2.13.0 d3rlpy==2.8.1
    /tmp/peer/bin/python benchmarks/peer_d3rlpy.py --updates 200

``benchmarks/throughput_family.py --peer-python /tmp/peer/bin/python`` runs it for you, right before its
own measurements, and adds a "vs d3rlpy measured here" column.

Sizes (d3rlpy 2.8.1 defaults where they already agree): batch 256; every encoder 2x256 (critics, actors,
VAEs); obs 17, action 6 (HalfCheetah); BEAR: 10 target samples, 5 MMD samples, no warm-up (so every update
is the full one, as in brackit's benchmark); BCQ: 10 sampled actions (d3rlpy's default is 100); TD3+BC:
actor every 2nd update. The data are 100k synthetic transitions. Two rates per algorithm, each the best
of ``--repeats`` timed runs of ``--updates`` updates after a warm-up: ``update`` (``algo.update`` on
batches sampled beforehand: the peer's best case) and ``sample+update`` (d3rlpy's own
``sample_transition_batch`` before each update, as its ``fit`` loop does). torch uses its default
thread count (all cores); ``--device cuda:0`` runs d3rlpy on the GPU (the clock waits for its kernels).

``--processes P`` measures d3rlpy's best way to train several seeds on a multi-core CPU: P copies of this
script side by side, each with ``cores // P`` torch threads, started together for one algorithm at a time;
the rates reported are the sums of the copies' rates (each copy's best run, so the sum flatters d3rlpy a
little). It is the peer of brackit's rows with seeds sharded across one device per core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

OBS, ACT, SIZE, BATCH = 17, 6, 100_000, 256


def _dataset():
    import d3rlpy

    rng = np.random.default_rng(0)
    terminals = np.zeros(SIZE, np.float32)
    timeouts = np.zeros(SIZE, np.float32)
    timeouts[999::1000] = 1.0  # 1000-step episodes, cut by the time limit
    return d3rlpy.dataset.MDPDataset(
        observations=rng.normal(size=(SIZE, OBS)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(SIZE, ACT)).astype(np.float32),
        rewards=rng.normal(size=SIZE).astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
    )


def _algorithms() -> dict:
    import d3rlpy

    return {
        "bear": d3rlpy.algos.BEARConfig(
            batch_size=BATCH, n_target_samples=10, n_mmd_action_samples=5, warmup_steps=0
        ),
        "bcq": d3rlpy.algos.BCQConfig(batch_size=BATCH, n_action_samples=10),
        "td3bc": d3rlpy.algos.TD3PlusBCConfig(batch_size=BATCH, update_actor_interval=2),
    }


def measure(
    name: str, config, dataset, updates: int, repeats: int, device: str = "cpu:0"
) -> dict[str, float]:
    import torch

    def sync() -> None:  # CUDA kernels run asynchronously: wait for them before reading the clock
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    algo = config.create(device=device)
    algo.build_with_dataset(dataset)
    batches = [dataset.sample_transition_batch(BATCH) for _ in range(updates)]
    for batch in batches[:20]:  # warm-up (allocator, first-call paths)
        algo.update(batch)
    sync()
    best_update = best_both = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            algo.update(batch)
        sync()
        best_update = min(best_update, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(updates):
            algo.update(dataset.sample_transition_batch(BATCH))
        sync()
        best_both = min(best_both, time.perf_counter() - start)
    return {"update": updates / best_update, "sample+update": updates / best_both}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["bear", "bcq", "td3bc"])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu:0", help='torch device for d3rlpy, e.g. "cuda:0"')
    parser.add_argument("--processes", type=int, default=1, help="copies side by side; rates summed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.processes > 1:
        print(json.dumps(side_by_side(args)))
        return

    import d3rlpy
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    d3rlpy.seed(0)
    dataset = _dataset()
    configs = _algorithms()
    result = {
        "d3rlpy": d3rlpy.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "updates": args.updates,
        "repeats": args.repeats,
        "device": args.device,
        "rates": {},
    }
    for name in args.algos:
        updates = args.updates if name != "td3bc" else 4 * args.updates
        result["rates"][name] = measure(name, configs[name], dataset, updates, args.repeats, args.device)
    print(json.dumps(result))


def side_by_side(args: argparse.Namespace) -> dict:
    """``args.processes`` copies of this script at once, per algorithm; their rates summed."""
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.processes)
    result: dict = {"processes": args.processes, "rates": {}, "per_process": {}}
    for name in args.algos:
        command = [sys.executable, __file__, "--algos", name, "--updates", str(args.updates)]
        command += ["--repeats", str(args.repeats), "--device", args.device, "--threads", str(threads)]
        copies = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(args.processes)]
        outputs = [json.loads(copy.communicate()[0].strip().splitlines()[-1]) for copy in copies]
        if any(copy.returncode for copy in copies):
            raise SystemExit(f"a copy of peer_d3rlpy.py failed for {name}")
        rates = [output["rates"][name] for output in outputs]
        result["rates"][name] = {key: sum(rate[key] for rate in rates) for key in rates[0]}
        result["per_process"][name] = rates
        result.update({key: outputs[0][key] for key in ("d3rlpy", "torch", "torch_threads", "updates")})
        result.update(repeats=args.repeats, device=args.device)
    return result


if __name__ == "__main__":
    main()
