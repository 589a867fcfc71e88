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


def test_few_probabilities_code_eight_entries_a_symbol_and_decode():
    # FedPM's probabilities after a round: a few values. Groups of 1,001 and
    # 13 entries leave tails of 1 and 5 entries; 0 and 1 are among the values,
    # each with one entry that contradicts it.
    rng = np.random.default_rng(3)
    values = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    probabilities = [rng.choice(values, (77, 13)), rng.choice(values, 13)]
    masks = _masks(rng, [(77, 13), (13,)], probabilities)
    masks[0][probabilities[0] == 0.0] = False
    masks[0][probabilities[0] == 1.0] = True
    masks[0].flat[np.flatnonzero(probabilities[0] == 0.0)[0]] = True
    masks[1][probabilities[1] == 1.0] = False
    coder = bernoulli.MaskCoder(probabilities)
    assert coder.grouped
    message = coder.encode(masks)
    for decoded, mask in zip(coder.decode(message), masks, strict=True):
        assert decoded.dtype == bool
        np.testing.assert_array_equal(decoded, mask)


def test_grouped_coding_is_at_the_same_bound():
    # 100,000 entries at 11 values (FedPM's K + 1 for 10 clients).
    rng = np.random.default_rng(4)
    probabilities = [rng.choice(0.01 + 0.098 * np.arange(11), (500, 200))]
    masks = _masks(rng, [(500, 200)], probabilities)
    coder = bernoulli.MaskCoder(probabilities)
    bound = coder.bits(masks)
    assert bound == pytest.approx(bernoulli.model_bits(masks, probabilities))
    assert bound <= 8 * len(coder.encode(masks)) <= 1.001 * bound + 64


def test_bits_of_a_grouped_coder_by_hand():
    # Two entries at 1/4 (one kept: 2 bits; one not: log2(4/3) bits) and one
    # at 1/2 (1 bit).
    coder = bernoulli.MaskCoder([np.array([0.25, 0.5, 0.25])])
    bits = coder.bits([np.array([True, False, False])])
    assert bits == pytest.approx(2 + np.log2(4 / 3) + 1)


def test_sixteen_fair_coins_are_two_byte_symbols():
    # Two symbols of probability 1/256 each: 16 bits, one 32-bit word.
    rng = np.random.default_rng(5)
    probabilities = [np.full(16, 0.5)]
    message = bernoulli.MaskCoder(probabilities).encode(
        _masks(rng, [(16,)], probabilities)
    )
    assert len(message) == 4


def test_many_probabilities_are_coded_one_entry_at_a_time():
    rng = np.random.default_rng(6)
    probabilities = [rng.uniform(0.01, 0.99, 300)]
    coder = bernoulli.MaskCoder(probabilities)
    assert not coder.grouped
    masks = _masks(rng, [(300,)], probabilities)
    np.testing.assert_array_equal(coder.decode(coder.encode(masks))[0], masks[0])
