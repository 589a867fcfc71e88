"""A round that reads its clients' examples from files, composed with TFF's own tool.

`with_client_files` takes any of this package's processes (whose ``next``
takes the clients' batched datasets at CLIENTS) and returns the same process
taking, per client, a `CLIENT_FILE` reference instead: the path of a file of
the client's examples (`tffprune.data.client_files`) and the order to visit
them in. Each client's dataset is built where the client runs, by
`client_file_dataset`, mapped over the clients ahead of the round
(``tff.simulation.compose_dataset_computation_with_iterative_process``):
the round is unchanged, only what crosses to the workers is.

For a loop of your own::

    files = ClientFiles(lambda c: (x[c], y[c]), input_spec)
    process = with_client_files(build_sub_fedavg(...), input_spec, batch_size=32)
    state, outputs, metrics = process.next(
        state, inputs, [files.reference(c, seed, epochs=1) for c in sampled]
    )
"""

from __future__ import annotations

import numpy as np
import tensorflow_federated as tff

from tffprune.data.client_files import ElementSpec, ordered_dataset

__all__ = ["CLIENT_FILE", "client_file_dataset", "with_client_files"]

CLIENT_FILE = tff.StructType(
    [("path", np.str_), ("order", tff.TensorType(np.int32, [None]))]
)
"""A client's data in a round: its file's path, its examples' order (int32)."""


def client_file_dataset(input_spec: ElementSpec, batch_size: int) -> tff.Computation:
    """``CLIENT_FILE -> dataset``: a client's batches, read from its file.

    Args:
        input_spec: The element spec of the clients' batched datasets.
        batch_size: Examples a batch (the last one may be smaller).
    """

    @tff.tensorflow.computation(CLIENT_FILE)
    def dataset(reference):
        return ordered_dataset(reference.path, reference.order, input_spec, batch_size)

    return dataset


def with_client_files(
    process: tff.templates.IterativeProcess, input_spec: ElementSpec, batch_size: int
) -> tff.templates.IterativeProcess:
    """``process`` with each client's dataset given as a `CLIENT_FILE` reference.

    Args:
        process: A process whose ``next`` takes the clients' datasets of
            ``input_spec`` at CLIENTS (one argument of that type).
        input_spec: That element spec.
        batch_size: Examples a batch.

    Returns:
        The same process; its ``next`` takes ``CLIENT_FILE@CLIENTS`` where
        ``process.next`` took the datasets. A process with helpers of its own
        keeps them if it has a ``with_computations(composed)`` that returns
        itself around ``composed``'s computations (a `FedPMProcess` does: its
        ``inputs`` and ``model_weights`` serve the composed process alike).
    """
    composed = tff.simulation.compose_dataset_computation_with_iterative_process(
        client_file_dataset(input_spec, batch_size), process
    )
    rewrap = getattr(process, "with_computations", None)
    return composed if rewrap is None else rewrap(composed)
