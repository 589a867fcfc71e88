import numpy as np
import pytest
import tensorflow as tf

from tffprune.pruning.packed_masks import (
    pack,
    pack_all,
    pack_tf,
    packed_size,
    unpack,
    unpack_all,
    unpack_tf,
)


def test_entry_i_is_bit_i_mod_8_of_byte_i_div_8():
    # Entries 0, 3 and 9 kept of 10: byte 0 = 2^0 + 2^3 = 9, byte 1 = 2^1 = 2.
    mask = np.zeros((2, 5), bool)
    mask.flat[[0, 3, 9]] = True

    packed = pack(mask)

    assert packed.dtype == np.uint8
    np.testing.assert_array_equal(packed, [9, 2])
    np.testing.assert_array_equal(unpack(packed, (2, 5)), mask)


@pytest.mark.parametrize("shape", [(0,), (1,), (8,), (9,), (3, 3, 2, 5), (784, 30)])
def test_tensorflow_twins_equal_the_numpy_reference(shape):
    mask = np.random.default_rng(sum(shape)).random(shape) < 0.5

    packed = pack_tf(tf.constant(mask)).numpy()

    assert packed.shape == (packed_size(shape),)
    np.testing.assert_array_equal(packed, pack(mask))
    np.testing.assert_array_equal(unpack_tf(tf.constant(packed), shape).numpy(), mask)


def test_a_list_round_trips_and_a_wrong_size_is_refused():
    masks = [np.ones((4, 10), bool), np.eye(3, dtype=bool)]
    shapes = [m.shape for m in masks]

    for ours, theirs in zip(unpack_all(pack_all(masks), shapes), masks, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="do not hold a mask of shape"):
        unpack(np.zeros(4, np.uint8), (4, 10))
