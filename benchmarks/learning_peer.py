"""d3rlpy, the peer: BC, TD3+BC, BCQ, BEAR and ReBRAC trained on brackit's dataset files, written as brackit runs.

The learning benchmark (``brackit study learning``, results in ``benchmarks/results/learning/``) compares
brackit's returns with d3rlpy's on the same data and steps. This script trains d3rlpy 2.8.1 (PyTorch) on a
brackit ``.npz`` dataset and writes each (algorithm, dataset, seed) as a run directory that ``brackit
report`` reads beside brackit's own: ``run.json`` (brackit's ``RunSpec`` fields, label ``d3rlpy <ALGO>``),
``metrics.jsonl`` (one line per evaluation, ``eval/return_mean`` etc. as one-element lists) and
``peer.json`` (versions, wall time, updates/s). It never imports brackit or JAX: run it with the Python of
the peer's own virtual environment, made by ``benchmarks/setup_peer.sh``::

    bash benchmarks/setup_peer.sh /work/peer          # torch 2.13.0 (CPU), d3rlpy 2.8.1, gymnasium 1.4.0
    /work/peer/bin/python benchmarks/learning_peer.py --data ~/.cache/brackit/datasets/hopper-eps1-1000000-s0.npz \\
        --algo td3bc --seed 0 --steps 100000 --out runs/learning/hopper-eps1/d3rlpy-td3bc-s0

Evaluation is brackit's (``brackit.evaluation.evaluate``) rewritten in a few lines: every ``--eval-every``
updates, ``--eval-episodes`` episodes stepped together with one batched ``predict`` per step; episode i of
the seed at position r of ``--run-index`` is reset with seed ``step * 100_003 + r * episodes + i``, so the
d3rlpy run of seed s meets the same initial states as brackit's run of seed s in a group of seeds 0..K-1.
Each algorithm acts by d3rlpy's ``predict``, the reference rule of each paper (the mean action for BC and
TD3+BC, the best of the sampled candidates under Q for BCQ and BEAR).

Hyperparameters are set to brackit's defaults where d3rlpy has the knob (``peer_config``; everything set is
written to ``run.json``). Differences that remain, by d3rlpy's design: BC is d3rlpy's stochastic BC (a
Gaussian policy; brackit fits a tanh-Gaussian by maximum likelihood; ``--algo bc-det`` runs d3rlpy's default,
deterministic BC beside it); BCQ samples 10 candidate actions both in its target and when acting
(``n_action_samples``, one knob; brackit's target uses 10, its acting 100); BEAR keeps d3rlpy's entropy
temperature, frozen near 0 here (brackit's BEAR has none), and its MMD compares the VAE's tanh-squashed
samples with the actor's pre-tanh ones (the reference and brackit: both pre-tanh); d3rlpy's VAE (BCQ's and
BEAR's) clamps its log-std to [-20, 2] (the BCQ reference and brackit: [-4, 15]) and its BCQ decoder has no
tanh (``with_squash`` left at its default in training and sampling; the reference squashes); d3rlpy builds its
transitions from episodes, so the last transition of an episode cut by the time limit bootstraps from a zero
observation (brackit stores the real next observation). ReBRAC takes its betas from the learning study's
``rebrac`` variant for the dataset (``brackit/studies/learning.toml``, read here with ``tomllib``), and keeps
d3rlpy's initialisation (PyTorch's default everywhere; brackit's, as CORL's ReBRAC: hidden biases 0.1, last
layers U(+-1e-3) for the actor and U(+-3e-3) for the critic) and ``tanh`` actor output; its critic's
LayerNorm follows each ReLU as brackit's does (``use_layer_norm``).

BCQ's and BEAR's runs also log their VAE at each evaluation (``vae_probe``: ``vae/kl`` and
``vae/reconstruction`` on a fixed sample of the data), to read beside brackit's ``vae/kl``: a KL near 0 is a
collapsed posterior.

A killed run resumes from its last evaluation (``peer_state.pt``, d3rlpy's own ``save_model`` file, local
only, never committed): the updates continue with fresh batches, so a resumed run is not bit-identical to
an uninterrupted one; ``peer.json`` counts the resumes. A finished run (its final evaluation logged) is
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

LABELS = {
    "bc": "d3rlpy BC",
    "bc-det": "d3rlpy BC (deterministic)",
    "td3bc": "d3rlpy TD3+BC",
    "bcq": "d3rlpy BCQ",
    "bear": "d3rlpy BEAR",
    "rebrac": "d3rlpy ReBRAC",
}
"""``--algo`` values and their report labels. ``bc`` is the peer of brackit's BC (a Gaussian policy, the
closest d3rlpy has to brackit's); ``bc-det`` is d3rlpy's default BC (a deterministic policy regressed on
the actions), run beside it so that the comparison does not rest on one of d3rlpy's two choices."""


def load_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(card, arrays) of a brackit npz, with the rows grouped by episode in time order."""
    with np.load(path, allow_pickle=False) as handle:
        card = json.loads(str(handle["card_json"]))
        arrays = {name: handle[name] for name in handle.files if name != "card_json"}
    order = np.argsort(arrays["episode_id"], kind="stable")  # rows of one episode stay in time order
    return card, {name: value[order] for name, value in arrays.items()}


def mdp_dataset(arrays: dict[str, np.ndarray]):
    """d3rlpy's MDPDataset: an episode ends at a termination (discount 0), a time-limit cut or where the
    next row belongs to another episode (a segment's end)."""
    import d3rlpy

    episode = arrays["episode_id"]
    last = np.append(episode[1:] != episode[:-1], True)
    terminals = (arrays["discount"] == 0.0).astype(np.float32)
    timeouts = ((last | arrays["timeout"].astype(bool)) & (terminals == 0.0)).astype(np.float32)
    return d3rlpy.dataset.MDPDataset(
        observations=arrays["obs"],
        actions=arrays["action"],
        rewards=arrays["reward"],
        terminals=terminals,
        timeouts=timeouts,
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
    )


STUDY = Path(__file__).resolve().parents[1] / "brackit" / "studies" / "learning.toml"
"""The learning study's preset: its variants hold the settings chosen per dataset (ReBRAC's betas, BEAR's
kernel), which the peer takes from it rather than repeating them."""


def study_settings(variant: str, dataset: str, study: Path = STUDY) -> dict:
    """The config values the learning study sets for ``variant`` on ``dataset`` (a TASK-MIX name): its ``set``
    table, then its ``per_dataset`` one."""
    import tomllib

    spec = next(v for v in tomllib.loads(study.read_text())["variants"] if v["name"] == variant)
    return {**spec.get("set", {}), **spec.get("per_dataset", {}).get(dataset, {})}


BEAR_KERNEL_DEFAULTS = {"mmd_kernel": "laplacian", "mmd_sigma": 20.0}
"""brackit's ``BEARConfig`` defaults for the kernel (tested against it), for datasets the study leaves alone."""


def bear_kernel(dataset: str) -> dict:
    """d3rlpy's ``mmd_kernel`` and ``mmd_sigma`` for the kernel brackit's BEAR uses on ``dataset``. d3rlpy's
    kernels are the BEAR authors': exp(-|x - y|_1 / (2 sigma)) and exp(-|x - y|_2^2 / (2 sigma)); brackit's
    Laplacian divides by sigma alone (``brackit.divergences``), so d3rlpy's Laplacian sigma is half brackit's
    ``mmd_sigma``, and its Gaussian sigma equals it."""
    settings = {**BEAR_KERNEL_DEFAULTS, **study_settings("bear", dataset)}
    kernel, sigma = str(settings["mmd_kernel"]), float(settings["mmd_sigma"])
    if kernel not in ("laplacian", "gaussian"):
        raise SystemExit(
            f"{STUDY}: bear's mmd_kernel for {dataset}: expected laplacian or gaussian, got {kernel!r}"
        )
    return {"mmd_kernel": kernel, "mmd_sigma": sigma / 2 if kernel == "laplacian" else sigma}


def peer_config(algo: str, obs: np.ndarray, steps: int, dataset: str = ""):
    """d3rlpy's config of ``algo`` with brackit's default hyperparameters (``brackit algos NAME``);
    TD3+BC's observation scaler takes the mean and std of the dataset's observations ``obs``. BEAR's
    warm-up is brackit's 20,000 of 500,000 steps scaled to ``steps``, as ``brackit study`` budgets scale
    brackit's (``brackit.study.STEP_FIELDS``); BEAR's kernel (``bear_kernel``) and ReBRAC's betas are the
    learning study's for ``dataset`` (``study_settings``)."""
    import d3rlpy
    from d3rlpy.models import VectorEncoderFactory

    def mlp(*units: int) -> VectorEncoderFactory:
        return VectorEncoderFactory(hidden_units=list(units))

    if algo in ("bc", "bc-det"):
        return d3rlpy.algos.BCConfig(
            policy_type="stochastic" if algo == "bc" else "deterministic",
            learning_rate=5e-4,
            batch_size=256,
            encoder_factory=mlp(200, 200),
        )
    if algo == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(
            batch_size=256,
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            alpha=2.5,
            update_actor_interval=2,
            actor_encoder_factory=mlp(256, 256),
            critic_encoder_factory=mlp(256, 256),
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(
                mean=obs.mean(axis=0), std=obs.std(axis=0), eps=1e-3
            ),
        )
    if algo == "bcq":
        return d3rlpy.algos.BCQConfig(
            batch_size=100,
            actor_learning_rate=1e-3,
            critic_learning_rate=1e-3,
            imitator_learning_rate=1e-3,
            lam=0.75,
            n_action_samples=10,
            action_flexibility=0.05,
            beta=0.5,
            actor_encoder_factory=mlp(400, 300),
            critic_encoder_factory=mlp(400, 300),
            imitator_encoder_factory=mlp(750, 750),
        )
    if algo == "bear":
        return d3rlpy.algos.BEARConfig(
            batch_size=256,
            actor_learning_rate=1e-4,
            critic_learning_rate=1e-3,
            imitator_learning_rate=1e-3,
            alpha_learning_rate=1e-3,
            temp_learning_rate=0.0,
            initial_temperature=1e-8,
            alpha_threshold=0.05,
            lam=0.75,
            n_action_samples=10,
            n_target_samples=10,
            n_mmd_action_samples=5,
            **bear_kernel(dataset),
            warmup_steps=max(1, round(20_000 * steps / 500_000)),
            actor_encoder_factory=mlp(400, 300),
            critic_encoder_factory=mlp(400, 300),
            imitator_encoder_factory=mlp(750, 750),
        )
    if algo == "rebrac":
        betas = study_settings("rebrac", dataset)
        return d3rlpy.algos.ReBRACConfig(
            batch_size=1024,
            actor_learning_rate=1e-3,
            critic_learning_rate=1e-3,
            tau=0.005,
            n_critics=2,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            update_actor_interval=2,
            actor_beta=float(betas["beta_actor"]),
            critic_beta=float(betas["beta_critic"]),
            actor_encoder_factory=mlp(256, 256, 256),
            critic_encoder_factory=VectorEncoderFactory(hidden_units=[256, 256, 256], use_layer_norm=True),
        )
    raise SystemExit(f"--algo: expected one of {sorted(LABELS)}, got {algo!r}")


def evaluate(algo, env_id: str, episodes: int, step: int, run_index: int) -> dict[str, list[float]]:
    """``episodes`` episodes stepped together; reset seeds as ``brackit.evaluation.evaluate``."""
    import gymnasium

    envs = [gymnasium.make(env_id) for _ in range(episodes)]
    try:
        low, high = envs[0].action_space.low, envs[0].action_space.high
        base = step * 100_003 + run_index * episodes
        obs = np.stack([env.reset(seed=base + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
        returns, lengths = np.zeros(episodes), np.zeros(episodes)
        alive = np.ones(episodes, bool)
        while alive.any():
            actions = np.clip(algo.predict(obs), low, high)
            for i in np.flatnonzero(alive):
                next_obs, reward, terminated, truncated, _ = envs[i].step(actions[i])
                obs[i] = next_obs
                returns[i] += float(reward)
                lengths[i] += 1
                alive[i] = not (terminated or truncated)
    finally:
        for env in envs:
            env.close()
    return {
        "eval/return_mean": [float(returns.mean())],
        "eval/return_std": [float(returns.std())],
        "eval/length_mean": [float(lengths.mean())],
    }


VAE_PROBE_ROWS = 10_000
"""Rows of the fixed sample on which a BCQ or BEAR peer's VAE is measured at each evaluation."""


def vae_probe(algo, arrays: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """``vae/kl`` and ``vae/reconstruction`` of a BCQ or BEAR peer's VAE, as brackit logs them (the mean
    KL to N(0, 1) over rows x latent dimensions and the mean squared error over rows x action dimensions of
    the decoder at a reparameterised z, both terms of the loss d3rlpy trains), on ``VAE_PROBE_ROWS`` rows
    fixed by seed 0 and a fixed noise draw, so that every evaluation of every run reads the same sample. A
    ``vae/kl`` near 0 is a collapsed posterior: the decoder ignores z and every candidate action of a state
    is the same."""
    import torch
    from torch.distributions import Normal
    from torch.distributions.kl import kl_divergence

    rows = np.random.default_rng(0).choice(len(arrays["obs"]), VAE_PROBE_ROWS, replace=False)
    obs = torch.as_tensor(arrays["obs"][rows], dtype=torch.float32)
    action = torch.as_tensor(arrays["action"][rows], dtype=torch.float32)
    modules = algo.impl.modules
    with torch.no_grad():
        dist = modules.vae_encoder(obs, action)
        noise = torch.randn(dist.loc.shape, generator=torch.Generator().manual_seed(0))
        reconstruction = modules.vae_decoder(obs, dist.loc + dist.scale * noise)
        kl = kl_divergence(dist, Normal(0.0, 1.0)).mean()
        error = torch.mean((reconstruction - action) ** 2)
    return {"vae/kl": [float(kl)], "vae/reconstruction": [float(error)]}


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> None:
    import d3rlpy
    import torch

    out = Path(args.out)
    metrics_path, state_path, peer_path = out / "metrics.jsonl", out / "peer_state.pt", out / "peer.json"
    # a run killed before its first evaluation has a run.json but no metrics yet: it starts again
    history = (
        [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
    )
    history = [entry for entry in history if "eval/return_mean" in entry]
    if history and history[-1]["step"] >= args.steps:
        print(f"{out}: finished, skipped")
        return
    card, arrays = load_npz(Path(args.data))
    env_id = card["env_id"]
    dataset = f"{card['extra']['task']}-{card['extra']['mix']}" if "task" in card.get("extra", {}) else ""
    config = peer_config(args.algo, arrays["obs"], args.steps, dataset)
    spec = {
        "algorithm": f"d3rlpy:{args.algo}",
        "config": json.loads(config.serialize()),
        "data": str(args.data),
        "dataset_sha256": card["sha256"],
        "env_id": env_id,
        "seeds": [args.seed],
        "sweep": {},
        "steps": args.steps,
        "chunk_steps": args.eval_every,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "eval_mode": "d3rlpy predict",
        "label": LABELS[args.algo],
    }
    torch.set_num_threads(args.threads or torch.get_num_threads())
    d3rlpy.seed(args.seed)
    dataset = mdp_dataset(arrays)
    algo = config.create(device="cpu:0")
    algo.build_with_dataset(dataset)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "run.json", json.dumps(spec, indent=2, sort_keys=True))
    peer = {"resumes": 0, "train_seconds": 0.0}
    done = 0
    if history and state_path.exists():
        algo.load_model(str(state_path))
        done = history[-1]["step"]
        algo.set_grad_step(done)
        peer = json.loads(peer_path.read_text()) if peer_path.exists() else peer
        peer["resumes"] += 1
    else:  # no state to resume from (e.g. a fresh machine): the run starts again, its old counts with it
        history = []
    peer.update(
        d3rlpy=d3rlpy.__version__,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    )
    while done < args.steps:
        length = min(args.eval_every, args.steps - done)
        start = time.perf_counter()
        for _ in range(length):
            algo.update(dataset.sample_transition_batch(config.batch_size))
        seconds = time.perf_counter() - start
        done += length
        eval_start = time.perf_counter()
        entry = {
            "phase": "train",
            "step": done,
            "time/seconds": seconds,
            "time/updates_per_s": length / seconds,
        }
        entry.update(evaluate(algo, env_id, args.eval_episodes, done, args.run_index))
        if args.algo in ("bcq", "bear"):
            entry.update(vae_probe(algo, arrays))
        entry["time/eval_seconds"] = time.perf_counter() - eval_start
        peer["train_seconds"] += seconds + entry["time/eval_seconds"]
        history.append(entry)
        algo.save_model(str(state_path))
        atomic_write(metrics_path, "".join(json.dumps(e) + "\n" for e in history))
        atomic_write(peer_path, json.dumps(peer, indent=2, sort_keys=True))
        print(
            f"{out} step {done}: return {entry['eval/return_mean'][0]:.1f} ({length / seconds:.0f} updates/s)"
        )
    updates_per_s = [e["time/updates_per_s"] for e in history]
    peer.update(
        finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        median_updates_per_s=float(np.median(updates_per_s)),
    )
    atomic_write(peer_path, json.dumps(peer, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a brackit .npz dataset")
    parser.add_argument("--algo", required=True, choices=sorted(LABELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--run-index", type=int, default=None, help="evaluation seeds as brackit's run r (default: --seed)"
    )
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out", required=True, help="the run directory")
    args = parser.parse_args(argv)
    if args.run_index is None:
        args.run_index = args.seed
    run(args)


if __name__ == "__main__":
    main()
