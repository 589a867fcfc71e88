"""Clients' examples as files the TFF workers read: a round names, not ships.

A round used to send each sampled client's batched ``tf.data`` dataset into
the TFF call: a graph with the client's examples embedded as constants,
serialized on the driver and sent to the worker over gRPC every round
(fc on Fashion-MNIST, 10 clients of 480 examples: 0.13-0.14 s a call against
0.09-0.10 s with files, experiments/README.md "Round overhead").

Instead the run writes each client's training examples once, the first time
it is sampled, to a file in a directory the workers can read
(`ClientFiles`), and a round sends per client only a `reference`: the file's
path and the order of its examples this round (`shuffled_order`, 4 bytes an
example). The worker builds the client's dataset from them
(`ordered_dataset`, inside `tffprune.learning.client_data`'s dataset
computation). The order is that of `tffprune.data.pipeline.batched_dataset`
with the same seed, so a round reads exactly the batches it was sent before.

File format: one serialized ``TensorProto`` (`tf.io.serialize_tensor`) of a
string vector holding the serialized inputs and the serialized labels.

The directory must be reachable under the same path from every TFF worker
(local workers always are; remote workers would need a shared file system,
so a run on ``--workers`` ships datasets instead).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tffprune.reporting.files import file_stem, process_directory, write_bytes_atomic

SUFFIX = ".examples"

ElementSpec = tuple[tf.TensorSpec, tf.TensorSpec]
"""``(inputs, labels)`` batch specs, as `batched_dataset` gives them."""


def serialized_examples(
    inputs: np.ndarray, labels: np.ndarray, spec: ElementSpec
) -> bytes:
    """A client file's bytes: inputs and labels at ``spec``'s dtypes."""
    parts = [
        tf.io.serialize_tensor(tf.constant(array, dtype=part.dtype))
        for array, part in zip((inputs, labels), spec, strict=True)
    ]
    return tf.io.serialize_tensor(tf.stack(parts)).numpy()


def read_examples(path: tf.Tensor, spec: ElementSpec) -> tuple[tf.Tensor, tf.Tensor]:
    """A client file's ``(inputs, labels)``, in TensorFlow.

    Args:
        path: Scalar ``tf.string``: the file.
        spec: The batches' element spec (its dtypes and example shapes).
    """
    parts = tf.io.parse_tensor(tf.io.read_file(path), tf.string)
    return tuple(
        tf.ensure_shape(tf.io.parse_tensor(parts[index], part.dtype), part.shape)
        for index, part in enumerate(spec)
    )


def shuffled_order(size: int, seed: int, epochs: int = 1) -> np.ndarray:
    """The order `batched_dataset` visits ``size`` examples in, over ``epochs``.

    `batched_dataset(inputs, labels, batch_size, shuffle_seed=seed,
    epochs=epochs)` yields ``inputs[order]`` in batches of ``batch_size``:
    the same shuffle over the examples' indices (the shuffle never looks at
    the elements), under the same global TensorFlow seed.

    Returns:
        int32 indices, ``size * epochs`` of them.
    """
    if size == 0:
        return np.zeros(0, np.int32)
    indices = (
        tf.data.Dataset.range(size)
        .shuffle(size, seed=seed, reshuffle_each_iteration=True)
        .repeat(epochs)
        .batch(size * epochs)
    )
    return indices.get_single_element().numpy().astype(np.int32)


def ordered_dataset(
    path: tf.Tensor, order: tf.Tensor, spec: ElementSpec, batch_size: int
) -> tf.data.Dataset:
    """A client's batches read from its file, in ``order`` (TensorFlow).

    The file is read when the dataset is iterated, not when it is built, so
    the dataset itself carries only the path and the order.
    """

    def read(file, indices):
        inputs, labels = read_examples(file, spec)
        return tf.gather(inputs, indices), tf.gather(labels, indices)

    def batches(inputs, labels):
        return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size)

    return tf.data.Dataset.from_tensors((path, order)).map(read).flat_map(batches)


class ClientFiles:
    """The directory of client files, each written the first time it is asked for.

    Args:
        examples: ``examples(client) -> (inputs, labels)``, the client's
            training split, for the client ids `reference` is given.
        spec: The batches' element spec (`ElementSpec`).
        directory: Where the files go; None: a temporary directory, removed
            when the object is garbage-collected or the interpreter exits
            (and, if the process is killed before, by the next one:
            `tffprune.reporting.files.process_directory`).
    """

    def __init__(
        self,
        examples: Callable[[Hashable], tuple[np.ndarray, np.ndarray]],
        spec: ElementSpec,
        directory: str | Path | None = None,
    ) -> None:
        self._examples, self._spec = examples, spec
        self._temporary = None
        if directory is None:
            self._temporary = process_directory("clients")
            directory = self._temporary.name
        self.directory = Path(directory).resolve()
        self._files: dict[Hashable, tuple[str, int]] = {}

    def reference(
        self, client: Hashable, seed: int, epochs: int
    ) -> tuple[str, np.ndarray]:
        """What a round sends for ``client``: its file's path and the order.

        Args:
            client: The client's id (an int, a string: any hashable).
            seed: The shuffle seed of its round (`batched_dataset`'s).
            epochs: Its local epochs.

        Raises:
            OSError: If the file cannot be written (a full disk).
        """
        if client not in self._files:
            inputs, labels = self._examples(client)
            path = self.directory / f"{file_stem(client)}{SUFFIX}"
            self.directory.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, serialized_examples(inputs, labels, self._spec))
            self._files[client] = (str(path), len(labels))
        path, size = self._files[client]
        return path, shuffled_order(size, seed, epochs)
