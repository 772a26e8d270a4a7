"""Tests of brackit.extras.data: the offline image datasets and the IDX reader."""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import pytest

from brackit.errors import BrackitError
from brackit.extras import data


def _check_dataset(dataset: data.ImageDataset, size: int, num_train: int, num_test: int) -> None:
    assert dataset.x_train.shape == (num_train, size, size, 1)
    assert dataset.x_test.shape == (num_test, size, size, 1)
    assert dataset.y_train.shape == (num_train,)
    assert dataset.y_test.shape == (num_test,)
    assert dataset.x_train.dtype == np.float32 and dataset.x_test.dtype == np.float32
    assert dataset.y_train.dtype == np.int32 and dataset.y_test.dtype == np.int32
    for images in (dataset.x_train, dataset.x_test):
        assert images.min() == 0.0 and images.max() == 1.0
    assert dataset.num_classes == 10
    assert set(np.unique(dataset.y_train)) == set(range(10))


def test_mnist5k_shapes_and_stratified_split() -> None:
    dataset = data.load_mnist5k(test_fraction=0.2, seed=0)
    _check_dataset(dataset, 28, 4000, 1000)
    # 500 images per class: exactly 100 of each go to the test set.
    np.testing.assert_array_equal(np.bincount(dataset.y_test), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(dataset.y_train), np.full(10, 400))


def test_digits8x8_shapes() -> None:
    dataset = data.load_digits8x8(test_fraction=0.25, seed=1)
    assert dataset.x_train.shape[0] + dataset.x_test.shape[0] == 1797
    _check_dataset(dataset, 8, dataset.x_train.shape[0], dataset.x_test.shape[0])
    # Each class sends round(0.25 * n_c) images to the test set.
    counts = np.bincount(np.concatenate([dataset.y_train, dataset.y_test]))
    np.testing.assert_array_equal(np.bincount(dataset.y_test), np.round(0.25 * counts).astype(int))


def test_split_is_deterministic_under_seed_and_differs_across_seeds() -> None:
    first = data.load_digits8x8(seed=3)
    again = data.load_digits8x8(seed=3)
    other = data.load_digits8x8(seed=4)
    np.testing.assert_array_equal(first.x_test, again.x_test)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert first.x_test.shape == other.x_test.shape
    assert not np.array_equal(first.x_test, other.x_test)


def test_stratified_split_partitions_indices() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, test = data.stratified_split(labels, 0.1, seed=0)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(100))
    np.testing.assert_array_equal(np.bincount(labels[test]), [1, 2, 3, 4])
    with pytest.raises(data.DataError, match="test_fraction"):
        data.stratified_split(labels, 1.5, seed=0)


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = data.IDX_IMAGES_MAGIC if array.ndim == 3 else data.IDX_LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(path: pathlib.Path, payload: bytes, gzipped: bool) -> pathlib.Path:
    path.write_bytes(gzip.compress(payload) if gzipped else payload)
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_round_trip(tmp_path: pathlib.Path, gzipped: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    suffix = ".gz" if gzipped else ""
    images_path = _write(tmp_path / f"images{suffix}", _idx_bytes(images), gzipped)
    labels_path = _write(tmp_path / f"labels{suffix}", _idx_bytes(labels), gzipped)
    np.testing.assert_array_equal(data.read_idx(images_path), images)
    np.testing.assert_array_equal(data.read_idx(labels_path), labels)
    dataset = data.load_idx_dataset(images_path, labels_path, images_path, labels_path, name="tiny")
    assert dataset.name == "tiny"
    assert dataset.x_train.shape == (7, 28, 28, 1) and dataset.x_train.dtype == np.float32
    np.testing.assert_allclose(dataset.x_test[..., 0] * 255.0, images, atol=1e-4)
    np.testing.assert_array_equal(dataset.y_test, labels.astype(np.int32))
    assert dataset.num_classes == int(labels.max()) + 1


def test_idx_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(data.DataError, match="no such file") as info:
        data.read_idx(tmp_path / "absent.idx")
    assert isinstance(info.value, BrackitError) and isinstance(info.value, ValueError)
    assert "absent.idx" in str(info.value)


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_bad_magic(tmp_path: pathlib.Path, gzipped: bool) -> None:
    payload = (1234).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(3)
    path = _write(tmp_path / "bad.idx", payload, gzipped)
    with pytest.raises(data.DataError, match="magic 1234"):
        data.read_idx(path)


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_truncated_data(tmp_path: pathlib.Path, gzipped: bool) -> None:
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    path = _write(tmp_path / "short.idx", _idx_bytes(images)[:-10], gzipped)
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(path)


def test_idx_truncated_header_and_corrupt_gzip(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "tiny.idx", (2051).to_bytes(4, "big") + bytes(4), gzipped=False)
    with pytest.raises(data.DataError, match="16 bytes"):
        data.read_idx(path)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(gzip.compress(_idx_bytes(np.zeros(5, np.uint8)))[:-6])
    with pytest.raises(data.DataError, match="gzip"):
        data.read_idx(corrupt)


def test_idx_mismatched_pair(tmp_path: pathlib.Path) -> None:
    images = _write(tmp_path / "images", _idx_bytes(np.zeros((4, 28, 28), np.uint8)), gzipped=False)
    labels = _write(tmp_path / "labels", _idx_bytes(np.zeros(5, np.uint8)), gzipped=False)
    with pytest.raises(data.DataError, match="4 labels"):
        data.load_idx_dataset(images, labels, images, labels)
    with pytest.raises(data.DataError, match="label file"):
        data.load_idx_dataset(images, images, images, labels)


def test_split_order_is_random_not_by_class():
    labels = np.repeat(np.arange(10), 20)  # sorted by class, like the mnist_5k file
    train, _ = data.stratified_split(labels, 0.2, seed=0)
    assert len(np.unique(labels[train[:20]])) > 3  # a prefix mixes classes


def test_upsample_bilinear_matches_hand_values_and_jax() -> None:
    # A linear ramp image[y, x] = x + 2 y is reproduced exactly inside the border; output pixel o samples
    # position (o + 0.5) * 2 / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to 0, 0.25, 0.75, 1.
    ramp = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    positions = np.array([0.0, 0.25, 0.75, 1.0])
    expected = positions[None, :] + 2.0 * positions[:, None]
    np.testing.assert_allclose(data.upsample_bilinear(ramp, 4)[0], expected, atol=1e-12)
    # Against an independent implementation: JAX's linear resize (upsampling, so no antialiasing).
    import jax

    images = np.random.default_rng(0).random((3, 8, 8))
    ours = data.upsample_bilinear(images, 20)
    reference = np.asarray(jax.image.resize(images.astype(np.float32), (3, 20, 20), method="linear"))
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(data.upsample_bilinear(images, 8), images, atol=1e-12)  # same size: identity
    with pytest.raises(data.DataError, match="upsampling only"):
        data.upsample_bilinear(images, 4)
    with pytest.raises(data.DataError, match="square"):
        data.upsample_bilinear(images[:, :4], 8)


def test_digits8x8_framed_like_mnist() -> None:
    small = data.load_digits8x8(seed=2)
    framed = data.load_digits8x8(seed=2, size=20, pad=4)
    assert framed.name == "digits8x8@28" and small.name == "digits8x8"
    _check_dataset(framed, 28, small.x_train.shape[0], small.x_test.shape[0])
    np.testing.assert_array_equal(framed.y_train, small.y_train)  # the same split and order
    border = np.ones((28, 28), bool)
    border[4:24, 4:24] = False
    assert np.all(framed.x_train[:, border] == 0.0)
    centre = framed.x_train[:, 4:24, 4:24, 0]
    np.testing.assert_allclose(
        centre, np.clip(data.upsample_bilinear(small.x_train[..., 0], 20), 0, 1), atol=1e-6
    )
    # Upsampling keeps each image's mean intensity roughly (an exact mean is not a property of bilinear).
    np.testing.assert_allclose(centre.mean(axis=(1, 2)), small.x_train[..., 0].mean(axis=(1, 2)), atol=0.03)
    with pytest.raises(data.DataError, match="pad"):
        data.load_digits8x8(pad=-1)
