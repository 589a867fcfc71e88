"""Data sets by name, and their split over federated clients."""

from tffprune.data.datasets import DATASET_NAMES, Dataset, load_dataset
from tffprune.data.formats import DataError, read_cifar_batch, read_idx, read_npz
from tffprune.data.partition import (
    PARTITION_NAMES,
    ClientSplit,
    FederatedData,
    build_federated_data,
    dirichlet_partition,
    iid_partition,
    partition_indices,
    shard_partition,
)

__all__ = [
    "DATASET_NAMES",
    "PARTITION_NAMES",
    "ClientSplit",
    "DataError",
    "Dataset",
    "FederatedData",
    "build_federated_data",
    "dirichlet_partition",
    "iid_partition",
    "load_dataset",
    "partition_indices",
    "read_cifar_batch",
    "read_idx",
    "read_npz",
    "shard_partition",
]
