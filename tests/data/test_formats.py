import gzip
import pickle

import numpy as np
import pytest
from crafted_files import RunsACommand

from tffprune.data.formats import (
    DataError,
    read_cifar_batch,
    read_idx,
    read_npz,
    write_idx,
)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_round_trips_raw_and_gzip(tmp_path, name):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, images)

    loaded = read_idx(tmp_path / name)

    np.testing.assert_array_equal(loaded, images)
    assert loaded.dtype == np.uint8


def test_read_idx_hand_written_header(tmp_path):
    # magic 0x00000801 (uint8, 1-D), length 3, then the labels 7 8 9.
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), [7, 8, 9])


def test_read_idx_truncated_payload_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((5, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-7])

    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        read_idx(path)


def test_read_idx_truncated_gzip_names_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(1000, np.uint8))
    path.write_bytes(path.read_bytes()[:20])

    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is a truncated"):
        read_idx(path)


def test_read_idx_extra_bytes_are_an_error(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros(4, np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")

    with pytest.raises(DataError, match="longer than its header"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(gzip.compress(b"<html>404 not found</html>"))

    with pytest.raises(DataError, match="not an IDX file: bad magic"):
        read_idx(path)


def test_read_npz_round_trip_and_missing_key(tmp_path):
    arrays = {
        "x_train": np.ones((2, 28, 28), np.uint8),
        "y_train": np.array([1, 2]),
        "x_test": np.zeros((1, 28, 28), np.uint8),
        "y_test": np.array([3]),
    }
    np.savez(tmp_path / "ok.npz", **arrays)
    np.savez(tmp_path / "partial.npz", x_train=arrays["x_train"])

    loaded = read_npz(tmp_path / "ok.npz")

    np.testing.assert_array_equal(loaded["y_train"], [1, 2])
    with pytest.raises(DataError, match="partial.npz lacks y_train, x_test, y_test"):
        read_npz(tmp_path / "partial.npz")


def test_read_npz_truncated(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=np.ones(1000),
        y_train=np.ones(3),
        x_test=np.ones(3),
        y_test=np.ones(3),
    )
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(DataError, match="mnist.npz is a truncated or corrupt"):
        read_npz(path)


def test_read_npz_refuses_an_array_of_pickled_objects_by_name(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(
        path,
        x_train=np.zeros((2, 3), np.float32),
        y_train=np.array([0, "cat"], dtype=object),  # pickled when saved
        x_test=np.zeros((1, 3), np.float32),
        y_test=np.zeros(1, np.int64),
    )
    with pytest.raises(DataError) as error:
        read_npz(path)
    message = str(error.value)
    assert "array 'y_train' holds pickled Python objects, refused" in message
    assert "truncated" not in message


def test_read_cifar_batch_layout(tmp_path):
    # One image whose red plane is 0..1023, green +1, blue +2 (mod 256).
    red = np.arange(1024) % 256
    data = np.concatenate([red, (red + 1) % 256, (red + 2) % 256]).astype(np.uint8)
    with (tmp_path / "data_batch_1").open("wb") as handle:
        pickle.dump({b"data": data[None, :], b"labels": [6]}, handle)

    images, labels = read_cifar_batch(tmp_path / "data_batch_1")

    assert images.shape == (1, 32, 32, 3)
    # Pixel (row 0, column 1) is flat index 1 in every channel plane.
    np.testing.assert_array_equal(images[0, 0, 1], [1, 2, 3])
    np.testing.assert_array_equal(labels, [6])


def test_read_cifar_batch_truncated(tmp_path):
    path = tmp_path / "test_batch"
    with path.open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, handle)
    path.write_bytes(path.read_bytes()[:100])

    with pytest.raises(DataError, match="test_batch is a truncated or corrupt"):
        read_cifar_batch(path)


def test_read_cifar_batch_refuses_a_batch_that_runs_code(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    with path.open("wb") as handle:
        pickle.dump({b"data": RunsACommand(marker), b"labels": [0]}, handle)

    with pytest.raises(
        DataError,
        match=r"data_batch_1 is not a CIFAR-10 batch: it "
        r"asks to run posix\.system, refused",
    ):
        read_cifar_batch(path)

    assert not marker.exists()


def test_read_cifar_batch_reads_protocol_2_pickles(tmp_path):
    # The published batches are protocol 2 pickles with byte keys and a list of
    # filenames beside data and labels; Python 3 writes protocol 2 bytes through
    # _codecs.encode, which the allow-list admits.
    path = tmp_path / "test_batch"
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [3, 8],
        b"data": np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072),
        b"filenames": [b"cat_s_000001.png", b"ship_s_000002.png"],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))

    images, labels = read_cifar_batch(path)

    np.testing.assert_array_equal(labels, [3, 8])
    assert images.shape == (2, 32, 32, 3)
    assert images[1, 0, 0, 0] == 3072 % 256
