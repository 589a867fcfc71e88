"""The small model and digits clients that the round tests share.

tfmot's tutorial CNN on 8x8 digits: four clients of unequal size (40, 70,
100, 130 examples), so example weighting matters, and the same seeded
initial weights for every implementation a test compares.
"""

import tensorflow as tf

from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.runtime import ensure_runtime
from tffprune.models import build_model

INPUT_SHAPE = (8, 8, 1)
ELEMENT_SPEC = (
    tf.TensorSpec([None, *INPUT_SHAPE], tf.float32),
    tf.TensorSpec([None], tf.int32),
)


def model_fn():
    return build_model("tfmot_cnn", INPUT_SHAPE, 10)


def digits_clients():
    """Four IID digits clients of 40 + 30 c examples, as ``(inputs, labels)``."""
    ensure_runtime()
    data = build_federated_data(load_dataset("digits"), 4, "iid", seed=0)
    return [
        (data.client_train(c)[0][: 40 + 30 * c], data.client_train(c)[1][: 40 + 30 * c])
        for c in range(4)
    ]


def initial_weights():
    """The model's weights at seed 3 (trainable then non-trainable)."""
    model = build_model("tfmot_cnn", INPUT_SHAPE, 10, seed=3)
    return [w.numpy() for w in model.trainable_weights + model.non_trainable_weights]
