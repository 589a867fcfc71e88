import pickle
from pathlib import Path

import numpy as np
import pytest

from tffprune.data import datasets
from tffprune.data.datasets import load_dataset
from tffprune.data.formats import DataError, write_idx

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No Keras cache, no Debian directory, no environment variable."""
    monkeypatch.setattr(datasets, "KERAS_CACHE", tmp_path / "keras")
    monkeypatch.setattr(datasets, "DEBIAN_ROOT", tmp_path / "debian")
    monkeypatch.delenv(datasets.DATA_DIR_VARIABLE, raising=False)
    return tmp_path


def _write_idx_set(directory, num_train=6, num_test=4, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    write_idx(
        directory / f"train-images-idx3-ubyte{suffix}",
        rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
    )
    write_idx(
        directory / f"train-labels-idx1-ubyte{suffix}",
        np.arange(num_train, dtype=np.uint8) % 10,
    )
    write_idx(
        directory / f"t10k-images-idx3-ubyte{suffix}",
        np.full((num_test, 28, 28), 255, np.uint8),
    )
    write_idx(
        directory / f"t10k-labels-idx1-ubyte{suffix}",
        np.arange(num_test, dtype=np.uint8) % 10,
    )


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_in_data_dir(isolated, gz):
    _write_idx_set(isolated / "mine", gz=gz)

    loaded = load_dataset("mnist", isolated / "mine", download=False)

    assert loaded.x_train.shape == (6, 28, 28, 1)
    assert loaded.x_test.dtype == np.float32
    assert loaded.x_test.max() == 1.0  # 255 scaled to 1
    np.testing.assert_array_equal(loaded.y_train, [0, 1, 2, 3, 4, 5])


def test_environment_variable_and_subdirectory(isolated, monkeypatch):
    _write_idx_set(isolated / "root" / "fashion-mnist")
    monkeypatch.setenv(datasets.DATA_DIR_VARIABLE, str(isolated / "root"))

    loaded = load_dataset("fashion_mnist", download=False)

    assert loaded.source == str(isolated / "root" / "fashion-mnist")


def test_data_dir_wins_over_keras_cache(isolated):
    _write_idx_set(isolated / "keras" / "fashion-mnist", num_train=3)
    _write_idx_set(isolated / "explicit", num_train=5)

    assert (
        load_dataset(
            "fashion_mnist", isolated / "explicit", download=False
        ).y_train.size
        == 5
    )
    assert load_dataset("fashion_mnist", download=False).y_train.size == 3


def test_keras_npz_in_cache(isolated):
    (isolated / "keras").mkdir()
    np.savez(
        isolated / "keras" / "mnist.npz",
        x_train=np.zeros((3, 28, 28), np.uint8),
        y_train=np.array([0, 1, 9]),
        x_test=np.zeros((2, 28, 28), np.uint8),
        y_test=np.array([4, 5]),
    )

    loaded = load_dataset("mnist", download=False)

    np.testing.assert_array_equal(loaded.y_train, [0, 1, 9])
    assert loaded.input_shape == (28, 28, 1)


def test_cifar_batches(isolated):
    directory = isolated / "keras" / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    for index, name in enumerate(
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    ):
        with (directory / name).open("wb") as handle:
            pickle.dump(
                {b"data": np.zeros((2, 3072), np.uint8), b"labels": [index, index]},
                handle,
            )

    loaded = load_dataset("cifar10", download=False)

    assert loaded.x_train.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(loaded.y_test, [5, 5])


def test_nothing_found_names_every_place(isolated):
    with pytest.raises(DataError) as raised:
        load_dataset("mnist", download=False)

    message = str(raised.value)
    assert str(isolated / "keras" / "mnist.npz") in message
    assert str(isolated / "debian" / "mnist") in message
    assert "--data-dir" in message


def test_empty_data_dir_is_an_error_not_a_fallback(isolated):
    # The Debian copy exists, but --data-dir was asked for: never read elsewhere.
    _write_idx_set(isolated / "debian" / "fashion-mnist")

    with pytest.raises(DataError) as raised:
        load_dataset("fashion_mnist", isolated / "nowhere", download=False)

    message = str(raised.value)
    assert message.startswith(f"--data-dir {isolated / 'nowhere'} holds no")
    assert str(isolated / "nowhere" / "fashion-mnist") in message
    assert "debian" not in message


def test_partial_idx_set_is_an_error(isolated):
    _write_idx_set(isolated / "mine")
    (isolated / "mine" / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("fashion_mnist", isolated / "mine", download=False)


def test_corrupt_file_in_search_path_names_it(isolated):
    _write_idx_set(isolated / "mine")
    path = isolated / "mine" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50])

    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("fashion_mnist", isolated / "mine", download=False)


def test_wrong_image_shape_is_an_error(isolated):
    directory = isolated / "mine"
    directory.mkdir()
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((2, 8, 8), np.uint8))
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    write_idx(directory / "t10k-images-idx3-ubyte", np.zeros((1, 8, 8), np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte", np.zeros(1, np.uint8))

    with pytest.raises(DataError, match=r"must be \(28, 28\), got \(8, 8\)"):
        load_dataset("mnist", directory, download=False)


def test_unknown_name():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_digits_is_bundled():
    loaded = load_dataset("digits")

    assert loaded.x_train.shape == (1437, 8, 8, 1)
    assert loaded.x_test.shape == (360, 8, 8, 1)
    assert loaded.x_train.min() >= 0.0 and loaded.x_train.max() == 1.0
    assert set(np.unique(loaded.y_train)) == set(range(10))


def test_real_fashion_mnist():
    # CI installs dataset-fashion-mnist; this test must fail, not skip, without it.
    assert FASHION_MNIST_DEBIAN.is_dir(), (
        "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"
    )
    loaded = load_dataset("fashion_mnist", download=False)

    assert loaded.x_train.shape == (60000, 28, 28, 1)
    assert loaded.x_test.shape == (10000, 28, 28, 1)
    assert loaded.x_train.dtype == np.float32 and loaded.y_train.dtype == np.int32
    assert loaded.x_train.min() == 0.0 and loaded.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(loaded.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(loaded.y_test), [1000] * 10)


def test_your_npz_is_used_as_given_unless_scale_inputs(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=np.full((4, 3, 3), 255, np.uint8),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.full((2, 3, 3), 51, np.uint8),
        y_test=np.array([0, 1]),
    )

    given = load_dataset(str(path))
    scaled = load_dataset(str(path), scale_inputs=True)

    assert given.x_train.max() == 255.0 and given.x_test.max() == 51.0
    assert not given.inputs_scaled
    assert given.notes[0] == (
        "x_train: integer inputs (uint8, 255..255) used as given; --scale-inputs "
        "(scale_inputs=True in Python) divides them by 255"
    )
    assert scaled.x_train.max() == 1.0
    assert scaled.x_test.max() == pytest.approx(0.2)
    assert scaled.inputs_scaled


def test_named_data_sets_are_always_in_unit_range(isolated):
    _write_idx_set(isolated / "mine")

    loaded = load_dataset("mnist", isolated / "mine", download=False)

    assert loaded.inputs_scaled and loaded.x_test.max() == 1.0
