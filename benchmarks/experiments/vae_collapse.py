"""Does BCQ's VAE posterior collapse on a dataset, and does the network initialisation decide it? An
independent PyTorch conditional VAE, written from BCQ's paper (Fujimoto et al. 2019, section 4 and appendix)
and the shapes of its reference code, trained alone on a brackit dataset's (observation, action) rows under
each setting given, with the mean KL of its posterior to N(0, 1) logged on a fixed sample as training goes.

A KL near 0 is a collapsed posterior: the decoder ignores z, so every candidate action BCQ draws for a state is
the same one (the data's mean action there). brackit's BCQ logs the same quantity as ``vae/kl``, and
``benchmarks/learning_peer.py`` logs it for d3rlpy's VAE; this script asks whether an implementation that
shares no code with either collapses too, with PyTorch's default initialisation (the reference's) and with
flax's. It never imports brackit or JAX: run it with the peer's Python, from the repository's root::

    /work/peer/bin/python -m benchmarks.experiments.vae_collapse --data DATA.npz --steps 5000 --seeds 0 1 \\
        --out benchmarks/results/experiments/vae_collapse_TASK.md

Settings (``SETTINGS``): ``reference`` (encoder and decoder 750-750 ReLU, latent 2|A|, log-std clamped to
[-4, 15], tanh decoder, PyTorch's ``nn.Linear`` default initialisation), ``flax-init`` (the same with
LeCun-normal kernels, truncated as flax's ``lecun_normal``, on every layer, and zero biases; brackit's
``net_init='flax'`` differs in drawing each MLP's last kernel Glorot-uniform) and ``d3rlpy`` (PyTorch's
initialisation with d3rlpy 2.8.1's VAE: log-std clamped to [-20, 2], no tanh on the decoder). Every setting:
loss = mean squared reconstruction error + 0.5 x mean KL (both means over elements), Adam 1e-3, batch 100,
z reparameterised from the posterior while training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.learning_peer import atomic_write

SETTINGS = {
    "reference": {"init": "torch", "log_std": (-4.0, 15.0), "tanh": True},
    "flax-init": {"init": "flax", "log_std": (-4.0, 15.0), "tanh": True},
    "d3rlpy": {"init": "torch", "log_std": (-20.0, 2.0), "tanh": False},
}
PROBE_ROWS = 10_000
TRUNCATED_STD = 0.87962566103423978
"""The std of a standard normal truncated to [-2, 2] (flax's ``variance_scaling``)."""


def build(obs_dim: int, action_dim: int, setting: dict, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    latent = 2 * action_dim

    def mlp(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(inputs, 750), nn.ReLU(), nn.Linear(750, 750), nn.ReLU(), nn.Linear(750, outputs)
        )

    encoder, decoder = mlp(obs_dim + action_dim, 2 * latent), mlp(obs_dim + latent, action_dim)
    if setting["init"] == "flax":
        # flax's lecun_normal: a standard normal truncated to +-2, scaled by sqrt(1 / fan_in) / 0.8796 (the
        # truncated normal's std), so the kernel's variance is 1 / fan_in; biases start at 0
        for layer in (*encoder, *decoder):
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=1.0, a=-2.0, b=2.0)
                with torch.no_grad():
                    layer.weight.mul_(math.sqrt(1.0 / layer.in_features) / TRUNCATED_STD)
                nn.init.zeros_(layer.bias)
    return encoder, decoder, latent


def losses(encoder, decoder, latent: int, setting: dict, obs, action, noise):
    import torch

    mean, log_std = torch.split(encoder(torch.cat([obs, action], 1)), latent, dim=1)
    log_std = log_std.clamp(*setting["log_std"])
    std = log_std.exp()
    out = decoder(torch.cat([obs, mean + std * noise], 1))
    if setting["tanh"]:
        out = torch.tanh(out)
    reconstruction = torch.mean((out - action) ** 2)
    kl = torch.mean(-log_std + 0.5 * (std**2 + mean**2) - 0.5)
    return reconstruction, kl


def train(arrays: dict, setting: dict, seed: int, steps: int, log_every: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    obs_all = torch.as_tensor(arrays["obs"], dtype=torch.float32)
    act_all = torch.as_tensor(arrays["action"], dtype=torch.float32)
    encoder, decoder, latent = build(obs_all.shape[1], act_all.shape[1], setting, seed)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    probe = torch.as_tensor(np.random.default_rng(0).choice(len(obs_all), PROBE_ROWS, replace=False))
    probe_noise = torch.randn((PROBE_ROWS, latent), generator=torch.Generator().manual_seed(0))
    rows = np.random.default_rng(seed + 1)
    history = []
    for step in range(steps + 1):
        if step % log_every == 0:
            with torch.no_grad():
                rec, kl = losses(
                    encoder, decoder, latent, setting, obs_all[probe], act_all[probe], probe_noise
                )
            history.append({"step": step, "kl": float(kl), "reconstruction": float(rec)})
        if step == steps:
            break
        batch = torch.as_tensor(rows.integers(0, len(obs_all), 100))
        rec, kl = losses(
            encoder, decoder, latent, setting, obs_all[batch], act_all[batch], torch.randn(100, latent)
        )
        optimizer.zero_grad()
        (rec + 0.5 * kl).backward()
        optimizer.step()
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a brackit .npz dataset")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--log-every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", required=True, type=Path, help="the markdown report (a .json beside it)")
    args = parser.parse_args(argv)
    with np.load(args.data, allow_pickle=False) as handle:
        arrays = {"obs": handle["obs"], "action": handle["action"]}
    import torch

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    results = {}
    for name in args.settings:
        for seed in args.seeds:
            start = time.perf_counter()
            results[f"{name} s{seed}"] = train(arrays, SETTINGS[name], seed, args.steps, args.log_every)
            print(
                f"{name} seed {seed}: {time.perf_counter() - start:.0f} s, {results[f'{name} s{seed}'][-1]}"
            )
    steps = [entry["step"] for entry in next(iter(results.values()))]
    lines = [
        "# BCQ's VAE alone: does its posterior collapse, and does the initialisation decide it?",
        "",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
        f"- commit: {commit}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- command: `/work/peer/bin/python -m benchmarks.experiments.vae_collapse --data {args.data.name} "
        f"--steps {args.steps} --log-every {args.log_every} --seeds {' '.join(map(str, args.seeds))} "
        f"--out {args.out}`",
        f"- mean KL of the posterior to N(0, 1) (over {PROBE_ROWS:,} fixed rows x latent dimensions), by update;"
        " reconstruction error (mean squared, over rows x action dimensions) in the last column",
        "",
        "| setting | " + " | ".join(f"{s:,}" for s in steps) + " | final reconstruction |",
        "|---|" + "---|" * (len(steps) + 1),
    ]
    for name, history in results.items():
        cells = " | ".join(f"{entry['kl']:.2g}" for entry in history)
        lines.append(f"| {name} | {cells} | {history[-1]['reconstruction']:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, "\n".join(lines) + "\n")
    atomic_write(args.out.with_suffix(".json"), json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
