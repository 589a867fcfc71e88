"""Client files: the batches a worker reads are those a dataset would carry."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tffprune.data.client_files import (
    ClientFiles,
    ordered_dataset,
    read_examples,
    serialized_examples,
    shuffled_order,
)
from tffprune.data.pipeline import batched_dataset

SPEC = (tf.TensorSpec([None, 2, 3], tf.float32), tf.TensorSpec([None], tf.int32))


def _examples(count, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.random((count, 2, 3), dtype=np.float32)
    return inputs, np.arange(count, dtype=np.int32)


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_a_file_holds_the_examples_as_written(tmp_path):
    inputs, labels = _examples(5)
    path = tmp_path / "c0.examples"
    path.write_bytes(serialized_examples(inputs, labels, SPEC))

    read_inputs, read_labels = read_examples(tf.constant(str(path)), SPEC)

    np.testing.assert_array_equal(read_inputs.numpy(), inputs)
    np.testing.assert_array_equal(read_labels.numpy(), labels)


@pytest.mark.parametrize("count, epochs", [(10, 1), (7, 3), (1, 2)])
def test_the_order_is_the_shuffled_datasets(count, epochs):
    tf.keras.utils.set_random_seed(4)
    inputs, labels = _examples(count)
    shuffled = batched_dataset(inputs, labels, 4, shuffle_seed=99, epochs=epochs)
    # The labels are the examples' indices: the order, read off the batches.
    expected = np.concatenate([y for _, y in _batches(shuffled)])

    order = shuffled_order(count, seed=99, epochs=epochs)

    np.testing.assert_array_equal(order, expected)
    assert sorted(order.tolist()) == sorted(list(range(count)) * epochs)


def test_a_file_read_in_order_gives_the_same_batches(tmp_path):
    tf.keras.utils.set_random_seed(0)
    inputs, labels = _examples(10)
    files = ClientFiles(lambda client: (inputs, labels), SPEC, tmp_path)

    path, order = files.reference(3, seed=7, epochs=2)
    read = _batches(ordered_dataset(tf.constant(path), tf.constant(order), SPEC, 4))
    shipped = _batches(batched_dataset(inputs, labels, 4, shuffle_seed=7, epochs=2))

    assert [len(y) for _, y in read] == [4, 4, 4, 4, 4]
    assert len(read) == len(shipped)
    for (x, y), (shipped_x, shipped_y) in zip(read, shipped, strict=True):
        np.testing.assert_array_equal(x, shipped_x)
        np.testing.assert_array_equal(y, shipped_y)


def test_a_clients_file_is_written_once(tmp_path):
    asked = []

    def examples(client):
        asked.append(client)
        return _examples(4)

    files = ClientFiles(examples, SPEC, tmp_path)
    first, _ = files.reference(2, seed=1, epochs=1)
    again, order = files.reference(2, seed=2, epochs=1)
    other, _ = files.reference("2", seed=1, epochs=1)

    assert asked == [2, "2"]
    assert first == again != other
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(first).name, Path(other).name]
    )
    assert sorted(order.tolist()) == [0, 1, 2, 3]


def test_a_killed_runs_directory_is_removed_by_the_next(
    tmp_path, monkeypatch, ended_pid
):
    import os
    import tempfile

    from tffprune.reporting.files import pid_namespace

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"tffprune-clients-{ended_pid}.{pid_namespace()}-abc"
    stale.mkdir()
    (stale / "c0.examples").write_bytes(b"left by a killed run")
    running = tmp_path / f"tffprune-clients-{os.getpid()}.{pid_namespace()}-def"
    running.mkdir()
    other = tmp_path / "tffprune-clients-notapid"
    other.mkdir()

    files = ClientFiles(lambda client: _examples(3), SPEC)

    assert not stale.exists()
    assert running.is_dir() and other.is_dir()
    assert files.directory.parent == tmp_path
    assert files.directory.name.startswith(
        f"tffprune-clients-{os.getpid()}.{pid_namespace()}-"
    )
