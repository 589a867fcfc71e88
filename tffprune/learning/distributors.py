"""The distribute role: what each sampled client receives from the server.

`build_download_distributor` makes a ``tff.templates.MeasuredProcess``: the
server broadcasts its weights and each client decodes its download from them,
the TFF twin of what `tffprune.compression.wire` sends:

* Sub-FedAvg (``personal``): the client's own subnetwork, the server's
  values at the client's mask, in the download's value format;
* FedAvg: the model's nonzeros in that format.

Non-trainable weights (BatchNorm statistics) go whole. Its state counts the
rounds it has distributed (FedAvg's pruning schedule reads it). The exact
download bytes are the codec's, counted on the driver
(`tffprune.fl.algorithm`), since they depend on what each client already
holds.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.compression.tf_values import transmitted
from tffprune.compression.wire import VALUE_FORMATS
from tffprune.fl.messages import Download
from tffprune.pruning.packed_masks import unpack_tf


def build_download_distributor(
    weights_type: tff.Type,
    client_input_type: tff.Type,
    download_values: str = "float32",
    personal: bool = True,
) -> tff.templates.MeasuredProcess:
    """The distributor of a round.

    Args:
        weights_type: The server weights' type (trainable then non-trainable).
        client_input_type: The type of a client's `ClientInput`.
        download_values: The download's value format
            (`tffprune.compression.wire.VALUE_FORMATS`).
        personal: Send each client its own subnetwork (Sub-FedAvg); else the
            model's nonzeros.

    Returns:
        A process with ``initialize() -> int32@SERVER`` (rounds distributed)
        and ``next(state, weights@SERVER, clients@CLIENTS) -> (state,
        Download@CLIENTS, <>@SERVER)``.

    Raises:
        ValueError: On an unknown value format.
    """
    if download_values not in VALUE_FORMATS:
        raise ValueError(
            f"unknown download value format {download_values!r}; expected one of "
            f"{', '.join(VALUE_FORMATS)}"
        )
    num_trainable = len(client_input_type.mask)

    @tff.tensorflow.computation(weights_type, client_input_type)
    def download(weights, client):
        weights = list(weights)
        trainable = weights[:num_trainable]
        kept = (
            [unpack_tf(m, w.shape) for m, w in zip(client.mask, trainable, strict=True)]
            if personal
            else [w != 0 for w in trainable]
        )
        positions = kept + [tf.ones_like(w, tf.bool) for w in weights[num_trainable:]]
        received = [
            transmitted(w, p, download_values)
            for w, p in zip(weights, positions, strict=True)
        ]
        # A float32 download is the server's copy at the positions sent (and
        # 0 where the server's value is 0): no second copy crosses.
        lossless = download_values == "float32"
        return Download(received=received, server=[] if lossless else weights)

    initialize, count = build_round_counter()

    @tff.federated_computation(
        initialize.type_signature.result,
        tff.FederatedType(weights_type, tff.SERVER),
        tff.FederatedType(client_input_type, tff.CLIENTS),
    )
    def next_fn(state, weights, clients):
        received = tff.federated_map(
            download, (tff.federated_broadcast(weights), clients)
        )
        return tff.templates.MeasuredProcessOutput(
            state=tff.federated_map(count, state),
            result=received,
            measurements=tff.federated_value(collections.OrderedDict(), tff.SERVER),
        )

    return tff.templates.MeasuredProcess(initialize, next_fn)


def build_round_counter() -> tuple[tff.Computation, tff.Computation]:
    """A distributor's state, the rounds it has distributed.

    Returns:
        ``initialize() -> 0@SERVER`` and the TF computation ``count(rounds)
        -> rounds + 1``.
    """

    @tff.tensorflow.computation(np.int32)
    def count(rounds):
        return rounds + 1

    @tff.federated_computation()
    def initialize():
        return tff.federated_value(np.int32(0), tff.SERVER)

    return initialize, count
