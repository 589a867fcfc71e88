"""Masks range-coded under per-entry probabilities: exact, and at the bound."""

import numpy as np
import pytest

from tffprune.compression import bernoulli


def _masks(rng, shapes, probabilities):
    return [rng.random(s) < p for s, p in zip(shapes, probabilities, strict=True)]


def test_masks_decode_to_what_was_coded():
    rng = np.random.default_rng(0)
    shapes = [(30, 20), (20,), (3, 3, 2, 4)]
    probabilities = [rng.uniform(0.01, 0.99, s) for s in shapes]
    masks = _masks(rng, shapes, probabilities)
    message = bernoulli.encode_masks(masks, probabilities)
    for decoded, mask in zip(
        bernoulli.decode_masks(message, probabilities), masks, strict=True
    ):
        assert decoded.dtype == bool
        np.testing.assert_array_equal(decoded, mask)


def test_fair_coins_cost_one_bit_each():
    # 80,000 entries at p = 1/2: 10,000 bytes, plus at most two 32-bit words.
    rng = np.random.default_rng(1)
    probabilities = [np.full((400, 200), 0.5)]
    message = bernoulli.encode_masks(
        _masks(rng, [(400, 200)], probabilities), probabilities
    )
    assert 10_000 <= len(message) <= 10_008
    assert len(message) % 4 == 0


def test_size_within_a_thousandth_of_the_model_bound():
    rng = np.random.default_rng(2)
    probabilities = [rng.beta(0.3, 0.3, (300, 300))]
    masks = _masks(rng, [(300, 300)], probabilities)
    bound = bernoulli.model_bits(masks, probabilities)
    size = 8 * len(bernoulli.encode_masks(masks, probabilities))
    assert bound <= size <= 1.001 * bound + 64


def test_an_entry_the_model_calls_impossible_still_codes():
    probabilities = [np.array([0.0, 1.0, 0.5])]
    masks = [np.array([True, False, True])]
    message = bernoulli.encode_masks(masks, probabilities)
    np.testing.assert_array_equal(
        bernoulli.decode_masks(message, probabilities)[0], masks[0]
    )


def test_model_bits_by_hand():
    # -log2(1/4) for the kept entry, -log2(1 - 1/2) for the pruned one.
    assert bernoulli.model_bits(
        [np.array([True, False])], [np.array([0.25, 0.5])]
    ) == pytest.approx(3.0)


def test_frequency_bits_is_fedpms_estimate():
    # One one in four entries: 4 H(1/4) = 4 * 0.811278 bits.
    assert bernoulli.frequency_bits([np.array([1, 0, 0, 0], bool)]) == pytest.approx(
        3.245112, rel=1e-6
    )
    assert bernoulli.frequency_bits([np.ones(5, bool)]) == 0.0


def test_bad_messages_and_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        bernoulli.encode_masks([np.ones((2, 2), bool)], [np.full((4,), 0.5)])
    with pytest.raises(ValueError, match="words"):
        bernoulli.decode_masks(b"abc", [np.full(3, 0.5)])
