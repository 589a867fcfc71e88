"""Splitting a data set over federated clients: IID, label shards, Dirichlet.

All three are deterministic functions of the labels and a seed, return one index
array per client, and together use every example exactly once (disjoint and
complete).

* ``iid``: a seeded permutation cut into near-equal parts.
* ``shards``: the pathological non-IID split of McMahan et al. (2017) used by
  Sub-FedAvg (Vahidian et al., 2021): examples sorted by label and cut into
  ``num_clients * shards_per_client`` shards; each client receives
  ``shards_per_client`` of them at random. Shards are cut inside each label, so
  a shard never straddles two labels and a client holds at most
  ``shards_per_client`` labels.
* ``dirichlet``: for every label, the share of each client is drawn from
  ``Dir(alpha, ..., alpha)`` (Hsu et al., 2019); small ``alpha`` gives few labels
  per client, large ``alpha`` approaches IID.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tffprune.data.datasets import Dataset

PARTITION_NAMES = ("iid", "shards", "dirichlet")


def _check_common(labels: np.ndarray, num_clients: int) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1)
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    if labels.size < num_clients:
        raise ValueError(
            f"cannot split {labels.size} examples over {num_clients} clients; "
            "each client needs at least one"
        )
    return labels


def iid_partition(labels: np.ndarray, num_clients: int, seed: int) -> list[np.ndarray]:
    """Splits examples uniformly at random into near-equal parts.

    Args:
        labels: Labels of all examples, shape (N,). Only N is used.
        num_clients: Number of clients.
        seed: Random seed.

    Returns:
        ``num_clients`` sorted index arrays whose sizes differ by at most one.

    Raises:
        ValueError: If there are fewer examples than clients.
    """
    labels = _check_common(labels, num_clients)
    order = np.random.default_rng(seed).permutation(labels.size)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def shard_partition(
    labels: np.ndarray, num_clients: int, shards_per_client: int, seed: int
) -> list[np.ndarray]:
    """Pathological non-IID split: each client gets a few single-label shards.

    The ``num_clients * shards_per_client`` shards are shared among the labels in
    proportion to their frequency (largest remainder, at least one shard per
    present label); each label's examples are shuffled and cut into its shards.

    Args:
        labels: Labels of all examples, shape (N,).
        num_clients: Number of clients.
        shards_per_client: Shards per client (Sub-FedAvg uses 2).
        seed: Random seed.

    Returns:
        One sorted index array per client, holding at most ``shards_per_client``
        distinct labels.

    Raises:
        ValueError: If there are fewer shards than labels, or fewer examples than
            shards.
    """
    labels = _check_common(labels, num_clients)
    if shards_per_client < 1:
        raise ValueError(f"shards_per_client must be >= 1, got {shards_per_client}")
    rng = np.random.default_rng(seed)
    num_shards = num_clients * shards_per_client
    classes, counts = np.unique(labels, return_counts=True)
    if num_shards < classes.size:
        raise ValueError(
            f"{num_shards} shards cannot hold {classes.size} labels; use more "
            "clients or more shards per client"
        )
    if labels.size < num_shards:
        raise ValueError(f"{labels.size} examples cannot fill {num_shards} shards")
    # Largest-remainder allocation of shards to labels, one at least each.
    spare = num_shards - classes.size
    quota = counts / counts.sum() * spare
    per_label = 1 + np.floor(quota).astype(int)
    remainder_order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    per_label[remainder_order[: spare - int(np.floor(quota).sum())]] += 1
    # A label cannot have more shards than examples.
    while np.any(per_label > counts):
        over = int(np.argmax(per_label - counts))
        per_label[over] -= 1
        per_label[int(np.argmax(counts - per_label))] += 1
    shards: list[np.ndarray] = []
    for label, label_shards in zip(classes, per_label, strict=True):
        members = rng.permutation(np.flatnonzero(labels == label))
        shards.extend(np.array_split(members, label_shards))
    assignment = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in assignment]


def dirichlet_partition(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    seed: int,
    min_examples: int = 2,
    max_attempts: int = 1000,
) -> list[np.ndarray]:
    """Label-skewed split: per label, client shares ~ Dir(alpha).

    Draws are repeated (up to ``max_attempts``) until every client holds at least
    ``min_examples`` examples, as is common practice (e.g. FedML), so that each
    client can have a train and a test split. Any ``alpha > 0`` ends in bounded
    time: below 0.1 the shares are drawn in log space (`dirichlet_shares`).

    Args:
        labels: Labels of all examples, shape (N,).
        num_clients: Number of clients.
        alpha: Concentration; > 0. Smaller is more skewed.
        seed: Random seed.
        min_examples: Smallest acceptable client size.
        max_attempts: Draws tried before giving up.

    Returns:
        One sorted index array per client.

    Raises:
        ValueError: If ``alpha <= 0`` or no draw gives every client
            ``min_examples`` (the message names the smallest alpha of the
            form d x 10^k that does, with this seed).
    """
    labels = _check_common(labels, num_clients)
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"dirichlet alpha must be > 0 and finite, got {alpha}")
    if labels.size < num_clients * min_examples:
        raise ValueError(
            f"{labels.size} examples cannot give {num_clients} clients "
            f"{min_examples} each"
        )
    parts = _dirichlet_draws(
        labels, num_clients, alpha, seed, min_examples, max_attempts
    )
    if parts is not None:
        return parts
    works = _smallest_working_alpha(
        alpha,
        lambda value: (
            _dirichlet_draws(
                labels, num_clients, value, seed, min_examples, max_attempts
            )
            is not None
        ),
    )
    hint = (
        f"--alpha {works:g} is the smallest of the form d x 10^k that works with "
        f"this seed"
        if works is not None
        else "lower the number of clients (--num-clients)"
    )
    raise ValueError(
        f"no Dirichlet(alpha={alpha:g}) draw in {max_attempts} gave all "
        f"{num_clients} clients {min_examples} examples; {hint}"
    )


def dirichlet_shares(
    rng: np.random.Generator, alpha: float, num_clients: int
) -> np.ndarray:
    """One draw of ``Dir(alpha, ..., alpha)`` over ``num_clients``, any alpha > 0.

    From 0.1 up this is NumPy's ``rng.dirichlet`` (so seeded splits are as
    they were). Below, NumPy's sampler slows without bound (3.8 s a draw at
    1e-10, no end at 1e-30, deaf to Ctrl-C), so the shares are normalised
    Gamma(alpha) variates drawn in log space: ``log G = log Gamma(alpha + 1)
    + log(U) / alpha`` (Marsaglia and Tsang's boost), exact and finite down to
    the smallest positive float.
    """
    if alpha >= 0.1:
        return rng.dirichlet(np.full(num_clients, alpha))
    log_gamma = np.log(rng.gamma(alpha + 1.0, size=num_clients)) + (
        np.log(rng.random(num_clients)) / alpha
    )
    shares = np.exp(log_gamma - log_gamma.max())
    return shares / shares.sum()


def _dirichlet_draws(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    seed: int,
    min_examples: int,
    max_attempts: int,
) -> list[np.ndarray] | None:
    """The first of ``max_attempts`` seeded draws that fills every client."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    for _ in range(max_attempts):
        cuts = []
        sizes = np.zeros(num_clients, np.int64)
        for label_members in members:
            shares = dirichlet_shares(rng, alpha, num_clients)
            label_cuts = (np.cumsum(shares)[:-1] * label_members.size).astype(int)
            sizes += np.diff(label_cuts, prepend=0, append=label_members.size)
            cuts.append(label_cuts)
        if sizes.min() >= min_examples:
            pieces = [
                np.split(label_members, label_cuts)
                for label_members, label_cuts in zip(members, cuts, strict=True)
            ]
            return [
                np.sort(np.concatenate([label[c] for label in pieces]))
                for c in range(num_clients)
            ]
    return None


def _smallest_working_alpha(
    alpha: float, splits: Callable[[float], bool]
) -> float | None:
    """The smallest alpha above ``alpha`` on the grid d x 10^k that ``splits``.

    Bisection over the grid 1e-4 .. 9e3 (a larger alpha only evens the
    shares); None if even the largest does not split.
    """
    grid = [d * 10.0**k for k in range(-4, 4) for d in range(1, 10)]
    grid = [value for value in grid if value > alpha]
    if not grid or not splits(grid[-1]):
        return None
    low, high = -1, len(grid) - 1  # grid[high] splits; grid[low] is untried
    while high - low > 1:
        middle = (low + high) // 2
        if splits(grid[middle]):
            high = middle
        else:
            low = middle
    return grid[high]


def partition_indices(
    labels: np.ndarray,
    num_clients: int,
    method: str,
    seed: int,
    shards_per_client: int = 2,
    alpha: float = 0.5,
) -> list[np.ndarray]:
    """Dispatches to the partition named ``method`` (one of `PARTITION_NAMES`).

    Raises:
        ValueError: If the method is unknown or its parameters are invalid.
    """
    if method == "iid":
        return iid_partition(labels, num_clients, seed)
    if method == "shards":
        return shard_partition(labels, num_clients, shards_per_client, seed)
    if method == "dirichlet":
        return dirichlet_partition(labels, num_clients, alpha, seed)
    raise ValueError(
        f"unknown partition {method!r}; expected one of {', '.join(PARTITION_NAMES)}"
    )


@dataclasses.dataclass(frozen=True)
class ClientSplit:
    """One client's examples, as indices into the data set's training arrays."""

    train_indices: np.ndarray
    test_indices: np.ndarray


@dataclasses.dataclass(frozen=True)
class FederatedData:
    """A data set split over clients, plus the whole central test set.

    Every client has its own train and test split drawn from its own
    distribution (personalized evaluation needs it); the central test set
    (``dataset.x_test``) is kept whole for the server.
    """

    dataset: Dataset
    clients: tuple[ClientSplit, ...]
    partition: str
    client_ids: tuple[str, ...] | None = None

    def client_id(self, client: int) -> str:
        """The client's id: the user's, or its index."""
        return str(client) if self.client_ids is None else self.client_ids[client]

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.clients)

    def fingerprint(self) -> str:
        """SHA-256 of the examples, labels and every client's split.

        Two runs see the same data exactly when their fingerprints agree
        (wherever the files were read from); a checkpoint records it.
        """
        digest = hashlib.sha256()
        dataset = self.dataset
        for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        for split in self.clients:
            for indices in (split.train_indices, split.test_indices):
                digest.update(np.ascontiguousarray(indices, np.int64).tobytes())
                digest.update(b"|")
        return digest.hexdigest()

    def client_train(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one client's training split."""
        indices = self.clients[client].train_indices
        return self.dataset.x_train[indices], self.dataset.y_train[indices]

    def client_test(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one client's own test split."""
        indices = self.clients[client].test_indices
        return self.dataset.x_train[indices], self.dataset.y_train[indices]

    def client_test_of_labels(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        """Every central test example of the labels the client trains on.

        The Sub-FedAvg reference code's client test set: clients holding the
        same labels share test images.
        """
        held = np.unique(self.dataset.y_train[self.clients[client].train_indices])
        chosen = np.isin(self.dataset.y_test, held)
        return self.dataset.x_test[chosen], self.dataset.y_test[chosen]

    def summary(self) -> list[dict[str, object]]:
        """One row per client: sizes and label counts of its train split."""
        rows = []
        labels = self.dataset.y_train
        for client, split in enumerate(self.clients):
            counts = np.bincount(
                labels[split.train_indices], minlength=self.dataset.num_classes
            )
            rows.append(
                {
                    "client": self.client_id(client),
                    "train_examples": int(split.train_indices.size),
                    "test_examples": int(split.test_indices.size),
                    "num_labels": int(np.count_nonzero(counts)),
                    "label_counts": " ".join(str(int(c)) for c in counts),
                }
            )
        return rows

    def format_summary(self, max_rows: int = 20) -> str:
        """The summary as an aligned text table (first ``max_rows`` clients)."""
        rows = self.summary()
        sizes = np.array([row["train_examples"] for row in rows])
        num_labels = np.array([row["num_labels"] for row in rows])
        lines = [
            f"{self.dataset.name}, {self.partition}: {self.num_clients} clients, "
            f"train examples per client min/median/max "
            f"{sizes.min()}/{int(np.median(sizes))}/{sizes.max()}, "
            f"labels per client min/median/max "
            f"{num_labels.min()}/{int(np.median(num_labels))}/{num_labels.max()}",
            f"{'client':>6} {'train':>6} {'test':>5} {'labels':>6}  label counts",
        ]
        for row in rows[:max_rows]:
            lines.append(
                f"{row['client']:>6} {row['train_examples']:>6} "
                f"{row['test_examples']:>5} {row['num_labels']:>6}  "
                f"{row['label_counts']}"
            )
        if len(rows) > max_rows:
            lines.append(f"... {len(rows) - max_rows} more clients")
        return "\n".join(lines)

    def write_summary(self, path: str | Path) -> None:
        """Writes the summary as CSV."""
        rows = self.summary()
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def split_client_examples(
    indices: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> ClientSplit:
    """Splits one client's examples into its own train and test parts.

    ``round(test_fraction * n)`` examples (at least one when ``n >= 2`` and the
    fraction is positive) go to the test part.
    """
    shuffled = rng.permutation(indices)
    num_test = int(round(test_fraction * shuffled.size))
    if test_fraction > 0 and shuffled.size >= 2:
        num_test = min(max(num_test, 1), shuffled.size - 1)
    return ClientSplit(
        train_indices=np.sort(shuffled[num_test:]),
        test_indices=np.sort(shuffled[:num_test]),
    )


def build_federated_data(
    dataset: Dataset,
    num_clients: int,
    partition: str = "iid",
    seed: int = 0,
    shards_per_client: int = 2,
    alpha: float = 0.5,
    client_test_fraction: float = 0.2,
    max_examples: int | None = None,
) -> FederatedData:
    """Splits a data set's training examples over clients.

    Args:
        dataset: The data set.
        num_clients: Number of clients.
        partition: ``iid``, ``shards`` or ``dirichlet``.
        seed: Seed for subsampling, partitioning and each client's split.
        shards_per_client: For ``shards``.
        alpha: For ``dirichlet``.
        client_test_fraction: Share of each client's examples held out as its
            own test split, in [0, 1).
        max_examples: If given, a seeded random subset of this many training
            examples is partitioned (for quick runs).

    Returns:
        The federated data.

    Raises:
        ValueError: For invalid parameters.
    """
    if not 0 <= client_test_fraction < 1:
        raise ValueError(
            f"client_test_fraction must be in [0, 1), got {client_test_fraction}"
        )
    rng = np.random.default_rng(seed)
    pool = np.arange(dataset.y_train.size)
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {max_examples}")
        if max_examples < pool.size:
            pool = np.sort(rng.choice(pool, size=max_examples, replace=False))
    parts = partition_indices(
        dataset.y_train[pool],
        num_clients,
        partition,
        seed=seed,
        shards_per_client=shards_per_client,
        alpha=alpha,
    )
    clients = tuple(
        split_client_examples(pool[part], client_test_fraction, rng) for part in parts
    )
    return FederatedData(dataset=dataset, clients=clients, partition=partition)
