"""The local optimizer's steps: TFF's SGD and Adam in place equal TFF's own."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.client import build_client_train_fn
from tffprune.fl.optimizer_steps import Adam, MomentumSGD
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


def test_adam_in_place_is_tffs_adam_step_for_step():
    # The oracle: TFF's Adam, functional, 12 steps over two calls. The fused
    # kernel computes the same rule in another order: equal to float32
    # rounding, and a pruned weight (zero gradient, zero moments) stays 0.
    weights = [w.numpy() for w in model_fn().trainable_weights]
    optimizer = tff.learning.optimizers.build_adam(0.05, beta_1=0.8, epsilon=1e-4)
    rule = in_place(optimizer)
    assert rule == Adam(0.05, 0.8, 0.999, 1e-4, optimizer)
    masks = [tf.ones_like(w) for w in weights]
    masks[1] = tf.constant([0, 1, 1, 0, 1], tf.float32)
    start = weights[:1] + [weights[1] * masks[1].numpy()] + weights[2:]
    functional = build_client_train_fn(model_fn, optimizer)
    fused = build_client_train_fn(model_fn, rule)

    for _ in range(2):  # the second call checks the moments and step were reset
        expected, _, _, _ = functional(start, [], masks, _dataset())
        trained, _, _, _ = fused(start, [], masks, _dataset())
        for ours, theirs in zip(trained, expected, strict=True):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    assert trained[1].numpy()[0] == 0 and trained[1].numpy()[3] == 0
    assert np.any(trained[0].numpy() != start[0])


def test_other_optimizers_are_not_run_in_place():
    yogi = tff.learning.optimizers.build_yogi(0.1)
    assert in_place(yogi) is yogi
