"""What a classification model's output is: logits or probabilities.

Users bring models with either head. tffprune trains both with sparse
categorical cross-entropy, taking ``from_logits`` from the model itself:
probabilities when its last layer is a ``Softmax`` layer or applies the
softmax activation, logits otherwise. Accuracy is the argmax either way.
"""

from __future__ import annotations

import tensorflow as tf


def outputs_probabilities(model: tf.keras.Model) -> bool:
    """Whether ``model`` ends in a softmax (else it returns logits)."""
    last = model.layers[-1]
    while True:
        if hasattr(last, "layers") and last.layers:  # a nested model's last
            last = last.layers[-1]
        elif isinstance(getattr(last, "layer", None), tf.keras.layers.Layer):
            last = last.layer  # a wrapper's (tfmot pruning or clustering)
        else:
            break
    if isinstance(last, tf.keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is tf.keras.activations.softmax or (
        getattr(activation, "__name__", "") == "softmax"
    )


def classification_loss(model: tf.keras.Model) -> tf.keras.losses.Loss:
    """Mean sparse categorical cross-entropy matching the model's head."""
    return tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=not outputs_probabilities(model)
    )
