"""Client training with masks held at zero (TensorFlow; no TFF).

One client's local work, as TFF's FedAvg client does it, plus masks: start
from the broadcast weights times the client's mask, run SGD with momentum over
the client's batches with every gradient multiplied by the mask, and return
the trained weights and the number of examples seen.

With all-ones masks this is exactly TFF's ``build_weighted_fed_avg`` client
update (same forward pass, same loss, same SGD-momentum rule
``a = momentum * a + g; w = w - learning_rate * a``), which is what makes
``fedavg`` match TFF's own implementation. Masked gradients keep pruned weights
at exactly zero: their gradient, momentum and update are all zero.

`build_client_train_fn` returns a ``tf.function`` over plain tensors, so the
orchestration layer can wrap it in a ``tff.tensorflow.computation``.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import tensorflow as tf

# How many times each client function's Python body ran, i.e. was traced into
# a graph (benchmarks check that rounds do not retrace).
TRACES: collections.Counter[str] = collections.Counter()


@dataclasses.dataclass(frozen=True)
class ClientOptimizerConfig:
    """SGD with momentum for local training.

    Attributes:
        learning_rate: Step size (> 0).
        momentum: Momentum in [0, 1); 0 is plain SGD.
    """

    learning_rate: float = 0.01
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


def classification_loss() -> tf.keras.losses.Loss:
    """Mean sparse categorical cross-entropy on logits (the loss everywhere)."""
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_client_train_fn(
    model_fn: Callable[[], tf.keras.Model], optimizer: ClientOptimizerConfig
) -> Callable[..., tuple]:
    """Builds the client's training function.

    Must be called where ``model_fn`` may create variables (inside a
    ``tff.tensorflow.computation``, or eagerly).

    Args:
        model_fn: Builds the Keras model (same architecture as the server's).
        optimizer: Local optimizer settings.

    Returns:
        ``train(trainable, non_trainable, masks, dataset) -> (trainable,
        non_trainable, num_examples, loss_sum)``: lists of tensors in
        ``model.trainable_weights`` / ``non_trainable_weights`` order, float32
        masks (1 kept, 0 pruned) for the trainable weights, and a dataset of
        ``(images, labels)`` batches. ``loss_sum`` is the sum over examples of
        the training loss.
    """
    model = model_fn()
    loss_fn = classification_loss()
    learning_rate = tf.constant(optimizer.learning_rate, tf.float32)
    momentum = tf.constant(optimizer.momentum, tf.float32)
    use_momentum = optimizer.momentum > 0

    @tf.function
    def train(trainable, non_trainable, masks, dataset):
        TRACES["train"] += 1
        for variable, value, mask in zip(
            model.trainable_weights, trainable, masks, strict=True
        ):
            variable.assign(value * mask)
        for variable, value in zip(
            model.non_trainable_weights, non_trainable, strict=True
        ):
            variable.assign(value)
        accumulators = tuple(tf.zeros_like(v) for v in model.trainable_weights)
        num_examples = tf.constant(0, tf.int64)
        loss_sum = tf.constant(0.0, tf.float32)
        for images, labels in dataset:
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = loss_fn(labels, logits)
            gradients = tape.gradient(loss, model.trainable_weights)
            new_accumulators = []
            for variable, gradient, mask, accumulator in zip(
                model.trainable_weights, gradients, masks, accumulators, strict=True
            ):
                gradient = gradient * mask
                if use_momentum:
                    gradient = momentum * accumulator + gradient
                new_accumulators.append(gradient)
                variable.assign_sub(learning_rate * gradient)
            accumulators = tuple(new_accumulators)
            batch_size = tf.shape(labels, out_type=tf.int64)[0]
            num_examples += batch_size
            loss_sum += loss * tf.cast(batch_size, tf.float32)
        return (
            [tf.identity(v) for v in model.trainable_weights],
            [tf.identity(v) for v in model.non_trainable_weights],
            num_examples,
            loss_sum,
        )

    return train


def build_client_update_fn(
    model_fn: Callable[[], tf.keras.Model],
    optimizer: ClientOptimizerConfig,
    value_format: str,
    aggregation: str,
    weight_by_examples: bool,
) -> Callable[..., tuple]:
    """Builds a client's whole round: train, prune, and what the server decodes.

    The in-TensorFlow form of the driver's steps (`build_client_train_fn`,
    `tffprune.pruning.masks.weight_mask`, `tffprune.compression.wire`), so a
    round runs as one TFF computation and the trained weights never leave the
    runtime. Tests check it against the NumPy path.

    Args:
        model_fn: Builds the Keras model.
        optimizer: Local optimizer settings.
        value_format: The upload's value format (``float32``, ``float16``,
            ``int8``).
        aggregation: ``subfedavg`` (the upload carries the client's mask) or
            ``fedavg`` (the server rebuilds dense tensors: pruned entries
            count as 0).
        weight_by_examples: Weight the upload by the examples seen (else 1).

    Returns:
        ``update(trainable, non_trainable, masks, num_pruned, delivered,
        dataset) -> (upload, report)``. ``masks``: the client's boolean masks
        for the trainable weights (training starts from weights times mask);
        ``num_pruned``: int32, per trainable weight, how many entries the new
        mask prunes (magnitude pruning nested in ``masks``; 0 keeps it);
        ``delivered``: bool, False if the upload is lost. ``upload = (values,
        masks, weight)`` for `MaskedMeanFactory` (weight 0 when lost or
        non-finite). ``report = (new_masks, num_examples, loss_sum, finite,
        zero_kept)``, ``zero_kept`` per weight telling whether a kept value is
        exactly 0 (for `tffprune.compression.wire.encoded_size`).
    """
    from tffprune.compression.tf_values import transmitted
    from tffprune.pruning.tf_masks import weight_mask

    train = build_client_train_fn(model_fn, optimizer)

    @tf.function
    def update(trainable, non_trainable, masks, num_pruned, delivered, dataset):
        TRACES["update"] += 1
        trained, buffers, num_examples, loss_sum = train(
            trainable,
            non_trainable,
            [tf.cast(mask, tf.float32) for mask in masks],
            dataset,
        )
        finite = tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(w)) for w in trained + buffers]
        )
        # Non-finite weights are replaced before pruning; the upload is then
        # dropped (weight 0) and the client's mask is left as it was.
        trained = [tf.where(finite, w, tf.zeros_like(w)) for w in trained]
        buffers = [tf.where(finite, w, tf.zeros_like(w)) for w in buffers]
        new_masks = [
            tf.where(finite, weight_mask(w, mask, num_pruned[index]), mask)
            for index, (w, mask) in enumerate(zip(trained, masks, strict=True))
        ]
        all_kept = [tf.ones_like(w, tf.bool) for w in buffers]
        values = [
            transmitted(w, mask, value_format)
            for w, mask in zip(trained, new_masks, strict=True)
        ] + [
            transmitted(w, kept, value_format)
            for w, kept in zip(buffers, all_kept, strict=True)
        ]
        if aggregation == "subfedavg":
            upload_masks = new_masks + all_kept
        else:
            upload_masks = [tf.ones_like(w, tf.bool) for w in trained] + all_kept
        zero_kept = [
            tf.reduce_any(tf.logical_and(mask, tf.equal(w, 0.0)))
            for w, mask in zip(trained + buffers, new_masks + all_kept, strict=True)
        ]
        base = tf.cast(num_examples, tf.float32) if weight_by_examples else 1.0
        weight = tf.where(tf.logical_and(finite, delivered), base, 0.0)
        return (
            (values, upload_masks, weight),
            (new_masks, num_examples, loss_sum, finite, zero_kept),
        )

    return update
