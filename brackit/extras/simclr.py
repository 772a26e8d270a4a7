"""SimCLR and a small version of the study "When does contrastive visual representation learning work?".

* SimCLR (Chen, Kornblith, Norouzi & Hinton 2020): two augmented views of each image, an encoder ``f``, a
  projection head ``g`` and the NT-Xent loss over the ``2N`` views (Eq. 1: cosine similarity divided by a
  temperature ``tau``, softmax over the ``2N - 1`` other views, the other view of the same image positive).
  Linear evaluation: a logistic-regression probe trained on frozen encoder features ``h = f(x)``.
* Cole, Yang, Wilber, Mac Aodha & Belongie, CVPR 2022: how SimCLR depends on data quantity (unlabelled
  pretraining images and labelled images, where SimCLR's linear probe and fine-tuned SimCLR are compared
  with a supervised network trained from scratch on the labelled images: Fig. 2), data domain (in-domain
  pretraining against other domains and against larger pools of several domains: Table 2), data quality
  (salt-and-pepper noise vs downsampling, against supervised pretraining: Fig. 4) and label granularity
  (Fig. 5). Here the axes are scaled down to the 5000-image MNIST set, with scikit-learn's 8x8 digits
  (upsampled to MNIST's 28x28 frame) as the second domain.

Departures from the papers, for a 2-core CPU: a three-layer CNN instead of a ResNet-50, Adam instead of
LARS, a few thousand steps, 28x28 digits; augmentations are crops, translations, noise and
brightness/contrast (no colour, no blur) and never horizontal flips: digits are not mirror-symmetric (a
mirrored 2, 3, 4, 7 or 9 is no digit at all, and invariance to mirroring would merge shapes that the label
depends on), unlike the natural images SimCLR was designed for.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Annotated, Any, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from brackit.config_checks import Rule, choice
from brackit.errors import ConfigError
from brackit.extras.configs import CheckedConfig
from brackit.extras.data import ImageDataset
from brackit.extras.layers import conv

OBJECTIVES = ("simclr", "supervised")
CORRUPTIONS = ("clean", "salt_pepper", "downsample2", "downsample4")

# ----------------------------------------------------------------------------------------------------------
# Augmentations (JAX, one image at a time, vmapped over a batch).
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AugmentConfig(CheckedConfig):
    """SimCLR-style augmentations for grey-scale digits (no horizontal flips; see the module docstring)."""

    crop_area: Annotated[tuple[float, float], "(0, 1]"] = (0.4, 1.0)
    """Range of the crop's area as a fraction of the image (random resized crop)."""
    crop_aspect: Annotated[tuple[float, float], "> 0"] = (0.75, 4.0 / 3.0)
    """Range of the crop's aspect ratio (width / height), sampled log-uniformly."""
    max_translation: Annotated[float, ">= 0"] = 2.0
    """Largest extra shift of the resized crop, in output pixels, in each direction."""
    noise_std: Annotated[float, ">= 0"] = 0.1
    """Standard deviation of the additive Gaussian pixel noise."""
    brightness: Annotated[float, ">= 0"] = 0.2
    """Additive brightness change drawn from [-brightness, brightness]."""
    contrast: Annotated[float, "[0, 1)"] = 0.3  # a factor of 1 - contrast > 0
    """Contrast factor drawn from [1 - contrast, 1 + contrast], applied around the image mean."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(("crop_area",), lambda area: area[0] <= area[1], "need crop_area low <= high"),
        Rule(("crop_aspect",), lambda aspect: aspect[0] <= aspect[1], "need crop_aspect low <= high"),
    )


def augment(key: jax.Array, image: jax.Array, config: AugmentConfig) -> jax.Array:
    """One random view of one image: [H, W, C] in [0, 1] -> [H, W, C] in [0, 1] (float32).

    Random resized crop (``jax.image.scale_and_translate``, bilinear; area outside the image is black, the
    digits' background), a small random translation, brightness and contrast jitter, Gaussian noise, clip.
    """
    height, width = image.shape[0], image.shape[1]
    area_key, aspect_key, y_key, x_key, shift_key, bright_key, contrast_key, noise_key = jax.random.split(
        key, 8
    )
    area = jax.random.uniform(area_key, (), minval=config.crop_area[0], maxval=config.crop_area[1])
    log_aspect = jax.random.uniform(
        aspect_key, (), minval=np.log(config.crop_aspect[0]), maxval=np.log(config.crop_aspect[1])
    )
    aspect = jnp.exp(log_aspect)
    crop_height = jnp.clip(height * jnp.sqrt(area / aspect), 1.0, height)
    crop_width = jnp.clip(width * jnp.sqrt(area * aspect), 1.0, width)
    top = jax.random.uniform(y_key, ()) * (height - crop_height)
    left = jax.random.uniform(x_key, ()) * (width - crop_width)
    scale = jnp.stack([height / crop_height, width / crop_width])
    shift = jax.random.uniform(shift_key, (2,), minval=-config.max_translation, maxval=config.max_translation)
    translation = -jnp.stack([top, left]) * scale + shift
    view = jax.image.scale_and_translate(
        image.astype(jnp.float32), image.shape, (0, 1), scale, translation, method="linear", antialias=True
    )
    brightness = jax.random.uniform(bright_key, (), minval=-config.brightness, maxval=config.brightness)
    contrast = jax.random.uniform(contrast_key, (), minval=1 - config.contrast, maxval=1 + config.contrast)
    mean = view.mean()
    view = (view - mean) * contrast + mean + brightness
    view = view + config.noise_std * jax.random.normal(noise_key, view.shape)
    return jnp.clip(view, 0.0, 1.0)


def augment_batch(key: jax.Array, images: jax.Array, config: AugmentConfig) -> jax.Array:
    """Independent views of a batch: [B, H, W, C] -> [B, H, W, C]; one key per image, vmapped."""
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(augment, in_axes=(0, 0, None))(keys, images, config)


# ----------------------------------------------------------------------------------------------------------
# Corruptions of the pretraining images (Cole et al. 2022, data quality).
# ----------------------------------------------------------------------------------------------------------


def salt_and_pepper(key: jax.Array, images: jax.Array, fraction: float) -> jax.Array:
    """Set a random ``fraction`` of pixels to 0 or 1 (each with probability one half). [N, H, W, C]."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"salt-and-pepper fraction must be in [0, 1], got {fraction}")
    hit_key, value_key = jax.random.split(key)
    hit = jax.random.uniform(hit_key, images.shape) < fraction
    salt = jax.random.bernoulli(value_key, 0.5, images.shape).astype(images.dtype)
    return jnp.where(hit, salt, images)


def downsample_upsample(images: jax.Array, factor: int) -> jax.Array:
    """Downsample by ``factor`` (antialiased linear) and upsample back (bilinear): [N, H, W, C], same shape."""
    if factor < 1:
        raise ConfigError(f"downsampling factor must be >= 1, got {factor}")
    n, height, width, channels = images.shape
    small = jax.image.resize(
        images, (n, height // factor, width // factor, channels), "linear", antialias=True
    )
    return jax.image.resize(small, images.shape, "linear")


def corrupt_images(
    key: jax.Array, images: np.ndarray, corruption: str, salt_pepper_fraction: float
) -> np.ndarray:
    """``clean``, ``salt_pepper``, ``downsample2`` or ``downsample4``; [N, H, W, C] float32 in [0, 1]."""
    images = jnp.asarray(images, jnp.float32)
    if corruption == "clean":
        out = images
    elif corruption == "salt_pepper":
        out = salt_and_pepper(key, images, salt_pepper_fraction)
    elif corruption in ("downsample2", "downsample4"):
        out = downsample_upsample(images, int(corruption[-1]))
    else:
        raise ConfigError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    return np.asarray(jnp.clip(out, 0.0, 1.0))


# ----------------------------------------------------------------------------------------------------------
# Loss (SimCLR Eq. 1).
# ----------------------------------------------------------------------------------------------------------


def nt_xent_loss(
    projections_1: jax.Array, projections_2: jax.Array, temperature: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """NT-Xent over ``2N`` views: projections_1, projections_2: [N, D] (row i of both = the same image).

    ``l(i, j) = -log exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)`` with cosine
    similarity, averaged over all ``2N`` anchors (each view is the anchor once). Returns (loss, metrics);
    ``contrastive/accuracy`` is the fraction of anchors whose most similar other view is their positive.
    """
    if projections_1.ndim != 2 or projections_1.shape != projections_2.shape:
        raise ConfigError(f"expected two [N, D] arrays, got {projections_1.shape} and {projections_2.shape}")
    n = projections_1.shape[0]
    z = jnp.concatenate([projections_1, projections_2], axis=0)
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    # Full float32 precision: the 1/temperature scale (up to 20x) would magnify TF32 rounding on NVIDIA GPUs,
    # and this [2N, 2N] product is cheap next to the encoder.
    logits = jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST) / temperature
    logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)  # k != i
    positives = jnp.concatenate([jnp.arange(n) + n, jnp.arange(n)])
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(log_probs, positives[:, None], axis=-1))
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == positives)
    return loss, {"contrastive/loss": loss, "contrastive/accuracy": accuracy}


# ----------------------------------------------------------------------------------------------------------
# Networks.
# ----------------------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """Small CNN ``f``: three strided 3x3 convolutions and a dense layer; [B, H, W, C] -> h [B, features].
    ``use_slices``: convolutions as slices + matmul (``brackit.extras.layers``), else ``nn.Conv``; the same
    parameters and function either way."""

    channels: tuple[int, ...] = (16, 32, 64)
    features: int = 128
    use_slices: bool = True

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for channels in self.channels:
            x = nn.relu(conv(channels, (3, 3), (2, 2), self.use_slices)(x))
        return nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))


class Model(nn.Module):
    """Encoder plus a head: the SimCLR projection MLP ``g`` (to ``head_dim``) or a linear classifier."""

    objective: str
    head_dim: int
    channels: tuple[int, ...] = (16, 32, 64)
    features: int = 128
    use_slices: bool = True

    def setup(self) -> None:
        self.encoder = Encoder(self.channels, self.features, self.use_slices)
        if self.objective == "simclr":
            self.head = nn.Sequential([nn.Dense(self.features), nn.relu, nn.Dense(self.head_dim)])
        else:
            self.head = nn.Dense(self.head_dim)

    def __call__(self, images: jax.Array) -> jax.Array:
        """images: [B, H, W, C] -> projections (simclr) or logits (supervised) [B, head_dim]."""
        return self.head(self.encoder(images))

    def encode(self, images: jax.Array) -> jax.Array:
        """Frozen features for linear evaluation: h = f(x), [B, features]."""
        return self.encoder(images)


# ----------------------------------------------------------------------------------------------------------
# Pretraining: SimCLR or supervised, one scanned chunk per jit call, vmappable over runs.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PretrainConfig(CheckedConfig):
    """Pretraining of the encoder, contrastive (SimCLR) or supervised (the baseline of Cole et al.)."""

    objective: str = "simclr"
    """``simclr`` (NT-Xent on two views) or ``supervised`` (cross-entropy on one augmented view)."""
    temperature: Annotated[float, "> 0"] = 0.5
    """NT-Xent temperature tau (SimCLR's CIFAR-10 value)."""
    batch_size: int = 128
    """Images per step (SimCLR sees 2 x batch_size views)."""
    learning_rate: float = 1e-3
    """Adam step size (SimCLR uses LARS with large batches; Adam suits these small ones)."""
    weight_decay: Annotated[float, ">= 0"] = 1e-5
    """Decoupled weight decay (AdamW)."""
    steps: Annotated[int, ">= 1"] = 1000
    """Total pretraining steps."""
    chunk_steps: Annotated[int, ">= 1"] = 100
    """Steps per jitted ``lax.scan`` chunk."""
    projection_dim: Annotated[int, ">= 1"] = 128
    """Output size of the projection head (SimCLR: 128)."""
    num_classes: Annotated[int, ">= 2"] = 10
    """Classes of the supervised objective."""
    channels: Annotated[tuple[int, ...], ">= 1"] = (16, 32, 64)
    """Encoder convolution widths."""
    features: Annotated[int, ">= 1"] = 128
    """Encoder output size (the frozen features of linear evaluation)."""
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    """Augmentations (both objectives use them)."""
    use_slices: bool = True
    """Encoder convolutions as slices + matmul (``brackit.extras.layers``): on XLA:CPU faster per step in a
    plain ``lax.scan`` than ``nn.Conv`` unrolled, and compiled sooner
    (``benchmarks/results/experiments/simclr_conv_ab.md``). False: ``nn.Conv`` (cuDNN on GPUs); on CPU set
    ``unroll=True`` with it."""
    unroll: bool = False
    """Unroll each chunk's ``lax.scan`` (XLA on CPU ran ``nn.Conv`` gradients ~10x slower inside a loop)."""
    vmap_runs: bool = False
    """Train runs side by side with ``jax.vmap`` (for accelerators); by default one after the other with one
    compiled chunk: a step of 256 views already fills a CPU, and the sequential runs measured faster (on CPU a
    vmapped ``nn.Conv`` over per-run parameters also becomes a slow grouped convolution)."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            ("steps", "chunk_steps"),
            lambda steps, chunk_steps: steps % chunk_steps == 0,
            "need steps a multiple of chunk_steps",
        ),
        Rule(
            ("objective", "batch_size"),
            lambda objective, batch_size: objective != "simclr" or batch_size >= 2,
            "simclr needs batch_size >= 2 (the other images are the negatives)",
        ),
        choice("objective", OBJECTIVES),
    )

    def model(self) -> Model:
        head_dim = self.projection_dim if self.objective == "simclr" else self.num_classes
        return Model(self.objective, head_dim, self.channels, self.features, self.use_slices)


@flax.struct.dataclass
class PretrainState:
    """Parameters, optimizer state, step and key of one pretraining run."""

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


def make_pretrain(config: PretrainConfig, image_shape: tuple[int, ...]):
    """Return pure ``init(key, encoder=None) -> state`` and
    ``chunk(state, images, labels, num_images) -> (state, metrics)``.

    ``encoder``: parameters of a pretrained encoder ``f`` (the ``"encoder"`` subtree of another run's params,
    e.g. a SimCLR run's) that replace the new model's random ones; the head stays newly initialized. With
    ``objective="supervised"`` this is fine-tuning the whole network from the SimCLR init (Cole et al.
    2022, Fig. 2; SimCLR, Chen et al. 2020, Sec. 6). Batches are drawn on the device from the first
    ``num_images`` rows of ``images`` [N, H, W, C] (a traced scalar, so nested subsets vmap over it);
    ``labels`` [N] are used only by the supervised objective. metrics: ``pretrain/loss`` and
    ``pretrain/accuracy``, [chunk_steps].
    """
    model = config.model()
    optimizer = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    def init(key: jax.Array, encoder: Any = None) -> PretrainState:
        key, init_key = jax.random.split(key)
        params = model.init(init_key, jnp.zeros((1, *image_shape), jnp.float32))
        if encoder is not None:
            shapes = jax.tree.map(jnp.shape, encoder), jax.tree.map(jnp.shape, params["params"]["encoder"])
            if shapes[0] != shapes[1]:
                raise ConfigError("encoder: parameters of another encoder architecture (channels, features)")
            params = {**params, "params": {**params["params"], "encoder": encoder}}
        return PretrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key)

    def loss_fn(params: Any, key: jax.Array, images: jax.Array, labels: jax.Array):
        if config.objective == "simclr":
            key_1, key_2 = jax.random.split(key)
            views_1 = augment_batch(key_1, images, config.augment)
            views_2 = augment_batch(key_2, images, config.augment)
            projections = model.apply(params, jnp.concatenate([views_1, views_2]))
            loss, metrics = nt_xent_loss(
                projections[: len(images)], projections[len(images) :], config.temperature
            )
            return loss, {"pretrain/loss": loss, "pretrain/accuracy": metrics["contrastive/accuracy"]}
        logits = model.apply(params, augment_batch(key, images, config.augment))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, {"pretrain/loss": loss, "pretrain/accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}

    def update_step(state: PretrainState, images: jax.Array, labels: jax.Array, num_images: jax.Array):
        key, batch_key, augment_key = jax.random.split(state.key, 3)
        index = jax.random.randint(batch_key, (config.batch_size,), 0, num_images)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(
            state.params, augment_key, images[index], labels[index]
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return PretrainState(
            optax.apply_updates(state.params, updates), opt_state, state.step + 1, key
        ), metrics

    def chunk(state: PretrainState, images: jax.Array, labels: jax.Array, num_images: jax.Array):
        return jax.lax.scan(
            lambda s, _: update_step(s, images, labels, num_images),
            state,
            None,
            length=config.chunk_steps,
            unroll=config.unroll,
        )

    return init, chunk


def pretrain(
    config: PretrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    keys: jax.Array,
    num_images: np.ndarray | None = None,
    shared_images: bool = True,
    encoders: Any = None,
) -> tuple[PretrainState, dict[str, np.ndarray]]:
    """Pretrain ``R = len(keys)`` encoders, ``config.steps`` steps each; states stacked on a run axis.

    ``shared_images``: images [N, H, W, C] and labels [N] shared by all runs, else [R, N, ...] per run
    (e.g. one corruption per run). num_images: [R] prefix sizes (nested subsets); default all N.
    ``encoders``: pretrained encoder parameters stacked on a leading run axis [R, ...] to start from
    (fine-tuning; see ``make_pretrain``); default a random init.
    Runs are vmapped if ``config.vmap_runs``, else trained one after the other with one compiled chunk.
    Returns the stacked states and metrics ``[R, steps]``.
    """
    runs = keys.shape[0]
    n = images.shape[0] if shared_images else images.shape[1]
    num_images = np.full(runs, n) if num_images is None else np.asarray(num_images)
    if num_images.shape != (runs,) or num_images.min() < 2 or num_images.max() > n:
        raise ConfigError(f"num_images must be {runs} sizes in [2, {n}], got {num_images.tolist()}")
    if not shared_images and (images.shape[0] != runs or labels.shape[0] != runs):
        raise ConfigError(f"per-run images/labels need a leading axis of {runs} runs")
    # Neither the step count nor, for runs trained one after the other, shared_images changes the compiled
    # functions: one compilation serves them all (the cache is keyed on the config).
    compiled_as = dataclasses.replace(config, steps=config.chunk_steps)
    init, chunk = _compiled(compiled_as, tuple(images.shape[-3:]), shared_images or not config.vmap_runs)
    images, labels = jnp.asarray(images, jnp.float32), jnp.asarray(labels, jnp.int32)
    sizes = jnp.asarray(num_images, jnp.int32)
    chunks = config.steps // config.chunk_steps
    if config.vmap_runs:
        return _pretrain_chunks(init, chunk, keys, encoders, images, labels, sizes, chunks)
    states, histories = [], []
    for run in range(runs):
        run_images = images if shared_images else images[run]
        run_labels = labels if shared_images else labels[run]
        encoder = None if encoders is None else unstack(encoders, run)
        state, history = _pretrain_chunks(
            init, chunk, keys[run], encoder, run_images, run_labels, sizes[run], chunks
        )
        states.append(state)
        histories.append(history)
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states)
    return stacked, {name: np.stack([h[name] for h in histories]) for name in histories[0]}


@functools.cache
def _compiled(config: PretrainConfig, image_shape: tuple[int, ...], shared_images: bool):
    """Jitted ``init`` and ``chunk`` (vmapped when ``config.vmap_runs``), cached across calls."""
    init, chunk = make_pretrain(config, image_shape)
    if config.vmap_runs:
        data_axis = None if shared_images else 0
        init, chunk = jax.vmap(init), jax.vmap(chunk, in_axes=(0, data_axis, data_axis, 0))
    return jax.jit(init), jax.jit(chunk)


def _pretrain_chunks(init, chunk, keys, encoders, images, labels, sizes, chunks: int):
    state = init(keys, encoders)
    history: dict[str, list[np.ndarray]] = {}
    for _ in range(chunks):
        state, metrics = chunk(state, images, labels, sizes)
        for name, value in metrics.items():
            history.setdefault(name, []).append(np.asarray(value))
    return state, {name: np.concatenate(values, axis=-1) for name, values in history.items()}


def encode(config: PretrainConfig, params: Any, images: np.ndarray, block: int = 500) -> np.ndarray:
    """Frozen features of one run: images [N, H, W, C] -> [N, features], ``block`` images at a time."""
    apply = _encoder(config)
    return np.concatenate(
        [np.asarray(apply(params, jnp.asarray(images[i : i + block]))) for i in range(0, len(images), block)]
    )


@functools.cache
def _encoder(config: PretrainConfig):
    model = config.model()
    return jax.jit(lambda params, images: model.apply(params, images, method=Model.encode))


def classifier_accuracy(
    config: PretrainConfig, params: Any, images: np.ndarray, labels: np.ndarray, block: int = 500
) -> float:
    """Accuracy of one supervised run (encoder + linear head, ``objective="supervised"``) on images
    [N, H, W, C] with labels [N]: the evaluation of fine-tuned and from-scratch networks (Cole et al. Fig. 2)."""
    if config.objective != "supervised":
        raise ConfigError("classifier_accuracy needs a supervised run (objective='supervised')")
    apply = _classifier(config)
    predictions = np.concatenate(
        [np.asarray(apply(params, jnp.asarray(images[i : i + block]))) for i in range(0, len(images), block)]
    )
    return float(np.mean(predictions == np.asarray(labels)))


@functools.cache
def _classifier(config: PretrainConfig):
    model = config.model()
    return jax.jit(lambda params, images: jnp.argmax(model.apply(params, images), axis=-1))


def unstack(tree: Any, index: int) -> Any:
    """Run ``index`` of a pytree with a leading run axis."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


# ----------------------------------------------------------------------------------------------------------
# Linear evaluation: multinomial logistic regression on frozen features.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProbeConfig(CheckedConfig):
    """Full-batch L2-regularized logistic regression, trained with Adam in one ``lax.scan``."""

    steps: Annotated[int, ">= 1"] = 500
    learning_rate: float = 0.05
    l2: Annotated[float, ">= 0"] = 1e-4
    num_classes: Annotated[int, ">= 2"] = 10
    """Width of the probe's output; coarser label sets use the first few classes."""


def linear_probe_accuracy(
    config: ProbeConfig,
    train_features: jax.Array,
    train_labels: jax.Array,
    train_mask: jax.Array,
    test_features: jax.Array,
    test_labels: jax.Array,
) -> jax.Array:
    """Test accuracy of a logistic-regression probe fitted on the rows where ``train_mask`` is 1.

    train_features: [N, F], train_labels: [N], train_mask: [N] (the labelled subset), test_*: [M, F], [M].
    Features are standardized with the labelled rows' statistics. Pure and jittable; vmap over masks or
    label sets to evaluate several labelled-set sizes or label granularities at once.
    """
    mask = train_mask.astype(jnp.float32)
    count = jnp.maximum(mask.sum(), 1.0)
    mean = (train_features * mask[:, None]).sum(0) / count
    std = jnp.sqrt((((train_features - mean) ** 2) * mask[:, None]).sum(0) / count) + 1e-6
    x_train, x_test = (train_features - mean) / std, (test_features - mean) / std
    params = {"w": jnp.zeros((x_train.shape[1], config.num_classes)), "b": jnp.zeros(config.num_classes)}
    optimizer = optax.adam(config.learning_rate)

    def loss_fn(params: dict[str, jax.Array]) -> jax.Array:
        logits = x_train @ params["w"] + params["b"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, train_labels)
        return (losses * mask).sum() / count + config.l2 * jnp.sum(params["w"] ** 2)

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=config.steps)
    predictions = jnp.argmax(x_test @ params["w"] + params["b"], -1)
    return jnp.mean(predictions == test_labels)


def labelled_masks(labels: np.ndarray, sizes: tuple[int, ...], seed: int) -> np.ndarray:
    """Nested, class-balanced labelled subsets: [len(sizes), N] float32 masks.

    Size n takes n // K images of each class (all of a class that has fewer), so a mask may hold slightly
    fewer than n rows; ``run_study`` reports the actual counts.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    orders = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    masks = np.zeros((len(sizes), len(labels)), np.float32)
    for row, size in enumerate(sizes):
        per_class = size // len(classes)
        if per_class < 1 or size > len(labels):
            raise ConfigError(f"labelled-set size {size} is not between {len(classes)} and {len(labels)}")
        for order in orders.values():
            masks[row, order[:per_class]] = 1.0  # a class with fewer images contributes all of them
    return masks


def nested_order(masks: np.ndarray) -> np.ndarray:
    """An order of the rows [N] in which each of the nested masks [S, N] (smallest first, as
    ``labelled_masks`` makes them) is a prefix: ``order[: masks[i].sum()]`` are the rows of mask ``i``, so
    runs on nested subsets share one image array and differ only in ``num_images`` (see ``pretrain``)."""
    masks = np.asarray(masks) > 0
    if np.any(masks[:-1] & ~masks[1:]):
        raise ConfigError("masks must be nested, each inside the next")
    return np.argsort(-masks.sum(0), kind="stable")


GRANULARITIES: dict[int, tuple[int, ...]] = {
    # digit -> group. 2 groups: digits 0-4 vs 5-9; 5 groups: consecutive pairs. Arbitrary but fixed
    # groupings, so a coarse task is a union of fine classes, as in a label hierarchy (iNat21 in Cole et al.).
    2: (0, 0, 0, 0, 0, 1, 1, 1, 1, 1),
    5: (0, 0, 1, 1, 2, 2, 3, 3, 4, 4),
    10: tuple(range(10)),
}


def coarse_labels(labels: np.ndarray, num_groups: int) -> np.ndarray:
    """Map digit labels to ``num_groups`` in {2, 5, 10} coarse classes (see ``GRANULARITIES``)."""
    if num_groups not in GRANULARITIES:
        raise ConfigError(f"label granularity {num_groups} not in {sorted(GRANULARITIES)}")
    return np.asarray(GRANULARITIES[num_groups], np.int32)[np.asarray(labels)]


# ----------------------------------------------------------------------------------------------------------
# The study (Cole et al. 2022, scaled to MNIST 5k and a second digit domain).
# ----------------------------------------------------------------------------------------------------------

LABEL_METHODS = ("simclr_probe", "simclr_finetune", "supervised_scratch", "random_init_probe", "pixels_probe")
"""The labelled-set axis (Cole et al. Fig. 2): a linear probe on frozen SimCLR features; SimCLR fine-tuned
(its encoder and a new linear head trained on the labelled images); the same network trained from scratch
on the labelled images only; linear probes on a random-init encoder's features and on raw pixels."""

DOMAIN_POOLS = ("in_domain", "cross_domain", "pooled")
"""The pretraining pools of the domain axis as seen from one evaluation domain (Cole et al. Table 2): its
own training images, the other domain's, and both together (a larger, mixed-domain pool)."""


@dataclasses.dataclass(frozen=True)
class StudyConfig(CheckedConfig):
    """The axes of Cole et al. on one small dataset (plus a second domain for the domain axis)."""

    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    """SimCLR settings; the supervised runs use the same encoder, optimizer, batch and augmentations."""
    pretrain_sizes: Annotated[tuple[int, ...], ">= 1"] = (500, 1000, 2000, 4000)
    """Nested unlabelled pretraining subsets (prefixes of one random order); the largest must be all
    training images, and that run is also the clean SimCLR run of the other axes."""
    label_sizes: Annotated[tuple[int, ...], ">= 1"] = (50, 100, 500, 1000, 4000)
    """Nested, class-balanced labelled subsets, increasing (see ``labelled_masks``)."""
    finetune_steps: Annotated[int, ">= 1"] = 300
    """Steps of the supervised runs on each labelled subset: SimCLR fine-tuned and the network trained from
    scratch, which also share their batches and augmentations (one key per subset): only the encoder's
    init differs."""
    corruptions: tuple[str, ...] = CORRUPTIONS
    """Corruptions of the pretraining images (the probe always sees clean images)."""
    salt_pepper_fraction: Annotated[float, "[0, 1]"] = 0.1
    """Fraction of pixels hit by salt-and-pepper noise."""
    granularities: Annotated[tuple[int, ...], ">= 1"] = (2, 5, 10)
    """Numbers of label groups for the granularity axis (see ``GRANULARITIES``)."""
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    seed: int = 0

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            ("pretrain_sizes",),
            lambda sizes: bool(sizes) and list(sizes) == sorted(set(sizes)),
            "need pretrain_sizes non-empty and strictly increasing",
        ),
        Rule(
            ("label_sizes",),
            lambda sizes: bool(sizes) and list(sizes) == sorted(set(sizes)),
            "need label_sizes non-empty and strictly increasing",
        ),
        Rule(
            ("finetune_steps", "pretrain"),
            lambda steps, pretrain: steps % pretrain.chunk_steps == 0,
            "need finetune_steps a multiple of pretrain.chunk_steps",
        ),
        Rule(
            ("pretrain",), lambda pretrain: pretrain.objective == "simclr", "need pretrain.objective 'simclr'"
        ),
        Rule(
            ("corruptions",),
            lambda corruptions: "clean" in corruptions and set(corruptions) <= set(CORRUPTIONS),
            f"corruptions must include 'clean' (the reference of the other axes) and be from"
            f" {', '.join(CORRUPTIONS)}",
        ),
        Rule(
            ("granularities",),
            lambda granularities: set(granularities) <= set(GRANULARITIES),
            f"granularities must be from {sorted(GRANULARITIES)}",
        ),
    )

    def supervised(self, steps: int | None = None) -> PretrainConfig:
        """The supervised runs' settings: ``pretrain`` with the cross-entropy objective (and ``steps``)."""
        return dataclasses.replace(self.pretrain, objective="supervised", steps=steps or self.pretrain.steps)


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """One seed's test accuracies (fractions in [0, 1]) along each axis, plus pretraining losses and times."""

    pretrain_size: dict[int, float]
    """Pretraining images -> SimCLR linear-probe accuracy (probe on all labels)."""
    label_size: dict[int, dict[str, float]]
    """Nominal labelled-set size -> {method of ``LABEL_METHODS`` -> accuracy}."""
    label_count: dict[int, int]
    """Nominal labelled-set size -> labelled images used (class-balanced; see ``labelled_masks``)."""
    corruption: dict[str, dict[str, float]]
    """Corruption -> {simclr, supervised}: linear probes on clean images over the corrupted runs' encoders."""
    granularity: dict[int, dict[str, float]]
    """Label groups -> {simclr, supervised, random_init} linear-probe accuracy."""
    domain: dict[str, dict[str, float]]
    """Evaluation domain -> {pool of ``DOMAIN_POOLS`` -> SimCLR linear-probe accuracy}; empty without a
    second domain."""
    final_loss: dict[str, float]
    """Run -> mean training loss over its last chunk."""
    seconds: dict[str, float]
    """Wall time of each group of runs (not deterministic; left out of ``metrics``)."""

    def metrics(self) -> dict[str, float]:
        """Every deterministic number as a flat ``name -> float`` (the results sidecar's per-seed entry)."""
        out: dict[str, float] = {}
        for size, accuracy in self.pretrain_size.items():
            out[f"pretrain_size/{size}/simclr_probe"] = accuracy
        for size, accuracies in self.label_size.items():
            out[f"label_size/{size}/count"] = float(self.label_count[size])
            out.update({f"label_size/{size}/{name}": value for name, value in accuracies.items()})
        for table, prefix in ((self.corruption, "corruption"), (self.granularity, "granularity")):
            for row, accuracies in table.items():
                out.update({f"{prefix}/{row}/{name}": value for name, value in accuracies.items()})
        for evaluated, accuracies in self.domain.items():
            out.update({f"domain/{evaluated}/{pool}": value for pool, value in accuracies.items()})
        out.update({f"loss/{run}": value for run, value in self.final_loss.items()})
        return {name: float(value) for name, value in out.items()}


def run_study(config: StudyConfig, data: ImageDataset, other: ImageDataset | None = None) -> StudyResult:
    """Pretrain and train every run of every axis for ``config.seed`` and evaluate it on test images.

    data: the main domain; ``data.x_train`` [N, H, W, C] must hold N = max(pretrain_sizes) images, shuffled
    once with ``seed`` so that every prefix is a random subset. other: a second domain of the same image
    shape for the domain axis (Cole et al. Table 2), or None to skip that axis.
    """
    import time

    x_train, y_train = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int32)
    x_test, y_test = np.asarray(data.x_test, np.float32), np.asarray(data.y_test, np.int32)
    if len(x_train) != config.pretrain_sizes[-1]:
        raise ConfigError(f"the largest pretraining size must be all {len(x_train)} train images")
    if other is not None and other.x_train.shape[1:] != x_train.shape[1:]:
        raise ConfigError(
            f"the second domain's images {other.x_train.shape[1:]} differ from {x_train.shape[1:]}"
        )
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(x_train))
    x_train, y_train = x_train[order], y_train[order]
    keys = dict(
        zip(
            ("corrupt", "simclr", "supervised", "random", "labels", "domain"),
            jax.random.split(jax.random.key(config.seed), 6),
            strict=True,
        )
    )
    seconds: dict[str, float] = {}
    final_loss: dict[str, float] = {}
    probe = _probe(config.probe)

    def last_chunk(history: dict[str, np.ndarray], run: int, steps_per_chunk: int) -> float:
        return float(history["pretrain/loss"][run, -steps_per_chunk:].mean())

    def probe_one(encoder: tuple[PretrainConfig, Any], x_fit, y_fit, x_eval, y_eval) -> float:
        pretrain_config, params = encoder
        features = encode(pretrain_config, params, x_fit), encode(pretrain_config, params, x_eval)
        return float(
            probe(features[0], y_fit[None], np.ones((1, len(y_fit)), np.float32), features[1], y_eval[None])[
                0
            ]
        )

    # Corruption axis (includes the clean runs): SimCLR and supervised pretraining on corrupted images.
    corrupted = np.stack(
        [
            corrupt_images(keys["corrupt"], x_train, name, config.salt_pepper_fraction)
            for name in config.corruptions
        ]
    )
    labels_stack = np.broadcast_to(y_train, (len(config.corruptions), len(y_train)))
    encoders: dict[tuple[str, str], tuple[PretrainConfig, Any]] = {}
    for objective in OBJECTIVES:
        pretrain_config = dataclasses.replace(config.pretrain, objective=objective)
        start = time.perf_counter()
        run_keys = jax.random.split(keys[objective], len(config.corruptions))
        states, history = pretrain(pretrain_config, corrupted, labels_stack, run_keys, shared_images=False)
        seconds[f"{objective} x {len(config.corruptions)} corruptions"] = time.perf_counter() - start
        for i, name in enumerate(config.corruptions):
            encoders[objective, name] = (pretrain_config, unstack(states.params, i))
            final_loss[f"{objective}/{name}"] = last_chunk(history, i, config.pretrain.chunk_steps)
    corruption = {
        name: {
            objective: probe_one(encoders[objective, name], x_train, y_train, x_test, y_test)
            for objective in OBJECTIVES
        }
        for name in config.corruptions
    }

    # Pretraining-set size: nested prefixes; the largest is the clean SimCLR run above.
    start = time.perf_counter()
    smaller = np.asarray(config.pretrain_sizes[:-1])
    pretrain_size = {}
    if len(smaller):
        run_keys = jax.random.split(jax.random.fold_in(keys["simclr"], 1), len(smaller))
        states, history = pretrain(config.pretrain, x_train, y_train, run_keys, num_images=smaller)
        for i, size in enumerate(smaller):
            encoder = (config.pretrain, unstack(states.params, i))
            pretrain_size[int(size)] = probe_one(encoder, x_train, y_train, x_test, y_test)
            final_loss[f"simclr/pretrain_size={size}"] = last_chunk(history, i, config.pretrain.chunk_steps)
    pretrain_size[config.pretrain_sizes[-1]] = corruption["clean"]["simclr"]
    seconds["simclr pretraining-size runs"] = time.perf_counter() - start

    # Labelled-set size (Fig. 2): probes on SimCLR / random-init / pixel features, and supervised networks
    # trained on each labelled subset from the SimCLR encoder (fine-tuned) and from scratch.
    simclr_features = tuple(encode(*encoders["simclr", "clean"], x) for x in (x_train, x_test))
    random_params = config.pretrain.model().init(keys["random"], jnp.zeros((1, *x_train.shape[1:])))
    random_features = tuple(encode(config.pretrain, random_params, x) for x in (x_train, x_test))
    pixel_features = (x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1))
    masks = labelled_masks(y_train, config.label_sizes, config.seed)
    repeat = lambda labels: np.broadcast_to(labels, (len(masks), len(labels)))  # noqa: E731
    accuracy = {
        f"{name}_probe": np.asarray(probe(features[0], repeat(y_train), masks, features[1], repeat(y_test)))
        for name, features in (
            ("simclr", simclr_features),
            ("random_init", random_features),
            ("pixels", pixel_features),
        )
    }
    start = time.perf_counter()
    counts = masks.sum(1).astype(np.int64)
    labelled = nested_order(masks)
    supervised_config = config.supervised(config.finetune_steps)
    run_keys = jax.random.split(keys["labels"], len(counts))
    simclr_encoder = encoders["simclr", "clean"][1]["params"]["encoder"]
    stacked = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (len(counts), *leaf.shape)), simclr_encoder)
    for name, initial in (("simclr_finetune", stacked), ("supervised_scratch", None)):
        states, history = pretrain(
            supervised_config,
            x_train[labelled],
            y_train[labelled],
            run_keys,
            num_images=counts,
            encoders=initial,
        )
        accuracy[name] = np.asarray(
            [
                classifier_accuracy(supervised_config, unstack(states.params, i), x_test, y_test)
                for i in range(len(counts))
            ]
        )
        for i, size in enumerate(config.label_sizes):
            final_loss[f"{name}/labels={size}"] = last_chunk(history, i, config.pretrain.chunk_steps)
    seconds["fine-tuned and from-scratch runs"] = time.perf_counter() - start
    label_size = {
        size: {name: float(accuracy[name][i]) for name in LABEL_METHODS}
        for i, size in enumerate(config.label_sizes)
    }
    label_count = {size: int(counts[i]) for i, size in enumerate(config.label_sizes)}

    # Label granularity (Fig. 5): probes on coarse groupings of the digits, clean encoders.
    coarse_train = np.stack([coarse_labels(y_train, g) for g in config.granularities])
    coarse_test = np.stack([coarse_labels(y_test, g) for g in config.granularities])
    all_masks = np.ones((len(config.granularities), len(y_train)), np.float32)
    supervised_features = tuple(encode(*encoders["supervised", "clean"], x) for x in (x_train, x_test))
    granularity_accuracy = {
        name: np.asarray(probe(features[0], coarse_train, all_masks, features[1], coarse_test))
        for name, features in (
            ("simclr", simclr_features),
            ("supervised", supervised_features),
            ("random_init", random_features),
        )
    }
    granularity = {
        g: {name: float(acc[i]) for name, acc in granularity_accuracy.items()}
        for i, g in enumerate(config.granularities)
    }

    # Data domain (Table 2): SimCLR on the second domain alone and on both domains pooled, each probed on
    # both domains; the main domain's in-domain run is the clean SimCLR run above.
    domain: dict[str, dict[str, float]] = {}
    if other is not None:
        start = time.perf_counter()
        other_order = rng.permutation(len(other.x_train))
        x_other = np.asarray(other.x_train, np.float32)[other_order]
        y_other = np.asarray(other.y_train, np.int32)[other_order]
        x_other_test, y_other_test = np.asarray(other.x_test, np.float32), np.asarray(other.y_test, np.int32)
        pool_order = rng.permutation(len(x_train) + len(x_other))
        # One array per run, both the pool's size (the second domain's run samples only its first rows), so
        # that both runs share one compiled chunk.
        pool_size = len(pool_order)
        images = np.zeros((2, pool_size, *x_train.shape[1:]), np.float32)
        labels = np.zeros((2, pool_size), np.int32)
        images[0, : len(x_other)], labels[0, : len(x_other)] = x_other, y_other
        images[1] = np.concatenate([x_train, x_other])[pool_order]
        labels[1] = np.concatenate([y_train, y_other])[pool_order]
        states, history = pretrain(
            config.pretrain,
            images,
            labels,
            jax.random.split(keys["domain"]),
            num_images=np.array([len(x_other), pool_size]),
            shared_images=False,
        )
        runs = {"main": encoders["simclr", "clean"]}
        for i, run in enumerate(("other", "pooled")):
            runs[run] = (config.pretrain, unstack(states.params, i))
            final_loss[f"simclr/domain={run}"] = last_chunk(history, i, config.pretrain.chunk_steps)
        seconds["second-domain and pooled runs"] = time.perf_counter() - start
        for evaluated, own, cross, (x_fit, y_fit, x_eval, y_eval) in (
            (data.name, "main", "other", (x_train, y_train, x_test, y_test)),
            (other.name, "other", "main", (x_other, y_other, x_other_test, y_other_test)),
        ):
            domain[evaluated] = {
                pool: probe_one(runs[run], x_fit, y_fit, x_eval, y_eval)
                for pool, run in zip(DOMAIN_POOLS, (own, cross, "pooled"), strict=True)
            }
    return StudyResult(
        pretrain_size, label_size, label_count, corruption, granularity, domain, final_loss, seconds
    )


@functools.cache
def _probe(config: ProbeConfig):
    """``linear_probe_accuracy`` jitted and vmapped over masks and label sets (features shared)."""
    return jax.jit(jax.vmap(functools.partial(linear_probe_accuracy, config), in_axes=(None, 0, 0, None, 0)))


# ----------------------------------------------------------------------------------------------------------
# The paper's findings as tests of one seed's result.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Claim:
    """One finding of Cole et al. (2022) and its test on one seed's ``StudyResult``."""

    finding: str
    """The paper's finding, with the figure or table that shows it."""
    test: str
    """What is checked here."""
    holds: bool


def check_claims(result: StudyResult, margin: float = 0.01) -> dict[str, Claim]:
    """The paper's findings tested on one seed's result; ``margin`` (accuracy, 0.01 = one point) is what
    counts as "little" for the saturation and pooling findings. Axes with too few points (one pretraining
    size, one labelled-set size, no second domain) give no claim."""
    claims: dict[str, Claim] = {}
    points = f"{100 * margin:g} point{'s' if margin != 0.01 else ''}"
    sizes = sorted(result.pretrain_size)
    if len(sizes) >= 2:
        gain = result.pretrain_size[sizes[-1]] - result.pretrain_size[sizes[-2]]
        claims["pretrain_size/saturates"] = Claim(
            "Data quantity (Fig. 2): beyond about 500k unlabelled images, more pretraining images add little.",
            f"{sizes[-1]} pretraining images beat {sizes[-2]} by less than {points} (linear probe)",
            gain < margin,
        )
    labels = sorted(result.label_size)
    if labels:
        few, most = result.label_size[labels[0]], result.label_size[labels[-1]]
        finding = "Data quantity (Fig. 2): SimCLR pretraining helps most when labelled images are few."
        claims["label_size/few_labels_finetune"] = Claim(
            finding,
            f"with {labels[0]} labels, fine-tuned SimCLR beats the same network trained from scratch",
            few["simclr_finetune"] > few["supervised_scratch"],
        )
        claims["label_size/few_labels_probe"] = Claim(
            finding,
            f"with {labels[0]} labels, the SimCLR linear probe beats the network trained from scratch",
            few["simclr_probe"] > few["supervised_scratch"],
        )
        if len(labels) >= 2:
            claims["label_size/advantage_shrinks"] = Claim(
                finding,
                f"fine-tuned SimCLR's lead over training from scratch is larger with {labels[0]} labels than "
                f"with {labels[-1]}",
                few["simclr_finetune"] - few["supervised_scratch"]
                > most["simclr_finetune"] - most["supervised_scratch"],
            )
    if "clean" in result.corruption:
        clean = result.corruption["clean"]
        drop = {
            name: {objective: clean[objective] - accuracy[objective] for objective in OBJECTIVES}
            for name, accuracy in result.corruption.items()
            if name != "clean"
        }
        for name, loss in drop.items():
            claims[f"corruption/disparate_impact/{name}"] = Claim(
                "Data quality (Fig. 4): corrupted pretraining images hurt SimCLR more than supervised "
                "pretraining (a disparate impact).",
                f"{name} costs the SimCLR probe more accuracy than the supervised one",
                loss["simclr"] > loss["supervised"],
            )
        if "downsample4" in drop and len(drop) >= 2:
            claims["corruption/resolution_worst"] = Claim(
                "Data quality (Fig. 4): lower resolution is the most harmful corruption for SimCLR.",
                "4x downsampling costs SimCLR more than any other corruption tested",
                all(
                    drop["downsample4"]["simclr"] > loss["simclr"]
                    for n, loss in drop.items()
                    if n != "downsample4"
                ),
            )
    groups = sorted(result.granularity)
    if len(groups) >= 2:
        gap = {g: result.granularity[g]["supervised"] - result.granularity[g]["simclr"] for g in groups}
        claims["granularity/gap_grows"] = Claim(
            "Task granularity (Fig. 5): the gap between supervised and SimCLR pretraining grows as labels "
            "get finer.",
            f"the supervised - SimCLR gap is larger with {groups[-1]} label groups than with {groups[0]}",
            gap[groups[-1]] > gap[groups[0]],
        )
    for evaluated, accuracy in result.domain.items():
        claims[f"domain/in_domain_beats_cross/{evaluated}"] = Claim(
            "Data domain (Table 2): pretraining in-domain beats pretraining on another domain.",
            f"on {evaluated}, SimCLR pretrained on {evaluated} beats SimCLR pretrained on the other domain",
            accuracy["in_domain"] > accuracy["cross_domain"],
        )
        claims[f"domain/pool_adds_little/{evaluated}"] = Claim(
            "Data domain (Table 2): adding another domain's images to the pretraining pool does not give "
            "better representations.",
            f"on {evaluated}, pretraining on both domains beats in-domain pretraining by less than {points}",
            accuracy["pooled"] - accuracy["in_domain"] < margin,
        )
    return claims
