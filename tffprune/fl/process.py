"""The TFF computations of a round.

Only this module, `runtime` and `tff_aggregation` import TFF.

One round of FedAvg / Sub-FedAvg with pruned clients::

      SERVER                          CLIENTS (k = 1..K sampled)
    weights w ───federated_broadcast──► w
                                        │ client_work (TFF, per client):
                                        │   start from w ⊙ m_k, SGD with
                                        │   gradients ⊙ m_k  -> x_k, n_k
                                        ▼
                         driver, per client (the client's upload step):
                           prune x_k -> new mask m_k' (NumPy masks),
                           encode (x_k ⊙ m_k', m_k') ──wire──► decode
                                        │
                                        ▼ aggregate (TFF):
    w' = Σ n_k m_k x_k / Σ n_k m_k  ◄──federated_sum── (n_k m_k x_k, n_k m_k)
         (w kept where Σ n_k m_k = 0)

Two TFF computations per round: `FederatedProcess.client_work` (broadcast and
local training; trained weights return to the driver as client-placed values,
so personal per-client state such as masks lives with the driver, keyed by
client id) and `FederatedProcess.aggregate` (the masked mean, through
`MaskedMeanFactory`'s aggregation process, then the server update). The
pruning and the encoding between them are the clients' own steps, run by the
driver for each simulated client; their cost and bytes are counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.client import ClientOptimizerConfig, build_client_train_fn
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
    """

    def __init__(
        self,
        model_fn: Callable[[], tf.keras.Model],
        element_spec: tuple[tf.TensorSpec, tf.TensorSpec],
        optimizer: ClientOptimizerConfig,
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
        self.num_trainable = num_trainable

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
