"""The client-work role: local training, pruning and the encoded upload.

`build_pruning_client_work` wraps the client's TensorFlow work
(`tffprune.fl.client.build_client_work_fn`) as a ``tff.templates.
MeasuredProcess``. Unlike TFF's ``ClientWorkProcess`` it takes each client's
own state (`tffprune.fl.messages.ClientInput`: its mask, pruning step and
residual files) and returns, per client, its upload for the aggregator and
its `ClientOutput` (new mask, costs) for the caller: Sub-FedAvg's personal
state, which TFF's templates have no place for.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.client import ClientWorkConfig, build_client_work_fn
from tffprune.learning.optimizers import in_place


def build_pruning_client_work(
    model_fn: Callable[[], tf.keras.Model],
    client_optimizer: tff.learning.optimizers.Optimizer,
    work: ClientWorkConfig,
    download_type: tff.Type,
    client_input_type: tff.Type,
    dataset_type: tff.SequenceType,
) -> tff.templates.MeasuredProcess:
    """The client work of a round.

    Args:
        model_fn: Builds a new Keras model (no arguments).
        client_optimizer: The local optimizer, started afresh each round
            (TFF's SGD runs in place: `tffprune.learning.optimizers.in_place`).
        work: Pruning method, guards, upload format and error feedback.
        download_type: The type of a client's `Download`.
        client_input_type: The type of a client's `ClientInput`.
        dataset_type: The type of a client's dataset.

    Returns:
        The `build_client_work` process of tffprune's client round.
    """

    @tff.tensorflow.computation(download_type, client_input_type, dataset_type)
    def client_round(download, client, dataset):
        run = build_client_work_fn(model_fn, in_place(client_optimizer), work)
        return run(download, client, dataset)

    return build_client_work(client_round)


def build_client_work(client_round: tff.Computation) -> tff.templates.MeasuredProcess:
    """A client's round as the client-work role (a variant's client work too).

    Args:
        client_round: A ``tff.tensorflow.computation`` ``(download,
            client_input, dataset) -> (upload, ClientOutput)``: what one
            client does with its `Download`, its `ClientInput` and its data;
            ``upload`` is what the aggregator takes.

    Returns:
        A process with an empty state and ``next(state, downloads@CLIENTS,
        clients@CLIENTS, datasets@CLIENTS) -> (state, (upload,
        ClientOutput)@CLIENTS, <num_examples, train_loss>@SERVER)``, the
        measurements summed over the clients from their outputs.
    """
    download_type, client_input_type, dataset_type = (
        client_round.type_signature.parameter
    )
    output_type = client_round.type_signature.result[1]

    @tff.tensorflow.computation(output_type)
    def costs(output):
        return output.num_examples, output.loss_sum

    @tff.tensorflow.computation(costs.type_signature.result)
    def measure(sums):
        num_examples, loss_sum = sums
        return collections.OrderedDict(
            num_examples=num_examples,
            train_loss=tf.math.divide_no_nan(
                loss_sum, tf.cast(num_examples, tf.float32)
            ),
        )

    @tff.federated_computation()
    def initialize():
        return tff.federated_value((), tff.SERVER)

    @tff.federated_computation(
        initialize.type_signature.result,
        tff.FederatedType(download_type, tff.CLIENTS),
        tff.FederatedType(client_input_type, tff.CLIENTS),
        tff.FederatedType(dataset_type, tff.CLIENTS),
    )
    def next_fn(state, downloads, clients, datasets):
        results = tff.federated_map(client_round, (downloads, clients, datasets))
        # A selection, not a computation returning the part (that copied it).
        sums = tff.federated_sum(tff.federated_map(costs, results[1]))
        return tff.templates.MeasuredProcessOutput(
            state=state,
            result=results,
            measurements=tff.federated_map(measure, sums),
        )

    return tff.templates.MeasuredProcess(initialize, next_fn)
