"""Why does a trained BEAR policy return what it does? Reads a BEAR checkpoint (run 0 of its group, or
``--run``) and its dataset, and reports, per segment of the dataset (``card.extra.segments``, in row order):

- where the actor's mode action tanh(mean) is about zero (every |a_i| < ``--zero``) and where the VAE's is
  (decoder at z = 0; with a collapsed posterior every VAE sample is that action, the data's mean action there);
- the actor's log-std at its floor (``log_std_min``: no gradient reaches it there);
- the L1 distance between the actor's and the VAE's mode actions, and between the VAE's and the data's;

then, at the rollouts' start states, the actor's and the VAE's mode actions and critic 1's value of each; and
rolls out three action rules from the same reset seeds: the VAE's mode, the actor's mode, and BEAR's
evaluation rule (``max_q``). A policy that stands still (returns near 0) while the VAE's mean action runs shows
the actor has settled on the zero action where the data's random segment dominates: a mean-seeking
constraint (MMD to a collapsed VAE) pulls it to the random policy's mean action, 0, on those states, and the
task's start state is one of them.

    BRACKIT_DATA_DIR=... .venv/bin/python -m benchmarks.experiments.bear_probe \\
        benchmarks/results/learning/runs/halfcheetah-eps1/bear/checkpoint.npz \\
        --data halfcheetah-eps1-1000000-s0.npz --out benchmarks/results/experiments

Checkpoints are not committed: run it where the study ran.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.benchmarks_common import emit_report, machine_header, script_command
from brackit import envs
from brackit.algos import bear, common
from brackit.checkpoint import load_obs_stats
from brackit.evaluation import evaluate
from brackit.files import atomic_write_text
from brackit.protocol.resolve import dataset_label
from brackit.run import load_run


def segment_rows(card: dict, total: int) -> list[tuple[str, slice]]:
    """(name, rows) of each collection segment, in the file's row order."""
    out, start = [], 0
    for segment in card["extra"]["segments"]:
        out.append((segment["name"], slice(start, start + int(segment["size"]))))
        start += int(segment["size"])
    if start != total:
        raise SystemExit(f"segments cover {start} rows, the file has {total}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", required=True, help="the run's dataset file (a brackit .npz)")
    parser.add_argument("--run", type=int, default=0, help="which run of the group (default 0)")
    parser.add_argument("--rows", type=int, default=4000, help="rows sampled per segment")
    parser.add_argument("--zero", type=float, default=0.05, help="|a_i| below this counts as zero")
    parser.add_argument(
        "--saturated",
        type=float,
        default=3.0,
        help="|pre-tanh| above this counts as saturated (tanh > 0.995)",
    )
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="evaluation seed (reset seeds follow from it)")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for bear_probe_<dataset>_run<r>.md/.json"
    )
    args = parser.parse_args(argv)

    spec, config, states = load_run(args.checkpoint)
    if spec.algorithm != "bear" or spec.env_id is None:
        parser.error(f"{args.checkpoint}: expected a BEAR run with an env id, got {spec.algorithm!r}")
    if load_obs_stats(args.checkpoint) is not None:
        parser.error(f"{args.checkpoint}: a run trained on normalised observations is not handled here")
    run = jax.tree.map(lambda x: x[args.run : args.run + 1], states)
    one = jax.tree.map(lambda x: x[0], run)
    with np.load(args.data, allow_pickle=False) as npz:
        obs_all, actions_all = npz["obs"], npz["action"]
        card = json.loads(str(npz["card_json"]))
    action_dim = actions_all.shape[1]
    vae = common.vae_net(config, action_dim)

    def vae_raw_mode(params: dict, obs: jax.Array) -> jax.Array:
        z = jnp.zeros((*obs.shape[:-1], vae.latent), obs.dtype)
        return vae.apply(params, obs, z, method=vae.decode_raw)

    def vae_mode(params: dict, obs: jax.Array) -> jax.Array:
        return jnp.tanh(vae_raw_mode(params, obs))

    rng = np.random.default_rng(0)
    segments = []
    for name, rows in segment_rows(card, len(obs_all)):
        index = np.sort(
            rng.choice(np.arange(rows.start, rows.stop), min(args.rows, rows.stop - rows.start), False)
        )
        obs = jnp.asarray(obs_all[index])
        pi = bear.policy(config, one.actor_params, obs, action_dim)
        actor_raw = np.asarray(pi.mean)
        actor = np.tanh(actor_raw)
        behavior_raw = np.asarray(vae_raw_mode(one.vae_params, obs))
        behavior = np.tanh(behavior_raw)
        segments.append(
            {
                "segment": name,
                "rows": len(index),
                "actor_zero": float(np.mean(np.abs(actor).max(1) < args.zero)),
                "vae_zero": float(np.mean(np.abs(behavior).max(1) < args.zero)),
                "log_std_at_floor": float(np.mean(np.asarray(pi.log_std) <= config.log_std_min + 1e-6)),
                "l1_actor_vae": float(np.abs(actor - behavior).sum(1).mean()),
                "l1_vae_data": float(np.abs(behavior - actions_all[index]).sum(1).mean()),
                # pre-tanh: what the MMD compares when mmd_on_raw (the default)
                "l1_raw_actor_vae": float(np.abs(actor_raw - behavior_raw).sum(1).mean()),
                "vae_raw_abs_mean": float(np.abs(behavior_raw).mean()),
                "vae_raw_saturated": float(np.mean(np.abs(behavior_raw) > args.saturated)),
            }
        )

    # the states every rollout starts from (passed to evaluate below as its first reset seed, so the two agree):
    # is the actor's mode the VAE's there, and which of the two does the critic prefer?
    env = envs.make(spec.env_id)
    first = args.seed * 100_003  # evaluate's default for this seed: the committed probes' reset states
    start_obs = jnp.asarray(
        np.stack([env.reset(seed=first + i)[0] for i in range(args.episodes)]), jnp.float32
    )
    env.close()
    start_pi = bear.policy(config, one.actor_params, start_obs, action_dim)
    start_actor = jnp.tanh(start_pi.mean)
    start_vae = vae_mode(one.vae_params, start_obs)
    critic = common.critic_net(config)
    q1_actor = np.asarray(critic.apply(one.critic_params, start_obs, start_actor)[0])
    q1_vae = np.asarray(critic.apply(one.critic_params, start_obs, start_vae)[0])
    starts = [
        {
            "episode": i,
            "actor": np.round(np.asarray(start_actor[i]), 3).tolist(),
            "vae": np.round(np.asarray(start_vae[i]), 3).tolist(),
            "actor_log_std_mean": float(np.mean(np.asarray(start_pi.log_std[i]))),
            "q1_actor": float(q1_actor[i]),
            "q1_vae": float(q1_vae[i]),
        }
        for i in range(args.episodes)
    ]

    def rule(name: str):
        def act(states, obs, keys, mode):
            if name == "vae mode":
                return jax.vmap(vae_mode)(states.vae_params, obs)
            return jax.vmap(lambda s, o, k: bear.act(config, s, o, k, mode))(states, obs, keys)

        return jax.jit(act, static_argnames="mode")

    rollouts = []
    for name, mode in (("vae mode", "mode"), ("actor mode", "mode"), ("actor max_q (BEAR's rule)", "max_q")):
        result = evaluate(
            rule(name), run, spec.env_id, args.episodes, seed=args.seed, mode=mode, first_reset_seed=first
        )
        returns = np.asarray(result.returns)[0]
        rollouts.append({"rule": name, "returns": [float(r) for r in returns]})

    dataset_name = dataset_label(args.data)
    lines = [
        f"# BEAR probe: {dataset_name}, {args.checkpoint.parent.name} run {args.run}",
        "",
        machine_header(script_command(__file__, argv)),
        f"- checkpoint step: {int(np.asarray(one.step))}; Lagrange multiplier {float(jnp.exp(one.log_lagrange)):.4g}",
        "",
        f"Per segment ({args.rows} rows each): share of states whose mode action is zero (every |a_i| < "
        f"{args.zero}) for the actor and for the VAE (z = 0), share of the actor's log-std entries at its floor "
        f"({config.log_std_min}), mean L1 distances between mode actions, and the same before the tanh (what "
        f"the MMD compares with `mmd_on_raw`, {config.mmd_on_raw} here): the actor's mean against the VAE decoder's "
        f"pre-tanh output, its mean magnitude and its share of entries beyond +-{args.saturated} (tanh saturated).",
        "",
        "| segment | actor zero | VAE zero | actor log-std at floor | L1 actor-VAE | L1 VAE-data "
        "| L1 actor-VAE pre-tanh | VAE mean abs pre-tanh | VAE pre-tanh saturated |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {s['segment']} | {s['actor_zero']:.1%} | {s['vae_zero']:.1%} | {s['log_std_at_floor']:.1%} | "
            f"{s['l1_actor_vae']:.2f} | {s['l1_vae_data']:.2f} | {s['l1_raw_actor_vae']:.2f} | "
            f"{s['vae_raw_abs_mean']:.2f} | {s['vae_raw_saturated']:.1%} |"
            for s in segments
        ),
        "",
        "At the start states of the rollouts below (the same reset seeds): "
        "the mode actions, the actor's mean log-std, and critic 1's value of each mode action.",
        "",
        "| episode | actor mode | VAE mode | actor mean log-std | Q1(actor mode) | Q1(VAE mode) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {t['episode']} | {', '.join(f'{x:.2f}' for x in t['actor'])} | "
            f"{', '.join(f'{x:.2f}' for x in t['vae'])} | {t['actor_log_std_mean']:.2f} | "
            f"{t['q1_actor']:.1f} | {t['q1_vae']:.1f} |"
            for t in starts
        ),
        "",
        f"Rollouts, {args.episodes} episodes each, evaluation seed {args.seed} (same reset states for every rule):",
        "",
        "| action rule | returns |",
        "|---|---|",
        *(f"| {r['rule']} | {', '.join(f'{x:.1f}' for x in r['returns'])} |" for r in rollouts),
    ]
    name = f"bear_probe_{dataset_name}_run{args.run}"
    emit_report(lines, args.out, f"{name}.md")
    if args.out is not None:
        atomic_write_text(
            args.out / f"{name}.json",
            json.dumps({"segments": segments, "starts": starts, "rollouts": rollouts}, indent=2) + "\n",
        )


if __name__ == "__main__":
    main()
