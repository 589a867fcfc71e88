"""The round as one TFF computation, composed of its four roles.

Only this module, `runtime` and `tff_aggregation` import TFF.

A round of FedAvg / Sub-FedAvg with pruned clients. The driver passes the
server state and, per sampled client, its mask m_k, pruning counts c_k and
(with error feedback) the names of the files its residual e_k is read from
and e_k' written to (`tffprune.fl.residual_store`); it gets the new server
state and, per client, its new mask m_k' and a few numbers back (the trained
weights and the residuals never leave the runtime)::

      SERVER                          CLIENTS (k = 1..K sampled)
    weights w ─────── distribute ────► w          (federated_broadcast)
                                       │ client work, in TensorFlow
                                       │ (tffprune.fl.client):
                                       │   start from w ⊙ m_k, SGD with
                                       │   gradients ⊙ m_k  -> x_k, n_k
                                       │   prune x_k -> m_k' (tf_masks, c_k)
                                       │   guard: m_k' = m_k if accuracy low
                                       │   update u_k = (x_k - w_k) ⊙ m_k',
                                       │   sent as Q(u_k + e_k) (tf_values),
                                       │   x̂_k = w_k + Q(u_k + e_k) as the
                                       │        server rebuilds it
                                       ▼ aggregate (tff_aggregation):
    (mean, coverage) ◄──── MaskedMeanFactory (x̂_k, m_k', n_k)   Sub-FedAvg
                      ◄── WeightedMeanFactory (x̂_k, n_k)         FedAvg
    finalize: w' = mean where coverage > 0, else w

Every pruning method, schedule and the accuracy guard run inside this one
computation; an algorithm is a choice of these parts (`RoundParts`). Personal
per-client state (masks, own models) lives with the driver, keyed by client,
and is passed in for the sampled clients only (`tffprune.fl.algorithm`);
residuals live in the clients' files.
"""

from __future__ import annotations

import dataclasses
import errno
import re
from collections.abc import Callable, Sequence

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.compression.compact import CompactTensors, at_positions
from tffprune.fl.client import (
    ClientOptimizerConfig,
    ClientWorkConfig,
    build_client_work_fn,
)
from tffprune.fl.runtime import ensure_runtime
from tffprune.fl.tff_aggregation import build_aggregator


@dataclasses.dataclass
class ClientReport:
    """What the driver learns from one client in a round.

    Attributes:
        masks: The client's new boolean masks (trainable weights).
        num_examples: Examples seen in training (over all epochs).
        mean_loss: Mean training loss over those examples.
        finite: False if training produced NaN or Inf (the upload was dropped).
        zero_kept: Per weight (all), whether a value sent is exactly 0.
        personal: With ``personal_models``, the client's own model after
            training and pruning (all weights, at its new masks); else None.
        mask_distance: The mask-distance rule's distance between its early
            and final candidate masks; None when the rule did not apply.
        values: With ``return_values``: the update as encoded, before the
            value format (all weights), for the real codec to check.
    """

    masks: list[np.ndarray]
    num_examples: int
    mean_loss: float
    finite: bool
    zero_kept: list[bool]
    personal: CompactTensors | None = None
    mask_distance: float | None = None
    values: list[np.ndarray] | None = None


@dataclasses.dataclass
class RoundOutput:
    """One round's result as the driver sees it."""

    weights: list[np.ndarray]
    aggregator_state: object
    measurements: dict[str, float]
    reports: list[ClientReport]


@dataclasses.dataclass(frozen=True)
class RoundParts:
    """The choices that make an algorithm.

    Attributes:
        model_fn: Builds a fresh Keras model (no arguments).
        element_spec: ``(inputs, labels)`` batch spec of the client datasets.
        optimizer: Client optimizer settings.
        client_work: Pruning, upload format and guard of the client work.
    """

    model_fn: Callable[[], tf.keras.Model]
    element_spec: tuple[tf.TensorSpec, tf.TensorSpec]
    optimizer: ClientOptimizerConfig
    client_work: ClientWorkConfig


_FILE_FAILURE = re.compile(
    r"Failed to run computation: (?P<path>[^;\n]+); (?P<reason>[^\n]+)"
    r".*\{\{node (?:ReadFile|WriteFile)\}\}",
    re.DOTALL,
)


def _file_error(error: grpc.RpcError) -> OSError | None:
    """A residual file the round could not read or write, as an `OSError`.

    A full disk, a missing directory, or a remote worker that does not see
    the run directory fail the round inside the TFF worker; the driver gets
    them as a gRPC error. None for any other failure.
    """
    details = error.details() if callable(getattr(error, "details", None)) else ""
    match = _FILE_FAILURE.search(details or "")
    if match is None:
        return None
    return OSError(errno.EIO, match["reason"].strip(), match["path"])


def _tensor_types(
    shapes: Sequence[tuple[int, ...]], dtype: type = np.float32
) -> tff.StructWithPythonType:
    return tff.StructWithPythonType(
        [tff.TensorType(dtype, shape) for shape in shapes], list
    )


class RoundProcess:
    """Builds and runs the round computation for one model architecture.

    Args:
        parts: The algorithm's parts.
    """

    def __init__(self, parts: RoundParts) -> None:
        # Never let TFF start its own (self-orphaning) default worker.
        ensure_runtime()
        reference = parts.model_fn()
        self.trainable_shapes = [tuple(w.shape) for w in reference.trainable_weights]
        self.non_trainable_shapes = [
            tuple(w.shape) for w in reference.non_trainable_weights
        ]
        num_trainable = len(self.trainable_shapes)
        self.num_trainable = num_trainable
        self.return_values = parts.client_work.return_values
        self.error_feedback = parts.client_work.error_feedback
        self.personal_models = parts.client_work.personal_models
        all_shapes = self.trainable_shapes + self.non_trainable_shapes
        weights_type = _tensor_types(all_shapes)
        # With error feedback, the names of the files a client reads its
        # residual from and writes its new one to; else nothing.
        residual_type = tff.StructWithPythonType(
            [tff.TensorType(np.str_)] * 2 if self.error_feedback else [], tuple
        )
        # Masks cross into TFF as booleans: a quarter of the bytes of float32.
        mask_type = _tensor_types(self.trainable_shapes, np.bool_)
        counts_type = tff.StructWithPythonType(
            [
                tff.TensorType(np.int32, [num_trainable]),
                tff.TensorType(np.int32, [num_trainable]),
                tff.TensorType(np.int32),
                tff.TensorType(np.int32),
            ],
            tuple,
        )
        dataset_type = tff.SequenceType(
            tff.types.tensorflow_to_type(parts.element_spec)
        )

        @tff.tensorflow.computation(
            weights_type,
            mask_type,
            counts_type,
            tff.TensorType(np.bool_),
            residual_type,
            dataset_type,
        )
        def client_work(weights, masks, counts, delivered, residual_files, dataset):
            work = build_client_work_fn(
                parts.model_fn, parts.optimizer, parts.client_work
            )
            return work(
                list(weights[:num_trainable]),
                list(weights[num_trainable:]),
                list(masks),
                tuple(counts),
                delivered,
                tuple(residual_files),
                dataset,
            )

        @tff.tensorflow.computation(client_work.type_signature.result)
        def upload_of(output):
            return output[0]

        @tff.tensorflow.computation(client_work.type_signature.result)
        def report_of(output):
            return output[1]

        aggregation = build_aggregator(parts.client_work.masked_upload).create(
            upload_of.type_signature.result
        )

        @tff.tensorflow.computation(
            weights_type, aggregation.next.type_signature.result.result.member
        )
        def finalize(weights, aggregate):
            means, coverage = aggregate
            return [
                tf.where(covered > 0, mean, weight)
                for weight, mean, covered in zip(weights, means, coverage, strict=True)
            ]

        @tff.federated_computation(
            tff.FederatedType(weights_type, tff.SERVER),
            aggregation.initialize.type_signature.result,
            tff.FederatedType(mask_type, tff.CLIENTS),
            tff.FederatedType(counts_type, tff.CLIENTS),
            tff.FederatedType(tff.TensorType(np.bool_), tff.CLIENTS),
            tff.FederatedType(residual_type, tff.CLIENTS),
            tff.FederatedType(dataset_type, tff.CLIENTS),
        )
        def next_round(
            weights, aggregator_state, masks, counts, delivered, residuals, datasets
        ):
            received = tff.federated_broadcast(weights)
            outputs = tff.federated_map(
                client_work, (received, masks, counts, delivered, residuals, datasets)
            )
            aggregated = aggregation.next(
                aggregator_state, tff.federated_map(upload_of, outputs)
            )
            new_weights = tff.federated_map(
                finalize, tff.federated_zip((weights, aggregated.result))
            )
            return (
                new_weights,
                aggregated.state,
                aggregated.measurements,
                tff.federated_map(report_of, outputs),
            )

        self._initialize = aggregation.initialize
        self._next = next_round

    def initialize_aggregator(self) -> object:
        """The aggregator's initial state."""
        ensure_runtime()
        return self._initialize()

    def next(
        self,
        weights: Sequence[np.ndarray],
        aggregator_state: object,
        client_masks: Sequence[Sequence[np.ndarray]],
        counts: Sequence[tuple],
        delivered: Sequence[bool],
        datasets: Sequence[tf.data.Dataset],
        residual_files: Sequence[tuple[str, str]] | None = None,
    ) -> RoundOutput:
        """Runs one round (one TFF call).

        Args:
            weights: Server weights (trainable then non-trainable).
            aggregator_state: From `initialize_aggregator` or the last round.
            client_masks: Per client, one boolean mask per trainable weight.
            counts: Per client, `PruningCounts.as_tensors()`.
            delivered: Per client, False if its upload is lost.
            datasets: Per client, its batched training data for this round.
            residual_files: With error feedback, per client, the path of
                the file holding its residual ("" for none: zeros) and the
                path its new residual is written to; ignored otherwise.

        Returns:
            The new weights and aggregator state, the aggregator's
            measurements and one `ClientReport` per client.
        """
        ensure_runtime()
        masks = [[np.asarray(m, np.bool_) for m in ms] for ms in client_masks]
        buffers = [np.ones(s, np.bool_) for s in self.non_trainable_shapes]
        if not self.error_feedback:
            files = [() for _ in masks]
        elif residual_files is None or len(residual_files) != len(masks):
            raise ValueError("error feedback needs residual files for every client")
        else:
            files = [(str(read), str(write)) for read, write in residual_files]
        try:
            new_weights, state, measurements, reports = self._next(
                list(weights),
                aggregator_state,
                masks,
                [tuple(c) for c in counts],
                [np.bool_(d) for d in delivered],
                files,
                list(datasets),
            )
        except grpc.RpcError as error:
            raise _file_error(error) or error from None
        results = []
        for report in reports:
            new_masks, num_examples, loss_sum, finite, zero_kept = report[:5]
            count = int(num_examples)
            new_masks = [np.asarray(m, bool) for m in new_masks]
            results.append(
                ClientReport(
                    masks=new_masks,
                    num_examples=count,
                    mean_loss=float(loss_sum) / count if count else float("nan"),
                    finite=bool(finite),
                    zero_kept=[bool(z) for z in zero_kept],
                    personal=at_positions(new_masks + buffers, report[6])
                    if self.personal_models
                    else None,
                    mask_distance=float(report[7]) if report[7] >= 0 else None,
                    values=[np.asarray(v) for v in report[8]]
                    if self.return_values
                    else None,
                )
            )
        return RoundOutput(
            weights=[np.asarray(w) for w in new_weights],
            aggregator_state=state,
            measurements={k: float(v) for k, v in measurements.items()},
            reports=results,
        )
