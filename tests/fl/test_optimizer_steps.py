"""The local optimizer's steps: TFF's SGD in place equals TFF's own step."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.client import build_client_train_fn
from tffprune.fl.optimizer_steps import MomentumSGD
from tffprune.learning.optimizers import in_place


def model_fn():
    """Two hidden layers and a logits head."""
    tf.keras.utils.set_random_seed(2)
    return tf.keras.Sequential(
        [
            tf.keras.Input((4,)),
            tf.keras.layers.Dense(5, activation="relu"),
            tf.keras.layers.Dense(5, activation="tanh"),
            tf.keras.layers.Dense(3),
        ]
    )


def _dataset():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(40, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 40).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).repeat(3).batch(10)


@pytest.mark.parametrize("momentum", [None, 0.5])
def test_sgd_in_place_is_tffs_sgd_step_for_step(momentum):
    # The oracle: TFF's own optimizer, run functionally. In place, the fused
    # kernels of the same rule must give the same weights, and keep pruned
    # weights at exactly 0 under a mask.
    weights = [w.numpy() for w in model_fn().trainable_weights]
    optimizer = tff.learning.optimizers.build_sgdm(0.5, momentum=momentum)
    rule = in_place(optimizer)
    assert isinstance(rule, MomentumSGD)
    masks = [tf.ones_like(w) for w in weights]
    checkerboard = (np.arange(weights[0].size).reshape(weights[0].shape) % 2).astype(
        np.float32
    )
    masks[0] = tf.constant(checkerboard, tf.float32)
    start = [weights[0] * checkerboard] + weights[1:]
    functional = build_client_train_fn(model_fn, optimizer)
    fused = build_client_train_fn(model_fn, rule)

    for _ in range(2):  # the second call checks the accumulators were reset
        expected, _, _, _ = functional(start, [], masks, _dataset())
        trained, _, _, _ = fused(start, [], masks, _dataset())
        for ours, theirs in zip(trained, expected, strict=True):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)
    assert not np.any(trained[0].numpy()[checkerboard == 0])
    assert np.any(trained[0].numpy() != start[0])


def test_other_optimizers_are_not_run_in_place():
    adam = tff.learning.optimizers.build_adam(0.1)
    assert in_place(adam) is adam
