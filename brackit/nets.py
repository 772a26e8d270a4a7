"""Networks (flax.linen) and the tanh-squashed Gaussian distribution used by every algorithm.

Shapes: obs [B, O], action [B, A]; a critic ensemble returns q [E, B]; ``N`` is samples per state. Networks of
(obs, action) also take obs [B, O] with actions [N, B, A] and return [N, B] (``PartsDense``): pass obs unrepeated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct, traverse_util

from brackit.errors import ConfigError
from brackit.ops import (
    bellman_target,
    ensemble_reduce,
    ensemble_td_loss,
    entropy_temperature_loss,
    gradient_step,
    multiplier_step,
)
from brackit.types import Transition

LOG_2 = 0.6931471805599453


class PartsDense(nn.Module):
    """A dense layer on the concatenation of ``parts`` along the last axis, without building it when the parts'
    leading shapes differ: ``sum_i part_i @ kernel[rows of part i] + bias``, broadcast over the leading axes.

    The parameters are ``nn.Dense``'s on the concatenated input (same names, shapes, initialisers). With
    parts of equal leading shapes it concatenates and makes one matmul, as ``nn.Dense`` does. With obs [B, O]
    and N sampled actions [N, B, A] (the sampled-action targets of BCQ and BEAR), the obs rows are multiplied
    once per state instead of once per sample: 6% fewer FLOPs in a 2x256 critic at |O| = 17, 31% at Ant's 105.
    """

    features: int
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, parts: Sequence[jax.Array]) -> jax.Array:
        widths = [part.shape[-1] for part in parts]
        kernel = self.param("kernel", self.kernel_init, (sum(widths), self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        if len({part.shape[:-1] for part in parts}) == 1:
            return jnp.concatenate(parts, axis=-1) @ kernel + bias
        out, start = bias, 0
        for part, width in zip(parts, widths, strict=True):
            out = out + part @ kernel[start : start + width]
            start += width
        return out


HIDDEN_INITS = ("lecun", "fan_in_uniform")


@dataclasses.dataclass(frozen=True)
class MLPStyle:
    """Where an MLP's LayerNorm goes and how its layers are initialised; the default is brackit's network.

    ``MLPStyle()``: Dense -> LayerNorm -> ReLU, hidden kernels LeCun normal (flax's default), zero biases,
    the last kernel Glorot uniform (scaled by ``MLP.final_scale``) with a zero bias. ReBRAC's networks
    (``MLPStyle(True, "fan_in_uniform", 0.1, 3e-3)`` for its critic) are Dense -> ReLU -> LayerNorm, hidden
    kernels U(+-1/sqrt(fan_in)) (PyTorch's default), hidden biases 0.1 and the last layer's kernel and bias
    U(+-final_uniform). The parameters' names and shapes are the same in every style.
    """

    layer_norm_after_relu: bool = False
    hidden_init: str = "lecun"
    """'lecun' (LeCun normal) or 'fan_in_uniform' (U(+-1/sqrt(fan_in)))."""
    hidden_bias: float = 0.0
    final_uniform: float | None = None
    """When set, the last layer's kernel and bias are U(+-final_uniform) (``final_scale`` is then unused)."""

    def __post_init__(self) -> None:
        if self.hidden_init not in HIDDEN_INITS:
            raise ValueError(f"hidden_init must be one of {HIDDEN_INITS}, got {self.hidden_init!r}")


NET_INITS = ("flax", "torch")
"""Initialisations of a whole network: 'flax' (each layer's own initialisers) or 'torch' (``torch_linear_init``)."""


def torch_linear_init(params: dict, key: jax.Array) -> dict:
    """``params`` with every dense layer redrawn as PyTorch's ``nn.Linear`` initialises it: kernel and bias
    both U(+-1/sqrt(fan_in)) (``kaiming_uniform_(a=sqrt(5))`` for the kernel gives that bound).

    A dense layer is a dict of parameters holding a 'kernel' [..., fan_in, out] and a 'bias' [..., out];
    leading axes (a vmapped ensemble's members) are drawn independently. Other parameters are kept. The
    layers take keys in the sorted order of their paths, so the draw depends only on ``key`` and the names.
    """
    flat = traverse_util.flatten_dict(params)
    layers = sorted({path[:-1] for path in flat if path[-1] == "kernel" and (*path[:-1], "bias") in flat})
    for index, layer in enumerate(layers):
        kernel_key, bias_key = jax.random.split(jax.random.fold_in(key, index))
        kernel, bias = flat[(*layer, "kernel")], flat[(*layer, "bias")]
        bound = 1.0 / float(kernel.shape[-2]) ** 0.5
        flat[(*layer, "kernel")] = symmetric_uniform(bound)(kernel_key, kernel.shape, kernel.dtype)
        flat[(*layer, "bias")] = symmetric_uniform(bound)(bias_key, bias.shape, bias.dtype)
    return traverse_util.unflatten_dict(flat)


def symmetric_uniform(bound: float) -> nn.initializers.Initializer:
    """U(-bound, bound) (flax's ``uniform`` draws from [0, scale))."""

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class MLP(nn.Module):
    """ReLU MLP; optional LayerNorm after each hidden layer (ReBRAC's critics), placed and initialised as
    ``style`` says (``MLPStyle``).

    The input is an array, or a sequence of arrays read as their concatenation along the last axis, whose
    leading axes may differ and broadcast (``PartsDense``): ``mlp((obs, actions))`` with obs [B, O] and
    actions [N, B, A] gives [N, B, out] without repeating obs N times.
    """

    hidden: Sequence[int]
    out_dim: int
    layer_norm: bool = False
    final_scale: float = 1.0  # scale of the last layer's init (small for policy heads)
    style: MLPStyle = MLPStyle()

    @nn.compact
    def __call__(self, x: jax.Array | Sequence[jax.Array]) -> jax.Array:
        def dense(index: int, width: int, x, **kwargs) -> jax.Array:
            if isinstance(x, list | tuple):
                return PartsDense(width, name=f"Dense_{index}", **kwargs)(x)
            return nn.Dense(width, name=f"Dense_{index}", **kwargs)(x)

        style = self.style
        hidden_kwargs = {}  # empty in the default style: the layers are exactly flax's defaults
        if style.hidden_init == "fan_in_uniform":
            hidden_kwargs["kernel_init"] = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
        if style.hidden_bias:
            hidden_kwargs["bias_init"] = nn.initializers.constant(style.hidden_bias)
        for index, width in enumerate(self.hidden):
            x = dense(index, width, x, **hidden_kwargs)
            if self.layer_norm and not style.layer_norm_after_relu:
                x = nn.LayerNorm(name=f"LayerNorm_{index}")(x)
            x = nn.relu(x)
            if self.layer_norm and style.layer_norm_after_relu:
                x = nn.LayerNorm(name=f"LayerNorm_{index}")(x)
        if style.final_uniform is not None:
            init = symmetric_uniform(style.final_uniform)
            return dense(len(self.hidden), self.out_dim, x, kernel_init=init, bias_init=init)
        init = nn.initializers.variance_scaling(self.final_scale, "fan_avg", "uniform")
        return dense(len(self.hidden), self.out_dim, x, kernel_init=init)


class Critic(nn.Module):
    """Q(s, a) -> [B]."""

    hidden: Sequence[int]
    layer_norm: bool = False
    style: MLPStyle = MLPStyle()

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.layer_norm, style=self.style)((obs, action))[..., 0]


class CriticEnsemble(nn.Module):
    """``num_critics`` independent critics as one vmapped module: q [E, ...batch]."""

    hidden: Sequence[int]
    num_critics: int = 2
    layer_norm: bool = False
    style: MLPStyle = MLPStyle()

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden, self.layer_norm, self.style)(obs, action)


def critic_regression_loss(
    critic_params: dict, critic: CriticEnsemble, batch: Transition, target: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Regression of every critic of the ensemble on the target y [B] at the batch's (obs, action)
    (``ops.ensemble_td_loss``)."""
    return ensemble_td_loss(critic.apply(critic_params, batch.obs, batch.action), target)


def critic_step(
    critic: CriticEnsemble,
    params: dict,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    batch: Transition,
    target: jax.Array,
) -> tuple[dict, optax.OptState, dict[str, jax.Array]]:
    """One optimizer step of ``critic_regression_loss`` (``ops.gradient_step``): the critic update of BCQ,
    BEAR and BRAC once their targets are computed."""
    return gradient_step(critic_regression_loss, params, opt_state, optimizer, critic, batch, target)


class DualCritic(nn.Module):
    """The critic c(s, a) -> [B] of a dual divergence estimate."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1)((obs, action))[..., 0]


LOG_STD_TRANSFORMS = ("clip", "tanh")


class GaussianHead(nn.Module):
    """Maps obs [B, O] to the pre-tanh Gaussian (mean [B, A], log_std [B, A]).

    ``log_std_transform`` maps the network's raw output x into [log_std_min, log_std_max]: 'clip' clips it
    (zero gradient outside the range), 'tanh' maps it smoothly, ``min + (max - min) (tanh(x) + 1) / 2``,
    as the BRAC reference's ActorNetwork does (``-5 + 2.5 (tanh(x) + 1)`` for [-5, 0]).
    """

    hidden: Sequence[int]
    action_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 0.0
    log_std_transform: str = "clip"

    @nn.compact
    def __call__(self, obs: jax.Array) -> TanhGaussian:
        out = MLP(self.hidden, 2 * self.action_dim)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        if self.log_std_transform == "tanh":
            span = self.log_std_max - self.log_std_min
            return TanhGaussian(mean, self.log_std_min + 0.5 * span * (jnp.tanh(log_std) + 1.0))
        return TanhGaussian(mean, jnp.clip(log_std, self.log_std_min, self.log_std_max))


class DeterministicActor(nn.Module):
    """TD3-style actor: tanh(f(s)) in [-1, 1]^A (scaled to the bounds by the caller)."""

    hidden: Sequence[int]
    action_dim: int
    layer_norm: bool = False
    style: MLPStyle = MLPStyle()

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.action_dim, self.layer_norm, style=self.style)(obs))


@struct.dataclass
class TanhGaussian:
    """Distribution of ``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)`` on [-1, 1]^A (unit box).

    Actions in the environment's bounds are ``low + (a + 1) / 2 * (high - low)``: an affine map whose
    constant log-determinant cancels in every divergence and policy gradient, so it is left out.
    """

    mean: jax.Array
    log_std: jax.Array

    def sample_raw(self, key: jax.Array, num: int | None = None) -> jax.Array:
        """Pre-tanh samples u: [B, A], or [N, B, A] when ``num`` is given."""
        shape = self.mean.shape if num is None else (num, *self.mean.shape)
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, shape, self.mean.dtype)

    def log_prob_raw(self, raw: jax.Array) -> jax.Array:
        """log-density of ``tanh(raw)`` given the pre-tanh value ``raw`` [..., B, A] -> [..., B].

        Uses log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact and stable for large |u|.
        """
        z = (raw - self.mean) * jnp.exp(-self.log_std)
        gaussian = -0.5 * z**2 - self.log_std - 0.5 * jnp.log(2 * jnp.pi)
        log_det = 2.0 * (LOG_2 - raw - jax.nn.softplus(-2.0 * raw))
        return jnp.sum(gaussian - log_det, axis=-1)

    def log_prob(self, action: jax.Array, eps: float = 1e-3) -> jax.Array:
        """log-density of a unit-box action; clipped to within ``eps`` of the bounds first."""
        return self.log_prob_raw(jnp.arctanh(jnp.clip(action, -1.0 + eps, 1.0 - eps)))

    def sample_and_log_prob(
        self, key: jax.Array, num: int | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(actions, pre-tanh samples, log-probs): [(N,) B, A], [(N,) B, A], [(N,) B]."""
        raw = self.sample_raw(key, num)
        return jnp.tanh(raw), raw, self.log_prob_raw(raw)

    def mode(self) -> jax.Array:
        return jnp.tanh(self.mean)

    def entropy_estimate(self, key: jax.Array) -> jax.Array:
        """One-sample estimate of the entropy: [B]."""
        return -self.log_prob_raw(self.sample_raw(key))


def entropy_temperature_step(
    raw_temperature: jax.Array,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    pi: TanhGaussian,
    key: jax.Array,
    target_entropy: float | None,
) -> tuple[jax.Array, optax.OptState]:
    """One optimizer step of a tuned entropy temperature (``ops.entropy_temperature_loss``) on a fresh
    sample of ``pi`` toward ``target_entropy`` (None: -|A|); returns the new raw temperature and optimizer
    state."""
    target = -pi.mean.shape[-1] if target_entropy is None else target_entropy
    _, _, log_prob = pi.sample_and_log_prob(key)
    return multiplier_step(entropy_temperature_loss, raw_temperature, opt_state, optimizer, log_prob, target)


def scale_action(unit_action: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
    """Unit box [-1, 1] -> [low, high]."""
    return low + (unit_action + 1.0) * 0.5 * (high - low)


def unscale_action(action: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
    """[low, high] -> unit box [-1, 1]."""
    return 2.0 * (action - low) / (high - low) - 1.0


# ------------------------------------------------------------------ behavior models and perturbation (BCQ, BEAR)


class VAE(nn.Module):
    """Conditional VAE of the behavior policy (Fujimoto et al. 2019, BCQ section 4; reused by BEAR).

    Encoder (s, a) -> Gaussian over z (mean, log_std [B, L], log_std clipped to [log_std_min, log_std_max]);
    decoder (s, z) -> ``tanh`` action in the unit box [B, A]. ``latent_dim`` 0 means 2|A| (the paper's).
    Call ``apply(params, obs, action, key)`` for (reconstruction, mean, log_std); ``method=VAE.sample`` for
    draws of the behavior policy with z ~ N(0, 1) clipped to [-z_clip, z_clip] (the paper's decoding).
    """

    hidden: Sequence[int]
    action_dim: int
    latent_dim: int = 0
    log_std_min: float = -4.0
    log_std_max: float = 15.0
    z_clip: float = 0.5

    def setup(self) -> None:
        self.encoder = MLP(self.hidden, 2 * self.latent)
        self.decoder = MLP(self.hidden, self.action_dim)

    @property
    def latent(self) -> int:
        return self.latent_dim or 2 * self.action_dim

    def __call__(self, obs: jax.Array, action: jax.Array, key: jax.Array) -> tuple[jax.Array, ...]:
        """(reconstruction [B, A], z mean [B, L], z log_std [B, L]); z is reparameterised from ``key``."""
        mean, log_std = self.encode(obs, action)
        z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
        return self.decode(obs, z), mean, log_std

    def encode(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, log_std = jnp.split(self.encoder((obs, action)), 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)

    def decode_raw(self, obs: jax.Array, z: jax.Array) -> jax.Array:
        """Pre-tanh decoder output [..., B, A] (BEAR's MMD may use it); obs [B, O] with z [N, B, L] is fine."""
        return self.decoder((obs, z))

    def decode(self, obs: jax.Array, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.decode_raw(obs, z))

    def sample(self, obs: jax.Array, key: jax.Array, num: int | None = None) -> tuple[jax.Array, jax.Array]:
        """(actions, pre-tanh actions) of the behavior model at obs [B, O]: [B, A], or [N, B, A] with ``num``."""
        shape = (*obs.shape[:-1], self.latent) if num is None else (num, *obs.shape[:-1], self.latent)
        z = jnp.clip(jax.random.normal(key, shape, obs.dtype), -self.z_clip, self.z_clip)
        raw = self.decode_raw(obs, z)
        return jnp.tanh(raw), raw


def standard_normal_kl(mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_std)^2) || N(0, 1)) per element: 0.5 (mean^2 + std^2 - 1) - log_std."""
    return 0.5 * (mean**2 + jnp.exp(2.0 * log_std) - 1.0) - log_std


class Perturbation(nn.Module):
    """BCQ's perturbation actor xi(s, a) = clip(a + phi * tanh(f(s, a)), -1, 1) in the unit box.

    |xi(s, a) - a| <= phi in every coordinate (the paper's phi * max_action, with max_action 1 here).
    """

    hidden: Sequence[int]
    action_dim: int
    phi: float = 0.05

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        shift = jnp.tanh(MLP(self.hidden, self.action_dim)((obs, action)))
        return jnp.clip(action + self.phi * shift, -1.0, 1.0)


def ensemble_member(ensemble_params: dict, index: int) -> dict:
    """The parameters of critic ``index`` of a ``CriticEnsemble``, usable with ``Critic.apply``.

    Lets a loss that reads one critic (BCQ's and TD3+BC's Q1) skip the others' forward and backward passes.
    """
    return {"params": jax.tree.map(lambda x: x[index], ensemble_params["params"]["VmapCritic_0"])}


def vae_loss(
    vae_params: dict, vae: VAE, kl_weight: float, obs: jax.Array, action: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative ELBO of the dataset actions: mean squared reconstruction error + kl_weight * mean KL.

    Both terms are means over their elements (batch x action, batch x latent), as in BCQ's and BEAR's
    reference code, so ``kl_weight = 0.5`` keeps its meaning. Shared by BCQ and BEAR.
    """
    reconstruction, mean, log_std = vae.apply(vae_params, obs, action, key)
    reconstruction_loss = jnp.mean((reconstruction - action) ** 2)
    kl = jnp.mean(standard_normal_kl(mean, log_std))
    loss = reconstruction_loss + kl_weight * kl
    return loss, {"loss": loss, "reconstruction": reconstruction_loss, "kl": kl}


def sampled_max_target(
    critic: CriticEnsemble,
    target_params: dict,
    batch: Transition,
    next_actions: jax.Array,
    lam: float,
    gamma: float,
) -> jax.Array:
    """y = r + gamma discount max_n Qens'(s', a_n): [B], over candidate next actions a_n [N, B, A], with the
    target critics (``target_params``) reduced by ``lam min + (1 - lam) max`` (``ops.ensemble_reduce``).
    The critic target of BCQ (eq. 13) and BEAR."""
    next_q = critic.apply(target_params, batch.next_obs, next_actions)  # [E, N, B]
    next_value = jnp.max(ensemble_reduce(next_q, lam), axis=0)
    return bellman_target(batch.reward, batch.discount, gamma, next_value)


def vae_step(
    vae: VAE,
    params: dict,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    kl_weight: float,
    batch: Transition,
    key: jax.Array,
) -> tuple[dict, optax.OptState, dict[str, jax.Array]]:
    """One optimizer step of ``vae_loss`` on the batch's (obs, action) (``ops.gradient_step``)."""
    return gradient_step(vae_loss, params, opt_state, optimizer, vae, kl_weight, batch.obs, batch.action, key)


def best_by_q1(
    critic_hidden: Sequence[int], critic_params: dict, obs: jax.Array, candidates: jax.Array
) -> jax.Array:
    """Of the candidate actions [N, B, A] at obs [B, O], per row the one with the largest Q of the ensemble's
    first critic (not an ensemble reduction): [B, A]. The 'max_q' acting rule of BCQ, BEAR and BRAC."""
    q1 = Critic(tuple(critic_hidden)).apply(ensemble_member(critic_params, 0), obs, candidates)  # [N, B]
    best = jnp.argmax(q1, axis=0)
    return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]


TANH_GAUSSIAN_ACT_MODES = ("mode", "sample", "max_q")


def tanh_gaussian_act(
    pi: TanhGaussian,
    mode: str,
    key: jax.Array,
    obs: jax.Array,
    num_candidates: int,
    critic_hidden: Sequence[int],
    critic_params: dict,
) -> jax.Array:
    """Unit-box actions [B, A] of the policy ``pi`` at obs [B, O] by the rule ``mode``: 'mode' (tanh of the
    mean), 'sample' (one draw) or 'max_q' (of ``num_candidates`` draws, the one with the largest Q1,
    ``best_by_q1``); another rule is a ConfigError. How BEAR and BRAC act."""
    if mode == "mode":
        return pi.mode()
    if mode == "sample":
        return jnp.tanh(pi.sample_raw(key))
    if mode != "max_q":
        raise ConfigError(f"act mode must be one of {TANH_GAUSSIAN_ACT_MODES}, got {mode!r}")
    candidates = jnp.tanh(pi.sample_raw(key, num_candidates))  # [N, B, A]
    return best_by_q1(critic_hidden, critic_params, obs, candidates)
