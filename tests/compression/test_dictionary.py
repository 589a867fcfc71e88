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


def _held_and_new(rng, shapes, unchanged):
    """Tensors of FedPM's 11 levels, and new ones of which ``unchanged`` stay."""
    levels = np.float32(0.01) + np.float32(0.98) * np.arange(11, dtype=np.float32) / 10
    held = [rng.choice(levels, s) for s in shapes]
    new = [
        np.where(rng.random(h.shape) < unchanged, h, rng.choice(levels, h.shape))
        for h in held
    ]
    return held, [n.astype(np.float32) for n in new]


def test_a_receiver_holding_older_values_decodes_exactly_the_new_ones():
    held, new = _held_and_new(np.random.default_rng(0), [(300, 20), (50,)], 0.7)
    message, _ = dictionary.encode_given(
        dictionary.value_table(new), dictionary.value_table(held)
    )
    decoded = dictionary.decode_given(
        message, dictionary.value_table(held), [t.shape for t in new]
    )
    for ours, theirs in zip(decoded, new, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # Mostly unchanged values cost about half of sending them afresh.
    assert len(message) < 0.6 * len(dictionary.encode_tensors(new))


def test_values_that_follow_from_the_held_ones_cost_the_header_alone():
    # Held 0.1 becomes 0.2 and held 0.9 becomes 0.8, 1,000 entries each: no
    # index to code. Header: 1 + 2 * 4 (new values) + 1 (held count) + the
    # 2 x 2 counts 1000, 0, 0, 1000 (2 + 1 + 1 + 2 bytes) = 16 bytes.
    held = np.repeat(np.array([0.1, 0.9], np.float32), 1000)
    new = np.where(held < 0.5, np.float32(0.2), np.float32(0.8))
    message, bound = dictionary.encode_given(
        dictionary.value_table([new]), dictionary.value_table([held])
    )
    assert bound == 0.0
    assert len(message) == 16
    np.testing.assert_array_equal(
        dictionary.decode_given(message, dictionary.value_table([held]), [(2000,)])[0],
        new,
    )


def test_a_fair_coin_within_one_held_value_costs_a_bit_an_entry():
    # Where 0.1 is held (8,000 entries) the new value is 0.2 or 0.3, 4,000
    # each; where 0.9 is held it stays: 8,000 bits, 1,000 bytes of words.
    held = np.repeat(np.array([0.1, 0.9], np.float32), 8000)
    new = held.copy()
    new[:8000] = np.repeat(np.array([0.2, 0.3], np.float32), 4000)
    np.random.default_rng(2).shuffle(new[:8000])
    table, held_table = dictionary.value_table([new]), dictionary.value_table([held])
    message, bound = dictionary.encode_given(table, held_table)
    assert bound == pytest.approx(8000)
    assert dictionary.conditional_bits(table, held_table) == pytest.approx(8000)
    header = 1 + 3 * 4 + 1 + 9 + 2 * 2  # counts 4000, 4000, 0 | 0, 0, 8000
    assert 1000 + header <= len(message) <= 1000 + header + 8


def test_a_message_for_other_held_values_is_refused():
    held, new = _held_and_new(np.random.default_rng(3), [(40,)], 0.5)
    message, _ = dictionary.encode_given(
        dictionary.value_table(new), dictionary.value_table(held)
    )
    other = dictionary.value_table([np.full(40, 0.5, np.float32)])
    with pytest.raises(PayloadError, match="held"):
        dictionary.decode_given(message, other, [(40,)])
    with pytest.raises(ValueError, match="entries"):
        dictionary.encode_given(
            dictionary.value_table(new), dictionary.value_table([held[0][:30]])
        )


def test_a_table_packs_eleven_values_at_four_bits_an_entry():
    held, _ = _held_and_new(np.random.default_rng(4), [(101,)], 1.0)
    table = dictionary.value_table(held)
    packed = table.packed_indices()
    assert packed.size == 51  # 101 entries, 2 a byte
    again = dictionary.ValueTable.from_packed(table.values, packed, 101)
    np.testing.assert_array_equal(again.indices, table.indices)
    np.testing.assert_array_equal(again.counts, table.counts)
    with pytest.raises(ValueError, match="byte"):
        dictionary.value_table([np.arange(300, dtype=np.float32)]).packed_indices()


def test_a_value_no_sampled_entry_holds_is_in_the_table():
    # Every 64th entry is 0.5; entries 1 and 3 hold a value between the
    # sampled ones and one above them all: the table must still have both.
    tensor = np.full(1000, 0.5, np.float32)
    tensor[::128] = 0.25
    tensor[1], tensor[3] = 0.375, 0.875
    table = dictionary.value_table([tensor])
    np.testing.assert_array_equal(table.values, [0.25, 0.375, 0.5, 0.875])
    np.testing.assert_array_equal(table.counts, [8, 1, 990, 1])
    np.testing.assert_array_equal(table.values[table.indices], tensor)
