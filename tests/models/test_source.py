"""A user's model checked against the data: one line that says what to do."""

import numpy as np
import pytest
import tensorflow as tf

from tffprune.models.source import check_user_model_fn


def _head(units, activation=None):
    def model_fn():
        return tf.keras.Sequential(
            [tf.keras.Input((4,)), tf.keras.layers.Dense(units, activation=activation)]
        )

    return model_fn


def test_a_one_unit_sigmoid_head_for_two_classes_says_use_two_units():
    with pytest.raises(ValueError) as raised:
        check_user_model_fn(_head(1, "sigmoid"), (4,), 2)
    message = str(raised.value)
    assert message.startswith("model_fn: model_fn() outputs shape (None, 1)")
    assert "end with Dense(2)" in message


def test_a_head_one_short_of_the_labels_says_labels_start_at_0():
    # Labels 1..10 make 11 classes; a 10-unit head is one short.
    with pytest.raises(ValueError, match=r"labels run 1\.\.10, class indices start"):
        check_user_model_fn(_head(10), (4,), 11)


def test_a_head_that_fits_passes():
    check_user_model_fn(_head(3), (4,), 3)


def test_a_model_that_adapts_a_layer_says_to_pass_the_statistics():
    """adapt() cannot run in the graph TFF builds the model in (was a TFF traceback)."""
    data = np.random.default_rng(0).random((20, 4)).astype(np.float32)

    def model_fn():
        normalize = tf.keras.layers.Normalization()
        normalize.adapt(data)
        return tf.keras.Sequential(
            [tf.keras.Input((4,)), normalize, tf.keras.layers.Dense(3)]
        )

    with pytest.raises(ValueError, match=r"^model_fn: the model calls .*adapt\(\)"):
        check_user_model_fn(model_fn, (4,), 3)


def test_a_model_built_with_its_statistics_passes():
    def model_fn():
        normalize = tf.keras.layers.Normalization(mean=0.5, variance=0.1)
        return tf.keras.Sequential(
            [tf.keras.Input((4,)), normalize, tf.keras.layers.Dense(3)]
        )

    check_user_model_fn(model_fn, (4,), 3)
    # The check built it in a graph; a model made now still works eagerly.
    model = model_fn()
    assert model(np.zeros((1, 4), np.float32)).shape == (1, 3)
