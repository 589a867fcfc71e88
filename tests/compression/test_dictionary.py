"""Few-valued tensors as a value table and range-coded indices: exact, at the bound."""

import numpy as np
import pytest

from tffprune.compression import dictionary
from tffprune.compression.wire import PayloadError


def test_tensors_decode_to_exactly_what_was_coded():
    rng = np.random.default_rng(0)
    levels = np.float32(0.01) + np.float32(0.98) * np.arange(11, dtype=np.float32) / 10
    tensors = [rng.choice(levels, s) for s in [(30, 20), (20,), (3, 3, 2, 4)]]
    message = dictionary.encode_tensors(tensors)
    decoded = dictionary.decode_tensors(message, [t.shape for t in tensors])
    for ours, theirs in zip(decoded, tensors, strict=True):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, theirs)


def test_four_equally_frequent_values_cost_two_bits_each():
    # 40,000 entries of 4 values, 10,000 each: 80,000 bits of indices, plus a
    # header of 1 + 4 * 4 + 4 * 2 bytes (varint 10,000 takes 2 bytes).
    tensor = np.repeat(np.array([0.1, 0.2, 0.3, 0.4], np.float32), 10_000)
    np.random.default_rng(1).shuffle(tensor)
    message = dictionary.encode_tensors([tensor])
    assert dictionary.entropy_bits([tensor]) == pytest.approx(80_000)
    assert 10_000 + 25 <= len(message) <= 10_000 + 25 + 8


def test_a_constant_tensor_is_its_header_alone():
    message = dictionary.encode_tensors([np.full((5, 5), 0.5, np.float32)])
    assert len(message) == 1 + 4 + 1
    np.testing.assert_array_equal(
        dictionary.decode_tensors(message, [(5, 5)])[0], np.full((5, 5), 0.5)
    )


def test_a_message_for_other_shapes_is_refused():
    message = dictionary.encode_tensors([np.arange(6, dtype=np.float32)])
    with pytest.raises(PayloadError, match="entries"):
        dictionary.decode_tensors(message, [(7,)])
    with pytest.raises(PayloadError):
        dictionary.decode_tensors(message[:3], [(6,)])
