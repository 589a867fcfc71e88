"""Data: your arrays or a TFF ClientData, named data sets, splits over clients."""

from tffprune.data.arrays import from_arrays, from_client_arrays, from_client_data
from tffprune.data.datasets import (
    DATASET_NAMES,
    Dataset,
    load_dataset,
    load_npz_dataset,
)
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
    "from_arrays",
    "from_client_arrays",
    "from_client_data",
    "iid_partition",
    "load_dataset",
    "load_npz_dataset",
    "partition_indices",
    "read_cifar_batch",
    "read_idx",
    "read_npz",
    "shard_partition",
]
