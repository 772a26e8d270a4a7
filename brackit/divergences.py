"""Divergences between the learned policy pi and the behavior policy pi_b, in primal and dual forms.

Wu, Tucker & Nachum (2019), "Behavior Regularized Offline Reinforcement Learning", section 3.2:
- kernel MMD (primal, from samples of both policies; Laplacian or Gaussian kernel);
- KL: primal (samples of pi, log-probs under pi and pi_b), or dual (the f-divergence dual with a learned
  critic c(s, a): E_pi[1 + log softplus(c)] - E_b[softplus(c)], tight at softplus(c) = pi / pi_b);
- Wasserstein-1: dual only, E_pi[c] - E_b[c] with c kept 1-Lipschitz in the action by a one-sided
  gradient penalty on interpolates (Gulrajani et al. 2017).
Every dual critic, KL included, carries that gradient penalty (weight ``penalty_weight``, 5), as the
reference's ``Divergence.dual_critic_loss`` adds it for every divergence (google-research
``behavior_regularized_offline_rl/brac/divergences.py``).

All divergences share one interface and are looked up by name (``make_divergence``); asking for a form a
divergence lacks is a ``ConfigError`` raised when the config is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from brackit.config_checks import check_ranges
from brackit.errors import ConfigError

FORMS = ("primal", "dual")


@struct.dataclass
class PrimalInputs:
    """Everything a primal estimate may use, per state. XLA drops what a divergence does not read.

    policy_actions / policy_raw: N samples of pi (squashed / pre-tanh) [N, B, A];
    policy_log_prob: log pi(a_n | s) [N, B]; behavior_log_prob: log pi_b(a_n | s) at the same samples [N, B];
    behavior_actions / behavior_raw: M samples of pi_b [M, B, A].
    """

    policy_actions: jax.Array
    policy_raw: jax.Array
    policy_log_prob: jax.Array
    behavior_log_prob: jax.Array
    behavior_actions: jax.Array
    behavior_raw: jax.Array


def _pairwise_differences(x: jax.Array, y: jax.Array) -> jax.Array:
    """x [N, B, A], y [M, B, A] -> x_n - y_m as [N, M, A, B].

    The batch axis goes last so that the sum over the (small) action axis runs over contiguous rows:
    with A last, XLA's CPU code for the kernel and its gradient was about 3x slower.
    """
    x, y = jnp.swapaxes(x, -1, -2), jnp.swapaxes(y, -1, -2)
    return x[:, None] - y[None, :]


def laplacian_kernel(x: jax.Array, y: jax.Array, sigma: float) -> jax.Array:
    """exp(-sum_a |x - y| / sigma) for every pair: x [N, B, A], y [M, B, A] -> [N, M, B]."""
    return jnp.exp(-jnp.sum(jnp.abs(_pairwise_differences(x, y)), axis=-2) / sigma)


def gaussian_kernel(x: jax.Array, y: jax.Array, sigma: float) -> jax.Array:
    """exp(-sum_a (x - y)^2 / (2 sigma)) for every pair: x [N, B, A], y [M, B, A] -> [N, M, B]."""
    return jnp.exp(-jnp.sum(_pairwise_differences(x, y) ** 2, axis=-2) / (2.0 * sigma))


KERNELS: dict[str, Callable[[jax.Array, jax.Array, float], jax.Array]] = {
    "laplacian": laplacian_kernel,
    "gaussian": gaussian_kernel,
}


def mmd_squared(x: jax.Array, y: jax.Array, kernel: str = "laplacian", sigma: float = 20.0) -> jax.Array:
    """Biased (V-statistic) squared MMD per state: x [N, B, A], y [M, B, A] -> [B].

    mean k(x, x') + mean k(y, y') - 2 mean k(x, y); zero when the sample sets are equal.
    """
    k = KERNELS[kernel]
    return (
        jnp.mean(k(x, x, sigma), axis=(0, 1))
        + jnp.mean(k(y, y, sigma), axis=(0, 1))
        - 2.0 * jnp.mean(k(x, y, sigma), axis=(0, 1))
    )


def kl_dual_estimate(c_policy: jax.Array, c_behavior: jax.Array) -> jax.Array:
    """Per-state KL(pi || pi_b) dual value: 1 + log(softplus(c(s, a_pi)) + 1e-8) - softplus(c(s, a_b))."""
    return 1.0 + jnp.log(jax.nn.softplus(c_policy) + 1e-8) - jax.nn.softplus(c_behavior)


def wasserstein_dual_estimate(c_policy: jax.Array, c_behavior: jax.Array) -> jax.Array:
    """Per-state W1 dual value: c(s, a_pi) - c(s, a_b)."""
    return c_policy - c_behavior


@dataclasses.dataclass(frozen=True)
class Divergence:
    """Base class: a divergence with the forms it supports. Subclasses are frozen dataclasses."""

    name: ClassVar[str]
    forms: ClassVar[tuple[str, ...]]
    form: str = "primal"
    penalty_weight: Annotated[float, ">= 0"] = 5.0  # brackit.config_checks.check_ranges
    """Weight of the dual critic's one-sided gradient penalty (dual forms)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.form not in FORMS:
            raise ConfigError(f"divergence form must be one of {FORMS}, got {self.form!r}")
        if self.form not in self.forms:
            others = [n for n, cls in DIVERGENCES.items() if self.form in cls.forms]
            raise ConfigError(
                f"divergence {self.name!r} has no {self.form} form (it supports {list(self.forms)}); "
                f"set form to one of {list(self.forms)} or choose a divergence with a {self.form} form: {others}"
            )

    # Primal: per-state estimate [B] from samples and log-probs.
    def primal(self, inputs: PrimalInputs) -> jax.Array:
        raise NotImplementedError

    # Dual: per-state value [B] of the dual objective (maximised over the critic) ...
    def dual(self, c_policy: jax.Array, c_behavior: jax.Array) -> jax.Array:
        raise NotImplementedError

    # ... and the critic's regulariser (added to the critic's loss).
    def critic_penalty(
        self,
        critic: Callable[[jax.Array, jax.Array], jax.Array],
        key: jax.Array,
        obs: jax.Array,
        policy_action: jax.Array,
        behavior_action: jax.Array,
    ) -> jax.Array:
        """``penalty_weight`` times the critic's one-sided gradient penalty (every dual form):
        mean(max(||grad_a c(s, a~)|| - 1, 0)^2) at a~ = a_pi + u (a_b - a_pi), u ~ U(0, 1) per row."""
        u = jax.random.uniform(key, (*policy_action.shape[:-1], 1))
        interpolate = policy_action + u * (behavior_action - policy_action)
        grad = jax.grad(lambda a: jnp.sum(critic(obs, a)))(interpolate)
        norm = jnp.sqrt(jnp.sum(grad**2, axis=-1) + 1e-8)  # the reference's EPS inside the root
        return self.penalty_weight * jnp.mean(jnp.maximum(norm - 1.0, 0.0) ** 2)

    @property
    def needs_behavior_policy(self) -> bool:
        """Primal forms need a trained behavior policy; dual forms use dataset actions."""
        return self.form == "primal"


@dataclasses.dataclass(frozen=True)
class MMD(Divergence):
    """Kernel MMD. BRAC: Laplacian, sigma 20, on squashed actions, no square root.
    BEAR: on pre-tanh samples (``on_raw``), ``sqrt(mmd2 + 1e-6)``. Kernel widths against BEAR's code: its
    Laplacian divides the L1 distance by 2 sigma, i.e. this Laplacian with ``sigma = 2 * sigma_bear``; its
    Gaussian divides the squared distance by 2 sigma, as this Gaussian does (``sigma = sigma_bear``)."""

    name: ClassVar[str] = "mmd"
    forms: ClassVar[tuple[str, ...]] = ("primal",)
    kernel: str = "laplacian"
    sigma: Annotated[float, "> 0"] = 20.0
    use_sqrt: bool = False
    on_raw: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel not in KERNELS:
            raise ConfigError(f"mmd kernel must be one of {list(KERNELS)}, got {self.kernel!r}")

    def primal(self, inputs: PrimalInputs) -> jax.Array:
        if self.on_raw:
            x, y = inputs.policy_raw, inputs.behavior_raw
        else:
            x, y = inputs.policy_actions, inputs.behavior_actions
        value = mmd_squared(x, y, self.kernel, self.sigma)
        return jnp.sqrt(value + 1e-6) if self.use_sqrt else value


@dataclasses.dataclass(frozen=True)
class KL(Divergence):
    """KL(pi || pi_b): primal mean_n(log pi(a_n) - log pi_b(a_n)), a_n ~ pi; or the f-divergence dual."""

    name: ClassVar[str] = "kl"
    forms: ClassVar[tuple[str, ...]] = ("primal", "dual")

    def primal(self, inputs: PrimalInputs) -> jax.Array:
        return jnp.mean(inputs.policy_log_prob - inputs.behavior_log_prob, axis=0)

    def dual(self, c_policy: jax.Array, c_behavior: jax.Array) -> jax.Array:
        return kl_dual_estimate(c_policy, c_behavior)


@dataclasses.dataclass(frozen=True)
class Wasserstein(Divergence):
    """Wasserstein-1 in the dual (Kantorovich-Rubinstein) form with a one-sided gradient penalty."""

    name: ClassVar[str] = "w"
    forms: ClassVar[tuple[str, ...]] = ("dual",)
    form: str = "dual"

    def dual(self, c_policy: jax.Array, c_behavior: jax.Array) -> jax.Array:
        return wasserstein_dual_estimate(c_policy, c_behavior)


DIVERGENCES: dict[str, type[Divergence]] = {"mmd": MMD, "kl": KL, "w": Wasserstein}


def make_divergence(name: str, form: str, **params: object) -> Divergence:
    """Looks up a divergence by name and builds it; unknown names, forms or parameters are ConfigErrors."""
    if name not in DIVERGENCES:
        raise ConfigError(f"unknown divergence {name!r}; choose one of {list(DIVERGENCES)}")
    cls = DIVERGENCES[name]
    valid = {f.name for f in dataclasses.fields(cls)} - {"form"}
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ConfigError(f"divergence {name!r} has no parameter {unknown[0]!r}; valid: {sorted(valid)}")
    return cls(form=form, **params)
