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
weights unchanged). Rounds run as a ``lax.scan`` in chunks, the test set evaluated after every round, ``vmap``-ed
over a grid of learning rates; a run with a target accuracy stops after the chunk in which a rate reaches it.

Local work per round: a client runs ``u = E n_k / B`` SGD steps per round (Section 3 and Table 2 of the paper,
where ``n_k = 600``). On MNIST 5k (4000 training images, ``brackit.extras.data.load_mnist5k``) the paper's
``K = 100`` clients hold 40 images each, so the same (E, B) is 15x less local work; the CLI states both ``u``
and can scale E to the paper's ``u``. The CNN is narrower on CPU (``FedConfig.cnn_widths``) and the target
accuracies are lower (see the CLI and its results files).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Annotated, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from brackit.config_checks import Rule, choice
from brackit.errors import ConfigError
from brackit.extras import layers
from brackit.extras.configs import CheckedConfig

MODELS = ("2nn", "cnn")


@dataclasses.dataclass(frozen=True)
class FedConfig(CheckedConfig):
    """One FedAvg / FedSGD configuration (the paper's notation in brackets)."""

    model: str = "2nn"
    """``"2nn"`` (MLP 784-200-200-10, 199,210 parameters) or ``"cnn"`` (two 5x5 convolutions, see widths)."""
    num_clients: Annotated[int, ">= 1"] = 100
    """Clients [K]."""
    client_fraction: Annotated[float, "[0, 1]"] = 0.1
    """Fraction of clients selected per round [C]; ``m = max(round(C K), 1)``."""
    local_epochs: Annotated[int, ">= 1"] = 1
    """Local epochs [E]."""
    batch_size: int | None = 10
    """Local minibatch size [B]; ``None`` means B = infinity (the client's whole data as one batch)."""
    iid: bool = True
    """IID partition, or the pathological non-IID one (sorted by label, 2 K shards, 2 per client)."""
    num_rounds: Annotated[int, ">= 1"] = 100
    """Communication rounds run."""
    cnn_widths: Annotated[tuple[int, int, int], ">= 1"] = (16, 32, 128)
    """CNN channels of conv1, conv2 and width of the dense layer (the paper: 32, 64, 512)."""
    seed: int = 0

    RULES: ClassVar[tuple[Rule, ...]] = (choice("model", MODELS),)

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


PAPER_CLIENT_SIZE = 600
"""Examples per client in the paper's MNIST experiments: 60,000 training images over K = 100 (Section 3)."""


def updates_per_round(local_epochs: int, batch_size: int | None, client_size: float) -> float:
    """The paper's ``u = E n / B``, a client's expected SGD updates per round (Section 3, Table 2); with
    ``B = inf`` one update per epoch, ``u = E``."""
    if batch_size is None:
        return float(local_epochs)
    return local_epochs * client_size / batch_size


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


TWO_NN_HIDDEN = (200, 200)
"""The paper's MNIST 2NN (``layers.MLP``): two hidden layers of 200 ReLU units."""


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
        return layers.MLP(TWO_NN_HIDDEN, num_classes)
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


def init_params(config: FedConfig, key: jax.Array, sample_images: jax.Array):
    """The server's initial weights for ``config.model`` (``sample_images [1, H, W, 1]`` fixes the shapes)."""
    return make_model(config).init(key, sample_images)


def make_rounds(config: FedConfig, num_rounds: int) -> Callable:
    """``rounds(params, first_round, rounds_key, learning_rate, clients, test_images, test_labels)
    -> (params, test_accuracy [num_rounds])``: ``num_rounds`` rounds of Algorithm 1 as one ``lax.scan``, the
    test set evaluated after every round.

    Round ``r`` draws its randomness from ``fold_in(rounds_key, r)``, so a run cut into chunks of rounds (and
    stopped early) gives the same rounds as one long run, whatever the chunk length.
    """
    model = make_model(config)

    def rounds(params, first_round, rounds_key, learning_rate, clients, test_images, test_labels):
        def one_round(params, round_index):
            round_key = jax.random.fold_in(rounds_key, round_index)
            params = server_round(model.apply, config, params, clients, round_key, learning_rate)
            predictions = jnp.argmax(model.apply(params, test_images), axis=-1)
            return params, jnp.mean(predictions == test_labels)

        return jax.lax.scan(one_round, params, first_round + jnp.arange(num_rounds))

    return rounds


@functools.lru_cache(maxsize=64)
def _chunk_program(config: FedConfig, chunk_rounds: int) -> Callable:
    """The jitted ``make_rounds`` vmapped over learning rates; cached per configuration (its seed, ``num_rounds``
    and ``iid`` set to one value by the caller), so seeds and partitions reuse one compilation."""
    rounds = make_rounds(config, chunk_rounds)
    return jax.jit(jax.vmap(rounds, in_axes=(0, None, None, 0, None, None, None)))


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
    target: float | None = None,
    chunk_rounds: int = 5,
) -> np.ndarray:
    """Test accuracy after every round, ``[len(learning_rates), rounds_run]``: all rates at once (one jitted
    ``vmap``), from the same initial weights and the same client samples (common random numbers).

    The rounds run in chunks of ``chunk_rounds``. With a ``target``, the run stops after the chunk in which a
    rate first reaches it: the rate that reaches it in the fewest rounds is then known (``best_rate``), and
    ``rounds_run <= config.num_rounds`` (rounded up to whole chunks, then cut). Without one, every round
    runs. The data enter the program as arguments, not as closed-over constants, which XLA would embed and
    constant-fold (for the CNN, the test set's convolution windows: a slow-operation warning).
    """
    if chunk_rounds < 1:
        raise ConfigError(f"chunk_rounds: expected >= 1, got {chunk_rounds}")
    clients = stack_clients(x_train, y_train, client_partition(config, y_train))
    init_key, rounds_key = jax.random.split(jax.random.key(config.seed))
    test_images, test_labels = jnp.asarray(x_test), jnp.asarray(y_test)
    rates = jnp.asarray(learning_rates, jnp.float32)
    params = init_params(config, init_key, test_images[:1])
    params = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (rates.size, *leaf.shape)), params)
    # The program depends on neither the seed, the round count nor the partition (the clients are arguments).
    program = _chunk_program(dataclasses.replace(config, seed=0, num_rounds=1, iid=True), chunk_rounds)
    chunks = []
    for first_round in range(0, config.num_rounds, chunk_rounds):
        params, accuracies = program(
            params, jnp.int32(first_round), rounds_key, rates, clients, test_images, test_labels
        )
        chunks.append(np.asarray(accuracies))
        if target is not None and np.any(chunks[-1] >= target):
            break
    return np.concatenate(chunks, axis=1)[:, : config.num_rounds]


def best_rate(accuracies: np.ndarray, target: float) -> int:
    """The row of ``accuracies [rates, rounds]`` whose rate reaches ``target`` in the fewest rounds (the lower
    row on a tie); if none does, the row with the highest accuracy (the paper tunes the learning rate per
    configuration and reports the best, McMahan et al. 2017, Section 3)."""
    rounds = [rounds_to_target(row, target) for row in accuracies]
    reached = [(r, i) for i, r in enumerate(rounds) if r is not None]
    return min(reached)[1] if reached else int(np.argmax(accuracies.max(axis=1)))


def rounds_to_target(accuracies: np.ndarray, target: float) -> int | None:
    """The first round (1-based) whose test accuracy reaches ``target``; ``None`` if none does."""
    reached = np.flatnonzero(np.asarray(accuracies) >= target)
    return int(reached[0]) + 1 if reached.size else None
