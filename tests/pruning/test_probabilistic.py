"""FedPM's math: hand-worked values, and each TensorFlow twin equal to NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from tffprune.pruning import probabilistic

SHAPES = [(784, 30), (30,), (3, 3, 2, 6), (6,)]


def test_fan_in_of_a_bias_is_its_kernels():
    assert probabilistic.fan_ins(SHAPES) == [784, 784, 18, 18]
    assert probabilistic.fan_ins([(5,), (4, 2)]) == [1, 4]


def test_signed_constants_are_e_over_root_fan_in_with_seeded_signs():
    weights = [w.numpy() for w in probabilistic.tf_signed_constants(SHAPES, 3)]
    for weight, fan_in in zip(weights, [784, 784, 18, 18], strict=True):
        np.testing.assert_allclose(np.abs(weight), np.e / np.sqrt(fan_in), rtol=1e-6)
    assert 0.45 < np.mean(weights[0] > 0) < 0.55
    again = probabilistic.tf_signed_constants(SHAPES, 3)
    other = probabilistic.tf_signed_constants(SHAPES, 4)
    np.testing.assert_array_equal(weights[0], again[0].numpy())
    assert np.mean(weights[0] != other[0].numpy()) > 0.4


def test_initial_probabilities_are_seeded_and_inside_zero_one():
    first = probabilistic.tf_initial_probabilities(SHAPES, 3)[0].numpy()
    again = probabilistic.tf_initial_probabilities(SHAPES, 3)[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert first.min() > 0 and first.max() < 1
    assert abs(first.mean() - 0.5) < 0.01


def test_straight_through_gradient_by_hand():
    # s = 0: theta = 1/2, so dL/ds = g * w0 * 1/2 * 1/2 * 1/2 = 2 * 3 / 8.
    assert probabilistic.straight_through_gradient(
        np.array([2.0]), np.array([3.0]), np.array([0.0])
    ) == pytest.approx([0.75])
    # s = log 3: theta = 3/4, so the factor is 3/4 * 3/4 * 1/4 = 9/64.
    assert probabilistic.straight_through_gradient(
        np.array([1.0]), np.array([-1.0]), np.array([np.log(3.0)])
    ) == pytest.approx([-9 / 64])


def test_straight_through_gradient_twin():
    rng = np.random.default_rng(0)
    g, w, s = (rng.normal(size=(5, 4)).astype(np.float32) for _ in range(3))
    np.testing.assert_allclose(
        probabilistic.tf_straight_through_gradient(g, w, s).numpy(),
        probabilistic.straight_through_gradient(g, w, s),
        rtol=1e-5,
        atol=1e-7,
    )


def test_scores_invert_the_sigmoid():
    p = np.array([0.01, 0.25, 0.5, 0.99], np.float32)
    np.testing.assert_allclose(probabilistic.scores_from(p), np.log(p / (1 - p)))
    np.testing.assert_allclose(
        probabilistic.tf_scores_from(p).numpy(), probabilistic.scores_from(p), rtol=1e-5
    )
    assert np.isfinite(probabilistic.scores_from(np.array([0.0, 1.0]))).all()


def test_smoothed_sum_is_the_sum_of_the_smoothed_masks():
    # Masks [1, 0] and [1, 1] smoothed: [0.99, 0.01] and [0.99, 0.99].
    sums = probabilistic.smoothed([1, 0]) + probabilistic.smoothed([1, 1])
    np.testing.assert_allclose(sums, [1.98, 1.0])
    np.testing.assert_allclose(probabilistic.smoothed_sum([2, 1], 2), sums)
    np.testing.assert_allclose(
        probabilistic.tf_smoothed_sum(tf.constant([2.0, 1.0]), 2.0).numpy(), sums
    )


def test_posterior_with_a_reset_is_the_mean_of_the_smoothed_masks():
    # Masks [1, 0] and [1, 1]: counts [2, 1]; smoothed sums [1.98, 1.0].
    alpha, beta, mode = probabilistic.posterior_update(
        np.full(2, 7.0), np.full(2, 7.0), np.array([0.3, 0.3]), [2, 1], 2, reset=True
    )
    np.testing.assert_allclose(alpha, [2.98, 2.0])
    np.testing.assert_allclose(beta, [1.02, 2.0])
    np.testing.assert_allclose(mode, [0.99, 0.5])


def test_posterior_without_a_reset_counts_every_round():
    # Round 1: one mask [1]; round 2: one mask [0]. alpha = 1 + .99 + .01,
    # beta = 1 + .01 + .99: the mode is 1/2.
    alpha, beta, mode = probabilistic.posterior_update(
        np.ones(1), np.ones(1), np.array([0.2]), [1], 1, True
    )
    assert mode == pytest.approx([0.99])
    alpha, beta, mode = probabilistic.posterior_update(alpha, beta, mode, [0], 1, False)
    np.testing.assert_allclose([alpha[0], beta[0], mode[0]], [2.0, 2.0, 0.5])


def test_a_posterior_that_saw_no_mask_keeps_the_probabilities():
    _, _, mode = probabilistic.posterior_update(
        np.ones(2), np.ones(2), np.array([0.3, 0.8]), np.zeros(2), 0, reset=True
    )
    np.testing.assert_allclose(mode, [0.3, 0.8])


@pytest.mark.parametrize("reset", [True, False])
def test_posterior_twin(reset):
    rng = np.random.default_rng(1)
    alpha = 1 + rng.uniform(0, 5, 6).astype(np.float32)
    beta = 1 + rng.uniform(0, 5, 6).astype(np.float32)
    p = rng.uniform(0, 1, 6).astype(np.float32)
    kept = rng.integers(0, 4, 6).astype(np.float32)
    expected = probabilistic.posterior_update(alpha, beta, p, kept, 3.0, reset)
    got = probabilistic.tf_posterior_update(
        alpha, beta, p, kept, tf.constant(3.0), tf.constant(reset)
    )
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have.numpy(), want, rtol=1e-5)


def test_quantized_probabilities_are_bin_midpoints():
    p = np.array([0.0, 0.2, 0.6, 1.0], np.float32)
    np.testing.assert_allclose(probabilistic.quantized(p, 1), [0.25, 0.25, 0.75, 0.75])
    np.testing.assert_allclose(
        probabilistic.quantized(p, 2), [0.125, 0.125, 0.625, 0.875]
    )
    np.testing.assert_array_equal(probabilistic.quantized(p, 32), p)
    for bits in (1, 2, 4, 8, 32):
        np.testing.assert_allclose(
            probabilistic.tf_quantized(p, bits).numpy(),
            probabilistic.quantized(p, bits),
        )


def test_the_most_likely_network_keeps_weights_above_one_half():
    weights = probabilistic.most_likely(
        [np.array([1.0, -2.0, 3.0])], [np.array([0.9, 0.5, 0.51])]
    )
    np.testing.assert_array_equal(weights[0], [1.0, 0.0, 3.0])
