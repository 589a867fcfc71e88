"""The TFF computations of a round.

Only this module, `runtime` and `tff_aggregation` import TFF.

One round of FedAvg / Sub-FedAvg with pruned clients (`run_round`, one TFF
computation; the driver passes masks m_k and prune counts in, gets the new
masks m_k' and w' out)::

      SERVER                          CLIENTS (k = 1..K sampled)
    weights w ───federated_broadcast──► w
                                        │ per client, in TensorFlow:
                                        │   start from w ⊙ m_k, SGD with
                                        │   gradients ⊙ m_k  -> x_k, n_k
                                        │   prune x_k -> m_k' (tf_masks)
                                        │   x̂_k = x_k ⊙ m_k' as the server
                                        │        decodes it (tf_values)
                                        ▼ MaskedMeanFactory:
    w' = Σ n_k m_k' x̂_k / Σ n_k m_k'  ◄──federated_sum── (n_k m_k' x̂_k, n_k m_k')
         (w kept where Σ n_k m_k' = 0)

Two ways to run it:

* `FederatedProcess.run_round`, one TFF computation per round (the default for
  magnitude pruning): broadcast, and per client training, magnitude pruning
  (`tffprune.pruning.tf_masks`) and the upload's value format
  (`tffprune.compression.tf_values`) in TensorFlow, then the masked mean and
  the server update. Only the masks and a few numbers per client come back
  to the driver (the personal state), never the trained weights; upload
  bytes are counted exactly from the masks (`wire.encoded_size`).
* `FederatedProcess.client_work` then `FederatedProcess.aggregate`, two TFF
  computations with the pruning and the real encode/decode between them, run
  by the driver in NumPy for each simulated client (every pruning method,
  the accuracy guard, payload checks; `--verify-uploads`). This is the
  reference the fused round is tested against.

Personal per-client state such as masks lives with the driver, keyed by
client id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.client import (
    ClientOptimizerConfig,
    build_client_train_fn,
    build_client_update_fn,
)
from tffprune.fl.runtime import ensure_runtime
from tffprune.fl.tff_aggregation import MaskedMeanFactory


@dataclasses.dataclass
class ClientOutput:
    """What one client's local training returns to the driver.

    Attributes:
        trainable: Trained trainable weights.
        non_trainable: Non-trainable weights (e.g. BatchNorm statistics).
        num_examples: Examples seen in training (over all epochs).
        mean_loss: Mean training loss over those examples.
    """

    trainable: list[np.ndarray]
    non_trainable: list[np.ndarray]
    num_examples: int
    mean_loss: float


@dataclasses.dataclass
class ClientReport:
    """What the driver learns from one client in a fused round.

    Attributes:
        masks: The client's new boolean masks (trainable weights).
        num_examples: Examples seen in training (over all epochs).
        mean_loss: Mean training loss over those examples.
        finite: False if training produced NaN or Inf (the upload was dropped).
        zero_kept: Per weight (all), whether a kept value is exactly 0.
    """

    masks: list[np.ndarray]
    num_examples: int
    mean_loss: float
    finite: bool
    zero_kept: list[bool]


@dataclasses.dataclass(frozen=True)
class FusedRoundSettings:
    """What a fused round needs to know about the upload.

    Attributes:
        value_format: ``float32``, ``float16`` or ``int8``.
        aggregation: ``fedavg`` or ``subfedavg``.
        weight_by_examples: Weight uploads by examples seen (else uniformly).
    """

    value_format: str
    aggregation: str
    weight_by_examples: bool


@dataclasses.dataclass
class ClientUpload:
    """What the server receives from one client (after decoding).

    Attributes:
        values: All weights (trainable then non-trainable); pruned entries are
            ignored by the aggregation.
        masks: One mask per weight (True kept); non-trainable weights all-True.
        weight: The client's aggregation weight (1, or its example count).
    """

    values: list[np.ndarray]
    masks: list[np.ndarray]
    weight: float


def _tensor_types(
    shapes: Sequence[tuple[int, ...]], dtype: type = np.float32
) -> tff.StructWithPythonType:
    return tff.StructWithPythonType(
        [tff.TensorType(dtype, shape) for shape in shapes], list
    )


class FederatedProcess:
    """Builds and runs a round's TFF computations for one model architecture.

    Args:
        model_fn: Builds a fresh Keras model (no arguments).
        element_spec: ``(images, labels)`` batch spec of the client datasets.
        optimizer: Client optimizer settings.
        fused: Settings of the one-computation round (`run_round`); without
            them only `client_work` and `aggregate` are built.
    """

    def __init__(
        self,
        model_fn: Callable[[], tf.keras.Model],
        element_spec: tuple[tf.TensorSpec, tf.TensorSpec],
        optimizer: ClientOptimizerConfig,
        fused: FusedRoundSettings | None = None,
    ) -> None:
        # Never let TFF start its own (self-orphaning) default worker.
        ensure_runtime()
        reference = model_fn()
        self.trainable_shapes = [tuple(w.shape) for w in reference.trainable_weights]
        self.non_trainable_shapes = [
            tuple(w.shape) for w in reference.non_trainable_weights
        ]
        # Masks cross into TFF as booleans: a quarter of the bytes of float32.
        mask_type = _tensor_types(self.trainable_shapes, np.bool_)
        all_mask_type = _tensor_types(
            self.trainable_shapes + self.non_trainable_shapes, np.bool_
        )
        all_type = _tensor_types(self.trainable_shapes + self.non_trainable_shapes)
        dataset_type = tff.SequenceType(tff.types.tensorflow_to_type(element_spec))
        num_trainable = len(self.trainable_shapes)

        @tff.tensorflow.computation(all_type, mask_type, dataset_type)
        def train_on_client(weights, masks, dataset):
            train = build_client_train_fn(model_fn, optimizer)
            return train(
                list(weights[:num_trainable]),
                list(weights[num_trainable:]),
                [tf.cast(mask, tf.float32) for mask in masks],
                dataset,
            )

        @tff.federated_computation(
            tff.FederatedType(all_type, tff.SERVER),
            tff.FederatedType(mask_type, tff.CLIENTS),
            tff.FederatedType(dataset_type, tff.CLIENTS),
        )
        def client_work(server_weights, masks, datasets):
            broadcast = tff.federated_broadcast(server_weights)
            return tff.federated_map(train_on_client, (broadcast, masks, datasets))

        upload_type = tff.StructWithPythonType(
            [all_type, all_mask_type, tff.TensorType(np.float32)], tuple
        )
        aggregation = MaskedMeanFactory().create(upload_type)

        @tff.tensorflow.computation(
            all_type, aggregation.next.type_signature.result.result.member
        )
        def server_update(weights, aggregate):
            means, coverage = aggregate
            return [
                tf.where(covered > 0, mean, weight)
                for weight, mean, covered in zip(weights, means, coverage, strict=True)
            ]

        @tff.federated_computation(
            tff.FederatedType(all_type, tff.SERVER),
            tff.FederatedType(upload_type, tff.CLIENTS),
        )
        def aggregate(server_weights, uploads):
            output = aggregation.next(aggregation.initialize(), uploads)
            return tff.federated_map(
                server_update, tff.federated_zip((server_weights, output.result))
            )

        self._client_work = client_work
        self._aggregate = aggregate
        self._aggregation = aggregation
        self._server_update = server_update
        self.num_trainable = num_trainable
        self._round = None
        if fused is not None:
            self._round = self._build_round(
                model_fn, optimizer, fused, all_type, mask_type, dataset_type
            )

    def _build_round(
        self,
        model_fn: Callable[[], tf.keras.Model],
        optimizer: ClientOptimizerConfig,
        fused: FusedRoundSettings,
        all_type: tff.Type,
        mask_type: tff.Type,
        dataset_type: tff.Type,
    ) -> tff.Computation:
        num_trainable = self.num_trainable
        counts_type = tff.TensorType(np.int32, [num_trainable])
        delivered_type = tff.TensorType(np.bool_)

        @tff.tensorflow.computation(
            all_type, mask_type, counts_type, delivered_type, dataset_type
        )
        def update_on_client(weights, masks, num_pruned, delivered, dataset):
            update = build_client_update_fn(
                model_fn,
                optimizer,
                fused.value_format,
                fused.aggregation,
                fused.weight_by_examples,
            )
            return update(
                list(weights[:num_trainable]),
                list(weights[num_trainable:]),
                list(masks),
                num_pruned,
                delivered,
                dataset,
            )

        aggregation = self._aggregation
        server_update = self._server_update

        @tff.tensorflow.computation(update_on_client.type_signature.result)
        def upload_of(output):
            return output[0]

        @tff.tensorflow.computation(update_on_client.type_signature.result)
        def report_of(output):
            return output[1]

        @tff.federated_computation(
            tff.FederatedType(all_type, tff.SERVER),
            tff.FederatedType(mask_type, tff.CLIENTS),
            tff.FederatedType(counts_type, tff.CLIENTS),
            tff.FederatedType(delivered_type, tff.CLIENTS),
            tff.FederatedType(dataset_type, tff.CLIENTS),
        )
        def run_round(server_weights, masks, num_pruned, delivered, datasets):
            broadcast = tff.federated_broadcast(server_weights)
            outputs = tff.federated_map(
                update_on_client, (broadcast, masks, num_pruned, delivered, datasets)
            )
            aggregated = aggregation.next(
                aggregation.initialize(), tff.federated_map(upload_of, outputs)
            )
            new_weights = tff.federated_map(
                server_update, tff.federated_zip((server_weights, aggregated.result))
            )
            return new_weights, tff.federated_map(report_of, outputs)

        return run_round

    def run_round(
        self,
        server_weights: Sequence[np.ndarray],
        client_masks: Sequence[Sequence[np.ndarray]],
        num_pruned: Sequence[Sequence[int]],
        delivered: Sequence[bool],
        datasets: Sequence[tf.data.Dataset],
    ) -> tuple[list[np.ndarray], list[ClientReport]]:
        """One whole round in one TFF call (needs ``fused`` settings).

        Args:
            server_weights: All weights (trainable then non-trainable).
            client_masks: Per client, one boolean mask per trainable weight.
            num_pruned: Per client, per trainable weight, the entries its new
                mask prunes (nested in its mask; 0 keeps the mask).
            delivered: Per client, False if its upload is lost.
            datasets: Per client, its batched training data for this round.

        Returns:
            The new server weights and one `ClientReport` per client.
        """
        if self._round is None:
            raise RuntimeError("this process was built without fused settings")
        ensure_runtime()
        masks = [[np.asarray(m, np.bool_) for m in ms] for ms in client_masks]
        counts = [np.asarray(c, np.int32) for c in num_pruned]
        new_weights, reports = self._round(
            list(server_weights),
            masks,
            counts,
            [np.bool_(d) for d in delivered],
            list(datasets),
        )
        results = []
        for new_masks, num_examples, loss_sum, finite, zero_kept in reports:
            count = int(num_examples)
            results.append(
                ClientReport(
                    masks=[np.asarray(m, bool) for m in new_masks],
                    num_examples=count,
                    mean_loss=float(loss_sum) / count if count else float("nan"),
                    finite=bool(finite),
                    zero_kept=[bool(z) for z in zero_kept],
                )
            )
        return [np.asarray(w) for w in new_weights], results

    def client_work(
        self,
        server_weights: Sequence[np.ndarray],
        client_masks: Sequence[Sequence[np.ndarray]],
        datasets: Sequence[tf.data.Dataset],
    ) -> list[ClientOutput]:
        """Broadcasts the server weights and trains every client (one TFF call).

        Args:
            server_weights: All weights (trainable then non-trainable).
            client_masks: Per client, one boolean mask per trainable weight.
            datasets: Per client, its batched training data for this round.

        Returns:
            One `ClientOutput` per client, in order.
        """
        ensure_runtime()
        masks = [[np.asarray(m, np.bool_) for m in ms] for ms in client_masks]
        results = self._client_work(list(server_weights), masks, list(datasets))
        outputs = []
        for trainable, non_trainable, num_examples, loss_sum in results:
            count = int(num_examples)
            outputs.append(
                ClientOutput(
                    trainable=[np.asarray(w) for w in trainable],
                    non_trainable=[np.asarray(w) for w in non_trainable],
                    num_examples=count,
                    mean_loss=float(loss_sum) / count if count else float("nan"),
                )
            )
        return outputs

    def aggregate(
        self, server_weights: Sequence[np.ndarray], uploads: Sequence[ClientUpload]
    ) -> list[np.ndarray]:
        """Masked mean of the uploads; entries no client kept stay as they were.

        Args:
            server_weights: Current server weights (all).
            uploads: The decoded client uploads (at least one).

        Returns:
            The new server weights.
        """
        if not uploads:
            raise ValueError("no client uploads to aggregate")
        ensure_runtime()
        values = [
            (
                [np.asarray(v, np.float32) for v in upload.values],
                [np.asarray(m, np.bool_) for m in upload.masks],
                np.float32(upload.weight),
            )
            for upload in uploads
        ]
        result = self._aggregate(list(server_weights), values)
        return [np.asarray(w) for w in result]
