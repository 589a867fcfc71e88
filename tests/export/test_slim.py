"""Slim export: pruned channels cut out, outputs equal (tffprune.export.slim)."""

import numpy as np
import pytest
import tensorflow as tf

from tffprune.export.slim import check_outputs, slim_model
from tffprune.pruning import PruningPolicy, apply_masks, build_masks

layers = tf.keras.layers


def _pruned(model, method="channel", sparsity=0.5, seed=0):
    """The model with its trainable weights masked by ``method``."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # BatchNorm statistics and biases worth keeping
        if isinstance(layer, layers.BatchNormalization):
            layer.beta.assign(rng.uniform(0.1, 1, layer.beta.shape))
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_mean.shape))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(0.1, 1, layer.bias.shape))
    weights = [w.numpy() for w in model.trainable_weights]
    targets = PruningPolicy().select(model)
    masks = build_masks(weights, targets, method, sparsity)
    for variable, value in zip(
        model.trainable_weights, apply_masks(weights, masks), strict=True
    ):
        variable.assign(value)
    return model


def _images(shape, count=16):
    return np.random.default_rng(1).normal(size=(count, *shape)).astype(np.float32)


def _lenet_like():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((12, 12, 1))
    x = layers.Conv2D(4, 3, activation="relu", name="conv_1")(inputs)
    x = layers.MaxPooling2D(2, name="pool_1")(x)
    x = layers.Conv2D(6, 3, activation="relu", name="conv_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(8, activation="relu", name="dense_1")(x)
    return tf.keras.Model(inputs, layers.Dense(3, name="logits")(x))


def test_slim_lenet_like_keeps_half_the_channels_and_the_outputs():
    model = _pruned(_lenet_like())
    slim, report = slim_model(model)

    # conv_1 4 -> 2 filters, conv_2 6 -> 3, dense_1 8 -> 4 units.
    assert report.channels == {"conv_1": (2, 4), "conv_2": (3, 6), "dense_1": (4, 8)}
    assert [slim.get_layer(n).output_shape[-1] for n in ("conv_1", "conv_2")] == [
        2,
        3,
    ]
    # Parameters by hand: conv_1 3*3*1*2 + 2 = 20; conv_2 3*3*2*3 + 3 = 57;
    # flatten 3*3*3 = 27 -> dense_1 27*4 + 4 = 112; logits 4*3 + 3 = 15.
    assert report.parameters_after == 20 + 57 + 112 + 15 == slim.count_params()
    assert report.parameters_before == model.count_params() == 40 + 222 + 440 + 27
    assert check_outputs(model, slim, _images((12, 12, 1))) < 1e-5


def _residual():
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((6, 6, 2))
    stem = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv_1")(stem)
    x = layers.ReLU(name="relu_1")(layers.BatchNormalization(name="bn_1")(x))
    x = layers.Conv2D(8, 3, padding="same", name="conv_2")(x)
    x = layers.BatchNormalization(name="bn_2")(x)
    shortcut = layers.Conv2D(8, 1, use_bias=False, name="shortcut")(stem)
    shortcut = layers.BatchNormalization(name="bn_s")(shortcut)
    x = layers.ReLU(name="relu_out")(layers.Add(name="add")([x, shortcut]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return tf.keras.Model(inputs, layers.Dense(3, name="logits")(x))


@pytest.mark.parametrize("method", ["unit", "channel"])
def test_slim_residual_block_cuts_the_group_and_its_batchnorms(method):
    model = _pruned(_residual(), method)
    slim, report = slim_model(model)

    assert report.channels == {
        "stem": (2, 4),
        "conv_1": (4, 8),
        "conv_2 + shortcut": (4, 8),
    }
    assert report.left_whole == {}
    for name in ("bn_1", "bn_2", "bn_s"):
        assert all(w.shape == (4,) for w in slim.get_layer(name).weights)
    assert slim.get_layer("logits").kernel.shape == (4, 3)
    assert check_outputs(model, slim, _images((6, 6, 2))) < 1e-5


def test_slim_leaves_a_sigmoid_layer_whole_and_says_why():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((5,))
    x = layers.Dense(6, activation="sigmoid", name="hidden")(inputs)
    model = _pruned(tf.keras.Model(inputs, layers.Dense(2, name="logits")(x)), "unit")
    slim, report = slim_model(model)

    # sigmoid(0) = 0.5: a pruned unit still feeds the logits.
    assert report.channels == {}
    assert report.left_whole == {
        "hidden": "3 dead channels kept: hidden's activation does not keep 0 at 0"
    }
    assert slim.count_params() == model.count_params()
    assert check_outputs(model, slim, _images((5,))) < 1e-6


def test_slim_of_a_sequential_model():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((7,)),
            layers.Dense(10, activation="relu", name="a"),
            layers.Dropout(0.2, name="drop"),
            layers.Dense(4, activation="tanh", name="b"),
            layers.Dense(2, name="logits"),
        ]
    )
    model = _pruned(model, "unit", 0.5)
    slim, report = slim_model(model)

    assert report.channels == {"a": (5, 10), "b": (2, 4)}
    assert type(slim).__name__ == "Sequential"
    assert check_outputs(model, slim, _images((7,))) < 1e-6


def test_check_outputs_refuses_a_model_that_changed():
    model = _pruned(_lenet_like())
    other = tf.keras.models.clone_model(model)  # fresh random weights

    with pytest.raises(ValueError, match="outputs differ from the masked model's"):
        check_outputs(model, other, _images((12, 12, 1)))
