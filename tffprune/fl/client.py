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

import dataclasses
from collections.abc import Callable

import tensorflow as tf


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
