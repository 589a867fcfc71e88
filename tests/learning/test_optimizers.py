"""Optimizers by name: the command line's choices as tff.learning optimizers."""

import numpy as np
import pytest
import tensorflow as tf

from tffprune.learning.optimizers import build_optimizer


def _first_step(optimizer, gradient):
    specs = tf.TensorSpec([1], tf.float32)
    state = optimizer.initialize(specs)
    _, weights = optimizer.next(state, tf.zeros([1]), tf.constant([gradient]))
    return float(weights.numpy()[0])


@pytest.mark.parametrize("name", ["adam", "yogi"])
def test_epsilon_reaches_the_adaptive_optimizers(name):
    optimizer = build_optimizer(name, 0.1, epsilon=0.25)
    state = optimizer.initialize(tf.TensorSpec([1]))
    assert optimizer.get_hparams(state)["epsilon"] == pytest.approx(0.25)


def test_adams_first_step_with_epsilon_is_hand_computed():
    # t=1, g=1: m = 0.1, v = 0.001, lr_t = lr * sqrt(1 - 0.999) / (1 - 0.9);
    # step = lr_t * m / (sqrt(v) + epsilon) = lr * 0.0316 / (0.0316 + epsilon).
    root = np.sqrt(0.001)
    for epsilon, expected in ((None, 1.0), (root, 0.5)):
        step = -_first_step(build_optimizer("adam", 1.0, epsilon=epsilon), 1.0)
        assert step == pytest.approx(expected, rel=1e-4)


def test_sgdm_ignores_epsilon_and_steps_by_the_learning_rate():
    assert _first_step(build_optimizer("sgd", 0.5, epsilon=0.1), 2.0) == -1.0
