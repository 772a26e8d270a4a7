"""The algorithm registry: name -> config class and the pure functions that train and act.

Every algorithm is a module with ``init(config, key, obs_dim, action_dim) -> state``,
``update(config, state, batch) -> (state, metrics)`` and ``act(config, state, obs, key, mode)``,
optionally ``pretrain_steps(config)`` and ``pretrain_update`` (e.g. fitting the behavior policy first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from brackit import config
from brackit.algos import bc, bcq, bear, brac, td3bc
from brackit.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    config_cls: type
    init: Callable[..., Any]
    update: Callable[..., Any]
    act: Callable[..., Any]
    pretrain_steps: Callable[[Any], int] = lambda config: 0
    pretrain_update: Callable[..., Any] | None = None
    description: str = ""
    pretrain_batch_size: Callable[[Any], int] | None = None
    """Batch size of the pretraining phase (None: ``config.batch_size``)."""
    batches_per_update: Callable[[Any], int] = lambda config: 1
    """Batches one ``update`` reads; above 1 the training loop passes them stacked [K, B, ...]."""
    eval_mode: str = "mode"
    """The reference evaluation rule (``act`` mode): 'mode' (the deterministic action) or 'max_q' (the best
    of sampled candidates under Q1), as the algorithm's paper and reference code evaluate it."""
    act_modes: tuple[str, ...] = ("mode", "sample")
    """Every rule ``act`` knows ('sample': a draw of the policy; 'max_q' needs critics)."""

    def check_act_mode(self, mode: str, where: str) -> None:
        """A ConfigError naming ``where`` (e.g. ``--eval-mode``) unless ``act`` knows the rule ``mode``."""
        if mode not in self.act_modes:
            raise ConfigError(
                f"{where} {mode!r}: {self.name} acts by one of the rules {', '.join(self.act_modes)}"
            )


def _brac_family(name: str, config_cls: type, description: str) -> Algorithm:
    """BRAC's functions under another config class (offline SAC is BRAC without a divergence)."""
    return Algorithm(
        name,
        config_cls,
        brac.init,
        brac.update,
        brac.act,
        brac.pretrain_steps,
        brac.pretrain_update,
        description,
        pretrain_batch_size=brac.pretrain_batch_size,
        batches_per_update=brac.batches_per_update,
        act_modes=("mode", "sample", "max_q"),
    )


ALGORITHMS: dict[str, Algorithm] = {
    "bc": Algorithm(
        "bc",
        bc.BCConfig,
        bc.init,
        bc.update,
        bc.act,
        description="behavior cloning (MLE + tuned entropy term, as BRAC's bc_agent)",
    ),
    "brac": _brac_family("brac", brac.BRACConfig, "BRAC (value or policy penalty, any divergence)"),
    "sac_offline": _brac_family(
        "sac_offline", brac.SACOfflineConfig, "unregularized offline SAC (BRAC with divergence 'none')"
    ),
    "bcq": Algorithm(
        "bcq",
        bcq.BCQConfig,
        bcq.init,
        bcq.update,
        bcq.act,
        description="BCQ (VAE + perturbation)",
        act_modes=bcq.ACT_MODES,
        eval_mode="max_q",  # sfujim/BCQ select_action: argmax Q1 over perturbed VAE samples
    ),
    "bear": Algorithm(
        "bear",
        bear.BEARConfig,
        bear.init,
        bear.update,
        bear.act,
        description="BEAR (VAE + MMD)",
        act_modes=bear.ACT_MODES,
        eval_mode="max_q",  # aviralkumar2907/BEAR select_action: argmax Q1 over 10 actor samples
    ),
    "td3bc": Algorithm(
        "td3bc",
        td3bc.TD3BCConfig,
        td3bc.init,
        td3bc.update,
        td3bc.act,
        description="TD3+BC",
        act_modes=("mode", "max_q"),
    ),
    "rebrac": Algorithm(
        "rebrac",
        td3bc.ReBRACConfig,
        td3bc.init,
        td3bc.update,
        td3bc.act,
        description="ReBRAC",
        act_modes=("mode", "max_q"),
    ),
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def make_config(name: str, **overrides: Any) -> Any:
    """The algorithm's config with ``overrides``; an unknown field is a ConfigError listing valid ones."""
    return config.build(get_algorithm(name).config_cls, overrides, name)
