"""A run's copy of data made in Python: arrays and split back, bit for bit."""

import numpy as np
import pytest

from tffprune.data import DataError, from_client_arrays
from tffprune.data.saved_split import load_split, save_split, saved_size


def _data():
    rng = np.random.default_rng(0)
    clients = {
        name: (
            rng.integers(0, 256, (count, 3, 3, 1), np.uint8),
            rng.integers(0, 4, count),
        )
        for name, count in [("alice", 5), ("bob", 8), ("carol", 3)]
    }
    return from_client_arrays(clients, test=(clients["bob"][0], clients["bob"][1]))


def test_a_saved_split_loads_as_the_same_clients_and_examples(tmp_path):
    data = _data()
    with (tmp_path / "data.npz").open("wb") as handle:
        save_split(data, handle)

    loaded = load_split(tmp_path / "data.npz")

    assert loaded.fingerprint() == data.fingerprint()
    assert loaded.client_ids == ("alice", "bob", "carol")
    assert loaded.partition == "given"
    assert loaded.dataset.num_classes == data.dataset.num_classes
    for client in range(3):
        for mine, theirs in zip(
            loaded.client_train(client), data.client_train(client), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)
    # 16 + 8 examples of 9 float32 inputs and an int32 label; 16 indices and
    # two counts per client, 8 bytes each.
    assert saved_size(data) == 24 * (9 * 4 + 4) + 8 * (16 + 2 * 3)


def test_a_plain_npz_is_no_saved_split(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, x_train=np.zeros((2, 3)), y_train=[0, 1], x_test=np.zeros((1, 3)))

    with pytest.raises(DataError, match=r"holds no saved split .*--partition iid"):
        load_split(path)
