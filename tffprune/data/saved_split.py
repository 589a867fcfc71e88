"""A federated data set saved whole: its arrays and its split over clients.

A ``tffprune.train`` run on data made in Python (`tffprune.data.from_arrays`,
``from_client_arrays``, ``from_client_data``) writes them into its directory
as ``data.npz`` when they fit `COPY_LIMIT_BYTES`, and its ``config.toml``
records ``dataset = "RUN/data.npz"`` and ``partition = "given"``: ``tffprune
train --config RUN/config.toml`` and ``tffprune export RUN`` read them back,
the same examples in the same split (`FederatedData.fingerprint` equal).

The archive holds ``x_train, y_train, x_test, y_test`` (a Keras data set
``.npz``, so any tool reads it) and the split: ``client_ids`` (text),
``train_indices`` / ``test_indices`` (every client's, concatenated) with
``train_counts`` / ``test_counts`` per client, and ``num_classes``. Nothing in
it is pickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tffprune.data.datasets import Dataset
from tffprune.data.formats import DataError, read_npz_arrays
from tffprune.data.partition import ClientSplit, FederatedData

GIVEN = "given"
"""The partition of a saved split: the clients as the file gives them."""

SAVED_DATA_NAME = "data.npz"
"""The file name a run gives its copy of data made in Python."""

COPY_LIMIT_BYTES = 2**30
"""Data made in Python up to this size (1 GiB) are copied into the run."""

_SPLIT_KEYS = ("client_ids", "train_indices", "train_counts", "test_indices")


def saved_size(data: FederatedData) -> int:
    """Bytes `save_split` writes for ``data`` (before the archive's headers)."""
    dataset = data.dataset
    arrays = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    indices = sum(s.train_indices.size + s.test_indices.size for s in data.clients)
    return sum(a.nbytes for a in arrays) + 8 * (indices + 2 * data.num_clients)


def save_split(data: FederatedData, handle) -> None:
    """Writes ``data`` to an open binary file (`tffprune.reporting.files`)."""
    dataset = data.dataset
    splits = data.clients
    train = np.concatenate([s.train_indices for s in splits]).astype(np.int64)
    test = np.concatenate([s.test_indices for s in splits]).astype(np.int64)
    np.savez(
        handle,
        x_train=dataset.x_train,
        y_train=dataset.y_train,
        x_test=dataset.x_test,
        y_test=dataset.y_test,
        num_classes=np.int64(dataset.num_classes),
        client_ids=np.array([data.client_id(c) for c in range(data.num_clients)]),
        train_indices=train,
        train_counts=np.array([s.train_indices.size for s in splits], np.int64),
        test_indices=test,
        test_counts=np.array([s.test_indices.size for s in splits], np.int64),
    )


def load_split(path: str | Path) -> FederatedData:
    """The data and split `save_split` wrote.

    Raises:
        DataError: If the file is missing, unreadable, or holds no split (a
            plain Keras ``.npz``: give it a partition instead of ``given``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    arrays = read_npz_arrays(path)
    missing = [k for k in (*_SPLIT_KEYS, "x_train", "x_test") if k not in arrays]
    if missing:
        raise DataError(
            f"{path} holds no saved split (no {', '.join(missing)}); partition "
            f"{GIVEN!r} reads a run's data.npz; split other files with --partition "
            "iid, shards or dirichlet"
        )
    train = np.split(arrays["train_indices"], np.cumsum(arrays["train_counts"])[:-1])
    test = np.split(arrays["test_indices"], np.cumsum(arrays["test_counts"])[:-1])
    if not len(train) == len(test) == len(arrays["client_ids"]):
        raise DataError(f"{path}: the split's clients and counts disagree")
    dataset = Dataset(
        name=str(path),
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        num_classes=int(arrays["num_classes"]),
        source=str(path.resolve()),
    )
    return FederatedData(
        dataset=dataset,
        clients=tuple(ClientSplit(a, b) for a, b in zip(train, test, strict=True)),
        partition=GIVEN,
        client_ids=tuple(str(i) for i in arrays["client_ids"]),
    )
