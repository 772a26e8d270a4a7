"""FederatedAveraging and FederatedSGD (McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017), Algorithm 1.

Each round the server samples ``m = max(C K, 1)`` of the ``K`` clients; each selected client runs ``E`` epochs
of minibatch SGD (batch ``B``, learning rate ``eta``) from the server weights on its own ``n_k`` examples, and
the server replaces its weights by the ``n_k``-weighted mean of the returned weights. FedSGD is the special
case ``E = 1, B = inf`` (one full-batch gradient step per client), which makes a round one large-batch
gradient step on the union of the selected clients' data.

Implementation: the clients' data live on the device as one padded array ``[K, n_max, ...]`` with a count per
client; one round (selection, every selected client's local training, averaging) is ONE jitted program, the
local training being ``vmap`` over clients of a ``lax.scan`` over minibatch steps. Clients with fewer than
``n_max`` examples see masked rows (zero weight) and masked steps (zero gradient, so plain SGD leaves the
weights unchanged). A whole run of rounds is a ``lax.scan`` evaluated on the test set after every round, and
is ``vmap``-ed over a grid of learning rates.

Departures from the paper: 5000 MNIST images (4000 train / 1000 test) instead of 60000/10000, hence 40 examples
per client (shards of 20) with K = 100; the CNN is narrower on CPU (``FedConfig.cnn_widths``); the target
accuracies are lower (see the CLI).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from brackit.config_checks import check_ranges
from brackit.errors import ConfigError
from brackit.extras import layers

MODELS = ("2nn", "cnn")


@dataclasses.dataclass(frozen=True)
class FedConfig:
    """One FedAvg / FedSGD configuration (the paper's notation in brackets)."""

    model: str = "2nn"
    """``"2nn"`` (MLP 784-200-200-10, 199,210 parameters) or ``"cnn"`` (two 5x5 convolutions, see widths)."""
    num_clients: int = 100
    """Clients [K]."""
    client_fraction: float = 0.1
    """Fraction of clients selected per round [C]; ``m = max(round(C K), 1)``."""
    local_epochs: int = 1
    """Local epochs [E]."""
    batch_size: int | None = 10
    """Local minibatch size [B]; ``None`` means B = infinity (the client's whole data as one batch)."""
    iid: bool = True
    """IID partition, or the pathological non-IID one (sorted by label, 2 K shards, 2 per client)."""
    num_rounds: int = 100
    """Communication rounds run."""
    cnn_widths: tuple[int, int, int] = (16, 32, 128)
    """CNN channels of conv1, conv2 and width of the dense layer (the paper: 32, 64, 512)."""
    seed: int = 0

    RANGES: ClassVar[dict[str, str]] = {  # checked by brackit.config_checks.check_ranges
        "num_clients": ">= 1",
        "client_fraction": "[0, 1]",
        "local_epochs": ">= 1",
        "num_rounds": ">= 1",
        "cnn_widths": ">= 1",
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.model not in MODELS:
            raise ConfigError(f"FedConfig.model: expected one of {MODELS}, got {self.model!r}")

    @property
    def clients_per_round(self) -> int:
        """``m = max(C K, 1)`` (C K rounded to the nearest integer)."""
        return max(round(self.client_fraction * self.num_clients), 1)

    @property
    def name(self) -> str:
        """``FedSGD`` or ``FedAvg E=.. B=..`` (B=inf for a full local batch)."""
        batch = "inf" if self.batch_size is None else str(self.batch_size)
        if self.local_epochs == 1 and self.batch_size is None:
            return "FedSGD"
        return f"FedAvg E={self.local_epochs} B={batch}"


# ----------------------------------------------------------------------------- partitions and client data


def partition_iid(num_examples: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """Shuffle the examples and deal them into ``num_clients`` near-equal parts (index arrays)."""
    permutation = np.random.default_rng(seed).permutation(num_examples)
    return [np.sort(part) for part in np.array_split(permutation, num_clients)]


def partition_pathological(
    labels: np.ndarray, num_clients: int, seed: int, shards_per_client: int = 2
) -> list[np.ndarray]:
    """The paper's non-IID split: sort by label, cut ``shards_per_client * num_clients`` equal shards, give
    each client ``shards_per_client`` random shards (so most clients see only two digits)."""
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, shards_per_client * num_clients)
    assignment = np.random.default_rng(seed).permutation(len(shards)).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in assignment]


@flax.struct.dataclass
class ClientData:
    """All clients' training data, padded: ``images [K, n_max, H, W, 1]``, ``labels [K, n_max]``,
    ``counts [K]`` (rows ``>= counts[k]`` of client ``k`` are padding)."""

    images: jax.Array
    labels: jax.Array
    counts: jax.Array


def stack_clients(images: np.ndarray, labels: np.ndarray, partition: Sequence[np.ndarray]) -> ClientData:
    """Pad every client's examples to the largest client with zero rows and stack them."""
    size = max(len(part) for part in partition)
    padded_images = np.zeros((len(partition), size, *images.shape[1:]), np.float32)
    padded_labels = np.zeros((len(partition), size), np.int32)
    for client, part in enumerate(partition):
        padded_images[client, : len(part)] = images[part]
        padded_labels[client, : len(part)] = labels[part]
    counts = np.array([len(part) for part in partition], np.int32)
    return ClientData(jnp.asarray(padded_images), jnp.asarray(padded_labels), jnp.asarray(counts))


# ----------------------------------------------------------------------------- models


class TwoNN(nn.Module):
    """The paper's MNIST 2NN: two hidden layers of 200 ReLU units."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        features = images.reshape(images.shape[0], -1)
        features = nn.relu(nn.Dense(200)(features))
        features = nn.relu(nn.Dense(200)(features))
        return nn.Dense(self.num_classes)(features)


class CNN(nn.Module):
    """The paper's MNIST CNN shape: 5x5 conv -> 2x2 max pool -> 5x5 conv -> 2x2 max pool -> dense -> softmax."""

    widths: tuple[int, int, int] = (32, 64, 512)
    num_classes: int = 10
    use_slices: bool = True  # convolutions as slices + matmul (brackit.extras.layers); False: nn.Conv

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        features = images
        for channels in self.widths[:2]:
            features = nn.relu(layers.conv(channels, (5, 5), (1, 1), self.use_slices)(features))
            features = nn.max_pool(features, (2, 2), strides=(2, 2))
        features = features.reshape(features.shape[0], -1)
        features = nn.relu(nn.Dense(self.widths[2])(features))
        return nn.Dense(self.num_classes)(features)


def make_model(config: FedConfig, num_classes: int = 10) -> nn.Module:
    """The network named by ``config.model``."""
    if config.model == "2nn":
        return TwoNN(num_classes)
    return CNN(config.cnn_widths, num_classes)


ApplyFn = Callable[[object, jax.Array], jax.Array]


# ----------------------------------------------------------------------------- Algorithm 1


def masked_loss(
    apply_fn: ApplyFn, params, images: jax.Array, labels: jax.Array, mask: jax.Array
) -> jax.Array:
    """Mean softmax cross-entropy over the rows where ``mask`` (``[B]`` bool) is set; 0 when none is."""
    losses = optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, images), labels)
    return jnp.sum(jnp.where(mask, losses, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def local_update(
    apply_fn: ApplyFn,
    params,
    images: jax.Array,
    labels: jax.Array,
    count: jax.Array,
    key: jax.Array,
    learning_rate: jax.Array,
    local_epochs: int,
    batch_size: int | None,
):
    """ClientUpdate: ``local_epochs`` epochs of minibatch SGD on one client's first ``count`` rows.

    ``images [n_max, ...]``, ``labels [n_max]``. Every epoch visits the valid rows in a fresh random order
    in ``ceil(n_max / B)`` steps of ``B`` positions; rows past ``count`` are masked, so a step with no valid
    row leaves the weights unchanged and the last valid batch may be short, as in the paper. The order of the
    valid rows depends only on ``key`` and the row indices (one ``fold_in`` per row), never on ``n_max``:
    padding a client does not change its update.
    """
    n_max = labels.shape[0]
    batch = n_max if batch_size is None else min(batch_size, n_max)
    num_steps = -(-n_max // batch)
    rows = jnp.arange(n_max)
    positions = jnp.arange(num_steps * batch).reshape(num_steps, batch)

    def epoch(params, epoch_key):
        priority = jax.vmap(lambda row: jax.random.uniform(jax.random.fold_in(epoch_key, row)))(rows)
        order = jnp.argsort(jnp.where(rows < count, priority, 2.0 + rows))

        def step(params, step_positions):
            valid = step_positions < count
            index = order[jnp.minimum(step_positions, n_max - 1)]
            grads = jax.grad(masked_loss, argnums=1)(apply_fn, params, images[index], labels[index], valid)
            return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), None

        return jax.lax.scan(step, params, positions)[0], None

    return jax.lax.scan(epoch, params, jax.random.split(key, local_epochs))[0]


def weighted_average(client_params, weights: jax.Array):
    """Server update: ``sum_k w_k params_k / sum_k w_k`` over the leading client axis of every leaf."""
    weights = weights / jnp.sum(weights)
    return jax.tree.map(lambda leaf: jnp.tensordot(weights, leaf, axes=1), client_params)


def server_round(
    apply_fn: ApplyFn,
    config: FedConfig,
    params,
    clients: ClientData,
    key: jax.Array,
    learning_rate: jax.Array,
):
    """One round of Algorithm 1: sample ``m`` clients without replacement, train them (vmapped), average."""
    select_key, train_key = jax.random.split(key)
    selected = jax.random.choice(
        select_key, clients.counts.shape[0], (config.clients_per_round,), replace=False
    )
    client_keys = jax.random.split(train_key, config.clients_per_round)
    train = functools.partial(
        local_update, apply_fn, local_epochs=config.local_epochs, batch_size=config.batch_size
    )
    client_params = jax.vmap(train, in_axes=(None, 0, 0, 0, 0, None))(
        params,
        clients.images[selected],
        clients.labels[selected],
        clients.counts[selected],
        client_keys,
        learning_rate,
    )
    return weighted_average(client_params, clients.counts[selected].astype(jnp.float32))


def make_train(
    config: FedConfig, clients: ClientData, test_images: jax.Array, test_labels: jax.Array
) -> Callable[[jax.Array, jax.Array], tuple[object, jax.Array]]:
    """``train(key, learning_rate) -> (params, test_accuracy [num_rounds])``: a whole run as one program.

    Pure in its arguments, so ``jax.vmap(train, in_axes=(None, 0))`` tunes a grid of learning rates at once.
    """
    model = make_model(config)

    def train(key, learning_rate):
        init_key, rounds_key = jax.random.split(key)
        params = model.init(init_key, test_images[:1])

        def one_round(params, round_key):
            params = server_round(model.apply, config, params, clients, round_key, learning_rate)
            predictions = jnp.argmax(model.apply(params, test_images), axis=-1)
            return params, jnp.mean(predictions == test_labels)

        return jax.lax.scan(one_round, params, jax.random.split(rounds_key, config.num_rounds))

    return train


def client_partition(config: FedConfig, labels: np.ndarray) -> list[np.ndarray]:
    """The partition named by ``config.iid`` over the training labels."""
    if config.iid:
        return partition_iid(labels.size, config.num_clients, config.seed)
    return partition_pathological(labels, config.num_clients, config.seed)


def run_learning_rates(
    config: FedConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    learning_rates: Sequence[float],
) -> np.ndarray:
    """Test accuracy after every round, ``[len(learning_rates), num_rounds]``, all rates in one jitted vmap.

    The data enter the jitted program as arguments, not as constants closed over: XLA would otherwise embed
    them in the program and constant-fold what it can of the model on them (for the CNN, the test set's
    gathered convolution windows: a [1000, 28, 28, 25] constant and a slow-operation warning).
    """
    clients = stack_clients(x_train, y_train, client_partition(config, y_train))

    def runs(key, rates, clients, test_images, test_labels):
        train = make_train(config, clients, test_images, test_labels)
        return jax.vmap(train, in_axes=(None, 0))(key, rates)[1]

    accuracies = jax.jit(runs)(
        jax.random.key(config.seed),
        jnp.asarray(learning_rates, jnp.float32),
        clients,
        jnp.asarray(x_test),
        jnp.asarray(y_test),
    )
    return np.asarray(accuracies)


def rounds_to_target(accuracies: np.ndarray, target: float) -> int | None:
    """The first round (1-based) whose test accuracy reaches ``target``; ``None`` if none does."""
    reached = np.flatnonzero(np.asarray(accuracies) >= target)
    return int(reached[0]) + 1 if reached.size else None
