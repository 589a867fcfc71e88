import numpy as np
import pytest
import tensorflow as tf

from tffprune.pruning.packed_masks import (
    PackedMasks,
    pack,
    pack_all,
    pack_tf,
    packed_size,
    union,
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


def test_packed_masks_hold_an_eighth_and_read_back_the_masks():
    rng = np.random.default_rng(3)
    masks = [rng.random((784, 30)) < 0.5, rng.random(30) < 0.5, np.ones((3, 3), bool)]

    kept = PackedMasks.of(masks)

    # 23,520 + 30 + 9 entries: 2,940 + 4 + 2 bytes, against 23,559 as booleans.
    assert kept.nbytes == 2940 + 4 + 2
    assert len(kept) == 3
    for ours, theirs in zip(kept, masks, strict=True):
        np.testing.assert_array_equal(ours, theirs)
        assert ours.dtype == bool
    np.testing.assert_array_equal(kept[-1], masks[-1])
    assert [m.shape for m in kept[1:]] == [(30,), (3, 3)]
    assert PackedMasks.of(kept) is kept
    assert kept == PackedMasks.of([m.copy() for m in masks])
    assert kept != PackedMasks.of([~masks[0], masks[1], masks[2]])


def test_kept_entries_are_counted_on_the_packed_bytes():
    # 11 entries, 7 kept: bytes 0b01101101 and 0b011 (the unused bits 0).
    mask = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0], bool)
    kept = PackedMasks.of([mask, np.zeros((2, 3), bool), np.ones((3, 3), bool)])

    assert kept.kept() == [7, 0, 9]


def test_a_mask_read_from_packed_masks_cannot_be_changed_in_place():
    kept = PackedMasks.of([np.ones(10, bool)])

    with pytest.raises(ValueError, match="read-only"):
        kept[0][3] = False
    assert kept[0].all()


def test_packed_masks_refuse_bytes_that_do_not_fit_their_shape():
    with pytest.raises(ValueError, match="do not hold a mask of shape"):
        PackedMasks([np.zeros(2, np.uint8)], [(4, 10)])
    with pytest.raises(ValueError, match="1 packed masks for 2 shapes"):
        PackedMasks([np.zeros(5, np.uint8)], [(4, 10), (3,)])


def test_the_union_keeps_what_any_mask_keeps():
    first = PackedMasks.of([np.array([1, 0, 0, 1, 0], bool), np.eye(3, dtype=bool)])
    second = PackedMasks.of([np.array([0, 0, 1, 1, 0], bool), np.zeros((3, 3), bool)])

    vector, matrix = union([first, second])

    np.testing.assert_array_equal(vector, [True, False, True, True, False])
    np.testing.assert_array_equal(matrix, np.eye(3, dtype=bool))
    assert vector.flags.writeable  # a new array, not a kept mask
    with pytest.raises(ValueError, match="different shapes"):
        union([first, PackedMasks.of([np.ones(4, bool), np.eye(3, dtype=bool)])])
