"""Per-client tensors kept as positions and values, by hand."""

import numpy as np
import pytest

from tffprune.compression.compact import at_positions

SHAPES = [(2, 2), (3,), (1,)]
TENSORS = [
    np.array([[0.0, 1.5], [-2.0, 0.0]], np.float32),
    np.zeros(3, np.float32),
    np.array([7.25], np.float32),
]


def test_compact_tensors_round_trip_exactly_and_cost_a_bit_per_entry():
    nonzero = [t != 0 for t in TENSORS]
    stored = at_positions(nonzero, [t[t != 0] for t in TENSORS])

    # 8 entries -> 1 byte of positions; 3 nonzero float32 values -> 12 bytes.
    assert stored.nbytes == 1 + 12
    for original, back in zip(TENSORS, stored.expand(SHAPES), strict=True):
        np.testing.assert_array_equal(back, original)
    with pytest.raises(ValueError, match="cannot hold"):
        stored.expand([(2, 2), (30,)])


def test_values_at_positions_keep_their_zeros_and_expand_exactly():
    masks = [
        np.array([[True, True], [False, False]]),
        np.array([False, True, False]),
        np.array([True]),
    ]
    # The mask's second entry of tensor 0 and its entry of tensor 1 hold 0.
    values = [
        np.array([0.5, 0.0], np.float16),
        np.array([0.0], np.float16),
        np.array([-3.0], np.float16),
    ]

    stored = at_positions(masks, values)

    assert stored.nbytes == 1 + 4 * 2  # 4 positions of float16
    expanded = stored.expand(SHAPES)
    np.testing.assert_array_equal(expanded[0], [[0.5, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(expanded[1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(expanded[2], [-3.0])
    assert all(e.dtype == np.float16 for e in expanded)
    with pytest.raises(ValueError, match="tensor 2: 0 values for 1 positions"):
        at_positions(masks, [values[0], values[1], np.zeros(0)])
