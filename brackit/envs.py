"""Making gymnasium environments, with MuJoCo's known-harmless compiler warning filtered.

MuJoCo 4 warns, from C, every time a model with ``<compiler settotalmass=...>`` is compiled; gymnasium's
HalfCheetah XML has one, so a 64-environment dataset build printed the same paragraph 64 times. ``make``
installs (once per process, and only if no MuJoCo warning handler is set already) a handler that drops
exactly that deprecation and passes every other MuJoCo warning on to Python's ``warnings`` module, where
the usual filters apply (each distinct message is shown once by default).
"""

from __future__ import annotations

import warnings
from typing import Any

_KNOWN_HARMLESS = ("compiler attribute 'settotalmass' is deprecated",)
_installed = False


class MujocoWarning(RuntimeWarning):
    """A warning MuJoCo's C library raised (passed on by ``brackit.envs``)."""


def _forward(message: str) -> None:
    if any(text in message for text in _KNOWN_HARMLESS):
        return
    warnings.warn(message, MujocoWarning, stacklevel=2)


def install_mujoco_warning_filter() -> bool:
    """Installs the filtering handler unless one is already set; True if brackit's handler is active."""
    global _installed
    if _installed:
        return True
    try:
        import mujoco
    except ImportError:  # no MuJoCo: nothing to filter
        return False
    if mujoco.get_mju_user_warning() is not None:
        return False  # the user has their own handler: leave it
    mujoco.set_mju_user_warning(_forward)
    _installed = True
    return True


def make(env_id: str, **kwargs: Any) -> Any:
    """``gymnasium.make(env_id, **kwargs)`` with the MuJoCo warning filter installed first."""
    import gymnasium as gym

    install_mujoco_warning_filter()
    return gym.make(env_id, **kwargs)
