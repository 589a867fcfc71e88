import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tffprune.data import Dataset, build_federated_data, load_dataset
from tffprune.data.partition import (
    dirichlet_partition,
    dirichlet_shares,
    iid_partition,
    partition_indices,
    shard_partition,
)

# 1000 examples, 100 of each of 10 labels.
LABELS = np.repeat(np.arange(10), 100)


def _assert_disjoint_and_complete(parts, size):
    joined = np.concatenate(parts)
    assert joined.size == size
    np.testing.assert_array_equal(np.sort(joined), np.arange(size))


@pytest.mark.parametrize("method", ["iid", "shards", "dirichlet"])
def test_partition_disjoint_complete_deterministic(method):
    parts = partition_indices(LABELS, 20, method, seed=3)
    again = partition_indices(LABELS, 20, method, seed=3)
    other = partition_indices(LABELS, 20, method, seed=4)

    _assert_disjoint_and_complete(parts, LABELS.size)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_iid_sizes_differ_by_at_most_one():
    sizes = [part.size for part in iid_partition(np.zeros(103), 10, seed=0)]

    assert sorted(set(sizes)) == [10, 11]
    assert sum(sizes) == 103


@given(
    num_clients=st.integers(1, 40),
    shards_per_client=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_shards_at_most_k_labels_per_client(num_clients, shards_per_client, seed):
    if num_clients * shards_per_client < 10:
        with pytest.raises(ValueError, match="shards cannot hold 10 labels"):
            shard_partition(LABELS, num_clients, shards_per_client, seed)
        return
    parts = shard_partition(LABELS, num_clients, shards_per_client, seed)

    _assert_disjoint_and_complete(parts, LABELS.size)
    for part in parts:
        assert part.size > 0
        assert np.unique(LABELS[part]).size <= shards_per_client


def test_shards_balanced_labels_give_equal_clients():
    # 100 clients x 2 shards = 200 shards, 20 per label of 100 -> 5 examples each.
    parts = shard_partition(LABELS, 100, 2, seed=0)

    assert {part.size for part in parts} == {10}


def _mean_max_label_share(parts):
    shares = [np.bincount(LABELS[p], minlength=10).max() / p.size for p in parts]
    return float(np.mean(shares))


def test_dirichlet_small_alpha_is_more_skewed():
    skewed = dirichlet_partition(LABELS, 20, alpha=0.1, seed=0)
    mild = dirichlet_partition(LABELS, 20, alpha=100.0, seed=0)

    assert _mean_max_label_share(skewed) > 0.5
    assert _mean_max_label_share(mild) < 0.25
    assert min(part.size for part in skewed) >= 2


def test_dirichlet_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha must be > 0"):
        dirichlet_partition(LABELS, 5, alpha=0.0, seed=0)


def test_dirichlet_shares_below_numpys_switch_have_dirichlets_moments():
    # Dir(0.05 x 5): each share has mean 1/5 and variance
    # (1/5)(4/5) / (0.25 + 1) = 0.128.
    rng = np.random.default_rng(0)
    shares = np.array([dirichlet_shares(rng, 0.05, 5) for _ in range(20000)])
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(shares.mean(axis=0), 0.2, atol=0.01)
    np.testing.assert_allclose(shares.var(axis=0), 0.128, atol=0.006)


def test_dirichlet_shares_from_numpys_switch_up_are_numpys():
    ours = dirichlet_shares(np.random.default_rng(7), 0.5, 6)
    np.testing.assert_array_equal(
        ours, np.random.default_rng(7).dirichlet(np.full(6, 0.5))
    )


@pytest.mark.parametrize("alpha", [1e-300, 1e-30, 1e-10])
def test_a_tiny_alpha_ends_at_once_with_the_smallest_alpha_that_works(alpha):
    # NumPy's own sampler never returns at 1e-30 (and ignores Ctrl-C). With
    # 10 labels, one client per label: 100 clients cannot all get 2 examples.
    with pytest.raises(ValueError) as error:
        dirichlet_partition(LABELS, 100, alpha=alpha, seed=0)
    message = str(error.value)
    assert message.startswith(f"no Dirichlet(alpha={alpha:g}) draw in 1000")
    works = float(message.split("--alpha ")[1].split()[0])
    # The alpha it names splits, and the grid value below it does not.
    assert min(p.size for p in dirichlet_partition(LABELS, 100, works, 0)) >= 2
    digit = int(f"{works:e}"[0])
    below = works * (digit - 1) / digit if digit > 1 else works * 0.9
    with pytest.raises(ValueError):
        dirichlet_partition(LABELS, 100, alpha=below, seed=0)


def test_a_tiny_alpha_that_can_split_does():
    # 4 clients, 10 labels: almost every label goes to one client, whole.
    parts = dirichlet_partition(LABELS, 4, alpha=1e-300, seed=0)
    _assert_disjoint_and_complete(parts, LABELS.size)
    assert all(np.unique(LABELS[p]).size * 100 == p.size for p in parts)


def test_unknown_partition():
    with pytest.raises(ValueError, match="unknown partition 'pathological'"):
        partition_indices(LABELS, 5, "pathological", seed=0)


def test_more_clients_than_examples():
    with pytest.raises(ValueError, match="cannot split 3 examples over 5 clients"):
        iid_partition(np.zeros(3), 5, seed=0)


def _toy_dataset():
    images = np.arange(1000, dtype=np.float32).reshape(1000, 1, 1, 1)
    return Dataset(
        "toy",
        images,
        LABELS.astype(np.int32),
        images[:10],
        LABELS[:10].astype(np.int32),
        10,
        "test",
    )


def test_federated_data_client_splits_follow_client_distribution():
    federated = build_federated_data(
        _toy_dataset(), 50, "shards", seed=1, client_test_fraction=0.2
    )

    seen = []
    for client in range(federated.num_clients):
        x_train, y_train = federated.client_train(client)
        x_test, y_test = federated.client_test(client)
        # 20 examples per client: 16 train, 4 test, same labels on both sides.
        assert (y_train.size, y_test.size) == (16, 4)
        assert set(y_test) <= set(y_train)
        seen.extend(x_train.ravel().astype(int))
        seen.extend(x_test.ravel().astype(int))
    np.testing.assert_array_equal(np.sort(seen), np.arange(1000))


def test_federated_data_max_examples_and_summary(tmp_path):
    federated = build_federated_data(_toy_dataset(), 4, "iid", seed=0, max_examples=100)
    rows = federated.summary()

    assert sum(r["train_examples"] + r["test_examples"] for r in rows) == 100
    assert "4 clients" in federated.format_summary()
    federated.write_summary(tmp_path / "clients.csv")
    assert (
        (tmp_path / "clients.csv")
        .read_text()
        .startswith("client,train_examples,test_examples,num_labels,label_counts")
    )


def test_client_test_of_labels_is_every_central_test_example_of_its_labels():
    data = build_federated_data(load_dataset("digits"), 5, "shards", seed=0)

    for client in range(5):
        held = np.unique(data.client_train(client)[1])
        inputs, labels = data.client_test_of_labels(client)

        np.testing.assert_array_equal(np.unique(labels), held)
        expected = np.isin(data.dataset.y_test, held)
        assert labels.size == np.count_nonzero(expected)
        np.testing.assert_array_equal(inputs, data.dataset.x_test[expected])
