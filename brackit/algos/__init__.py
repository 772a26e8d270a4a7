"""The algorithm registry: name -> config class and the pure functions that train and act.

Every algorithm is a module with ``init(config, key, obs_dim, action_dim) -> state``,
``update(config, state, batch) -> (state, metrics)`` and ``act(config, state, obs, key, mode)``,
optionally the ``HOOKS``: ``pretrain_steps(config)`` and ``pretrain_update`` (e.g. fitting the behavior
policy first), ``pretrain_batch_size`` and ``batches_per_update``; ``from_module`` registers one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

from brackit import config
from brackit.algos import bc, bcq, bear, brac, td3bc
from brackit.errors import ConfigError
from brackit.nets import TANH_GAUSSIAN_ACT_MODES


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


HOOKS = ("pretrain_steps", "pretrain_update", "pretrain_batch_size", "batches_per_update")
"""The optional functions of an algorithm module (the ``Algorithm`` fields of the same names)."""


def from_module(
    name: str,
    config_cls: type,
    module: ModuleType,
    description: str,
    *,
    act_modes: tuple[str, ...] = ("mode", "sample"),
    eval_mode: str = "mode",
) -> Algorithm:
    """The algorithm whose functions are ``module``'s: ``init``, ``update``, ``act`` and the ``HOOKS`` it
    defines (offline SAC is BRAC's module under another config class)."""
    hooks = {hook: getattr(module, hook) for hook in HOOKS if hasattr(module, hook)}
    return Algorithm(
        name,
        config_cls,
        module.init,
        module.update,
        module.act,
        description=description,
        act_modes=act_modes,
        eval_mode=eval_mode,
        **hooks,
    )


ALGORITHMS: dict[str, Algorithm] = {
    "bc": from_module(
        "bc", bc.BCConfig, bc, "behavior cloning (MLE + tuned entropy term, as BRAC's bc_agent)"
    ),
    "brac": from_module(
        "brac",
        brac.BRACConfig,
        brac,
        "BRAC (value or policy penalty, any divergence)",
        act_modes=TANH_GAUSSIAN_ACT_MODES,
    ),
    "sac_offline": from_module(
        "sac_offline",
        brac.SACOfflineConfig,
        brac,
        "unregularized offline SAC (BRAC with divergence 'none')",
        act_modes=TANH_GAUSSIAN_ACT_MODES,
    ),
    "bcq": from_module(
        "bcq",
        bcq.BCQConfig,
        bcq,
        "BCQ (VAE + perturbation)",
        act_modes=bcq.ACT_MODES,
        eval_mode="max_q",  # sfujim/BCQ select_action: argmax Q1 over perturbed VAE samples
    ),
    "bear": from_module(
        "bear",
        bear.BEARConfig,
        bear,
        "BEAR (VAE + MMD)",
        act_modes=bear.ACT_MODES,
        eval_mode="max_q",  # aviralkumar2907/BEAR select_action: argmax Q1 over 10 actor samples
    ),
    "td3bc": from_module("td3bc", td3bc.TD3BCConfig, td3bc, "TD3+BC", act_modes=("mode", "max_q")),
    "rebrac": from_module("rebrac", td3bc.ReBRACConfig, td3bc, "ReBRAC", act_modes=("mode", "max_q")),
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def make_config(name: str, **overrides: Any) -> Any:
    """The algorithm's config with ``overrides``; an unknown field is a ConfigError listing valid ones."""
    return config.build(get_algorithm(name).config_cls, overrides, name)
