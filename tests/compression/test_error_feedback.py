import numpy as np
import pytest
import tensorflow as tf

from tffprune.compression.error_feedback import error_feedback_step
from tffprune.compression.tf_values import with_error_feedback

ALL = np.ones(4, bool)


def test_int1_two_rounds_by_hand():
    # Round 1: mean |u| = 0.625, so the server decodes +-0.625.
    sent, residual = error_feedback_step(
        np.array([0.5, -0.25, 0.75, -1.0], np.float32), np.zeros(4), ALL, "int1"
    )
    np.testing.assert_array_equal(sent, [0.625, -0.625, 0.625, -0.625])
    np.testing.assert_array_equal(residual, [-0.125, 0.375, 0.125, -0.375])

    # Round 2: u + e = [0.125, 0.625, -0.375, 0.125], mean magnitude 0.3125.
    sent, residual = error_feedback_step(
        np.array([0.25, 0.25, -0.5, 0.5], np.float32), residual, ALL, "int1"
    )
    np.testing.assert_array_equal(sent, [0.3125, 0.3125, -0.3125, 0.3125])
    np.testing.assert_array_equal(residual, [-0.1875, 0.3125, -0.0625, -0.1875])


def test_what_was_sent_adds_up_to_the_updates_minus_the_residual():
    # Multiples of 1/64 keep every sum exact in float32: the identity is exact.
    rng = np.random.default_rng(0)
    residual = np.zeros(4, np.float32)
    sent_total = np.zeros(4, np.float32)
    update_total = np.zeros(4, np.float32)
    for _ in range(6):
        update = (rng.integers(-64, 65, 4) / 64).astype(np.float32)
        sent, residual = error_feedback_step(update, residual, ALL, "int1")
        sent_total += sent
        update_total += update

    np.testing.assert_array_equal(sent_total, update_total - residual)
    assert np.any(residual != 0)  # int1 did drop something along the way


def test_entries_outside_the_mask_are_neither_sent_nor_kept():
    mask = np.array([True, False, True, True])

    sent, residual = error_feedback_step(
        np.array([1.0, 9.0, -1.0, 0.5], np.float32),
        np.array([0.0, 5.0, 0.0, 0.0], np.float32),
        mask,
        "int1",
    )

    assert sent[1] == 0 and residual[1] == 0
    # mean |[1, -1, 0.5]| = 2.5 / 3, computed in float64, sent as float32
    scale = np.float32(2.5 / 3)
    np.testing.assert_array_equal(sent, [scale, 0, -scale, scale])


@pytest.mark.parametrize("value_format", ["float16", "int8", "int4", "int2", "int1"])
def test_tensorflow_twin_equals_numpy(value_format):
    rng = np.random.default_rng(1)
    update = rng.normal(scale=0.01, size=(30, 7)).astype(np.float32)
    residual = rng.normal(scale=0.001, size=(30, 7)).astype(np.float32)
    mask = rng.random((30, 7)) < 0.6

    expected = error_feedback_step(update, residual, mask, value_format)
    ours = with_error_feedback(
        tf.constant(update), tf.constant(residual), tf.constant(mask), value_format
    )

    for theirs, mine in zip(expected, ours[:2], strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs)
    np.testing.assert_array_equal(ours[2].numpy(), np.where(mask, update + residual, 0))
