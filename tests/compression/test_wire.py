import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tffprune.compression import (
    PayloadError,
    decode,
    encode,
    quantization_step,
    rice,
    round_trip,
)
from tffprune.compression.baselines import (
    binary_entropy,
    csr_bytes,
    information_bound_bits,
    tff_8bit_bytes,
)
from tffprune.compression.wire import encoded_size


def _random_update(rng, shapes, density):
    tensors = [rng.normal(size=s).astype(np.float32) for s in shapes]
    masks = [rng.random(s) < density for s in shapes]
    return tensors, masks


def test_float32_round_trip_is_exact():
    rng = np.random.default_rng(0)
    tensors, masks = _random_update(rng, [(30, 20), (20,), (3, 3, 2, 4)], 0.3)

    values, decoded_masks = decode(encode(tensors, masks))

    for original, mask, value, decoded in zip(
        tensors, masks, values, decoded_masks, strict=True
    ):
        np.testing.assert_array_equal(decoded, mask)
        np.testing.assert_array_equal(value, np.where(mask, original, 0.0))


def test_int8_error_at_most_half_a_step():
    rng = np.random.default_rng(1)
    tensor = rng.normal(size=(200, 50)).astype(np.float32)
    mask = rng.random(tensor.shape) < 0.2

    (value,), _ = decode(encode([tensor], [mask], "int8"))

    step = quantization_step(tensor[mask])
    assert np.max(np.abs(value[mask] - tensor[mask])) <= step / 2 + 1e-6


@pytest.mark.parametrize("value_format", ["int8", "int4", "int2"])
def test_affine_formats_error_at_most_half_a_step(value_format):
    rng = np.random.default_rng(1)
    tensor = rng.normal(size=(200, 50)).astype(np.float32)
    mask = rng.random(tensor.shape) < 0.2

    (value,), _ = decode(encode([tensor], [mask], value_format))

    step = quantization_step(tensor[mask], value_format)
    levels = 2 ** int(value_format[3:])
    spread = float(tensor[mask].max() - tensor[mask].min())
    assert step == pytest.approx(spread / (levels - 1), rel=1e-6)
    assert np.max(np.abs(value[mask] - tensor[mask])) <= step / 2 + 1e-6
    assert len(np.unique(value[mask])) <= levels


def test_int4_hand_worked_sizes_and_values():
    # 0, 1, ..., 15 over 15 steps of 1: every value exact; 16 values in 4 bits
    # are 8 bytes more than an empty tensor (which has min and scale too).
    tensor = np.arange(16, dtype=np.float32)

    payload = encode([tensor], None, "int4")

    (value,), _ = decode(payload)
    np.testing.assert_array_equal(value, tensor)
    assert len(payload) == len(encode([tensor[:0]], None, "int4")) + 8
    # 0.4 and 0.6 of a step round to the nearer level.
    (value,), _ = decode(
        encode([np.array([0, 0.4, 0.6, 15], np.float32)], None, "int4")
    )
    np.testing.assert_allclose(value, [0, 0, 1, 15], atol=1e-6)


def test_int2_hand_worked_packs_four_to_a_byte():
    tensor = np.array([-1.5, -0.5, 0.5, 1.5, 0.4], np.float32)

    payload = encode([tensor], None, "int2")

    # min -1.5, step 1: codes 0 1 2 3 | 2 -> 0b11100100, 0b00000010
    assert payload[-4 - 2 : -4] == bytes([0b11100100, 0b00000010])
    (value,), _ = decode(payload)
    np.testing.assert_allclose(value, [-1.5, -0.5, 0.5, 1.5, 0.5], atol=1e-6)


def test_int1_sends_signs_and_the_mean_magnitude():
    tensor = np.array([0.5, -0.25, 0.0, -1.25, 3.0, -1.0, 2.0, -2.0, 1.0], np.float32)
    mask = np.ones(9, bool)
    mask[4] = False  # 3.0 is not sent

    payload = encode([tensor], [mask], "int1")

    # Kept |x|: 0.5 0.25 0 1.25 1 2 2 1 -> mean 1.0; 8 signs in one byte.
    (value,), _ = decode(payload)
    np.testing.assert_array_equal(value, [1, -1, 1, -1, 0, -1, 1, -1, 1])
    assert len(payload) == encoded_size([mask], "int1")
    dense = encode([tensor], None, "int1")
    assert len(dense) == len(encode([tensor[:0]], None, "int1")) + 2  # 9 bits


def test_float16_round_trip_within_half_precision():
    tensor = np.linspace(-3, 3, 100, dtype=np.float32)

    (value,), _ = decode(encode([tensor], None, "float16"))

    np.testing.assert_allclose(value, tensor, rtol=1e-3)


@pytest.mark.parametrize("positions", ["bitmap", "gaps", "auto"])
def test_positions_exact_for_each_coding(positions):
    rng = np.random.default_rng(2)
    tensors, masks = _random_update(rng, [(64, 64)], 0.05)

    _, decoded = decode(encode(tensors, masks, positions=positions))

    np.testing.assert_array_equal(decoded[0], masks[0])


def test_edge_tensors_empty_all_zero_all_kept():
    tensors = [np.zeros((0, 3), np.float32), np.zeros((4, 4), np.float32), np.ones(5)]
    masks = [np.zeros((0, 3), bool), np.zeros((4, 4), bool), np.ones(5, bool)]

    for value_format in ("float32", "float16", "int8"):
        values, decoded = decode(encode(tensors, masks, value_format))
        assert values[0].shape == (0, 3)
        assert not decoded[1].any() and np.all(values[1] == 0)
        assert decoded[2].all()
        np.testing.assert_allclose(values[2], 1.0)


def test_low_sparsity_falls_back_to_dense():
    rng = np.random.default_rng(3)
    tensors, masks = _random_update(rng, [(100, 100)], 1.0)
    masks[0][3, 7] = False  # one pruned entry: sparse would cost more than dense

    payload = encode(tensors, masks)

    # Header (3 magic + version, format + count 1) + rank 1 + dims 100, 100 (a
    # byte each) + encoding 1 + crc 4 + 4 bytes/entry: the mask travels
    # implicitly as "zero means pruned".
    assert len(payload) == 3 + 2 + 1 + 1 + 2 + 1 + 40_000 + 4
    _, decoded = decode(payload)
    np.testing.assert_array_equal(decoded[0], masks[0])


@given(
    rows=st.integers(1, 60),
    columns=st.integers(1, 60),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    value_format=st.sampled_from(["float32", "float16", "int8"]),
)
@settings(max_examples=60, deadline=None)
def test_property_round_trip_never_larger_than_dense(
    rows, columns, density, seed, value_format
):
    rng = np.random.default_rng(seed)
    tensors, masks = _random_update(rng, [(rows, columns)], density)

    payload = encode(tensors, masks, value_format)
    values, decoded = decode(payload, [(rows, columns)])

    np.testing.assert_array_equal(decoded[0], masks[0])
    # Never more than dense float32 plus fixed headers: payload 10 bytes
    # (magic, version, format, count, crc), per tensor rank 1 and dims 2 (each
    # below 128), encoding 1, a sparse header of at most 5 (kept count and
    # positions length below 16,384: 2 bytes each, coding 1) and, for int8,
    # min and scale 8.
    assert len(payload) <= 4 * rows * columns + 10 + 3 + 1 + 5 + 8


def test_sparse_size_within_bound_factor():
    rng = np.random.default_rng(4)
    tensors, masks = _random_update(rng, [(1000, 500)], 0.1)

    payload = encode(tensors, masks, "int8")

    bound_bytes = information_bound_bits(masks, "int8") / 8
    assert len(payload) / bound_bytes < 1.05


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: p[:-10], "checksum mismatch|too short|truncated"),
        (lambda p: p[:20] + bytes([p[20] ^ 0xFF]) + p[21:], "checksum mismatch"),
        (lambda p: b"XYZ" + p[3:], "bad magic"),
    ],
)
def test_corrupted_payloads_are_rejected(damage, message):
    tensors, masks = _random_update(np.random.default_rng(5), [(50, 40)], 0.1)

    with pytest.raises(PayloadError, match=message):
        decode(damage(encode(tensors, masks)))


def test_wrong_version_and_shapes_are_rejected():
    import struct
    import zlib

    tensors, masks = _random_update(np.random.default_rng(6), [(5, 4)], 0.5)
    payload = encode(tensors, masks)
    body = payload[:3] + bytes([9]) + payload[4:-4]
    other_version = body + struct.pack("<I", zlib.crc32(body))

    with pytest.raises(PayloadError, match="version 9"):
        decode(other_version)
    with pytest.raises(PayloadError, match=r"shape \(5, 4\), expected \(4, 5\)"):
        decode(payload, [(4, 5)])


def test_non_finite_values_cannot_be_encoded():
    with pytest.raises(ValueError, match="NaN or infinite"):
        encode([np.array([1.0, np.nan])])


def test_baseline_sizes_by_hand():
    # 2x3 with 2 kept: CSR data 2*4 + indices 2*4 + indptr 3*4 = 28 bytes.
    masks = [np.array([[True, False, False], [False, False, True]])]

    assert csr_bytes(masks) == 28
    assert tff_8bit_bytes([(100, 300), (10,)]) == 30_000 + 8 + 40
    assert binary_entropy(0.5) == 1.0
    assert information_bound_bits([np.array([True, False])], "int8") == 2 * 1.0 + 8


def test_csr_and_coo_sizes_equal_real_scipy_matrices():
    from tffprune.compression.baselines import as_scipy_csr, coo_bytes

    rng = np.random.default_rng(7)
    tensors, masks = _random_update(rng, [(30, 20), (20,), (3, 3, 2, 4)], 0.3)

    matrices = as_scipy_csr(tensors, masks)

    assert csr_bytes(masks) == sum(
        m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in matrices
    )
    coo = [m.tocoo() for m in matrices]
    assert coo_bytes(masks) == sum(
        m.data.nbytes + m.row.nbytes + m.col.nbytes for m in coo
    )


def _their_file(tensor):
    """Their notebooks' ``ndarray_to_sparse_bytes``, as written there."""
    import io

    import scipy.sparse

    buffer = io.BytesIO()
    if len(tensor.shape) > 1:
        original_shape = tensor.shape
        matrix = scipy.sparse.csr_matrix(tensor.reshape(-1, tensor.shape[-1]))
        np.savez(
            buffer,
            data=matrix.data,
            indices=matrix.indices,
            indptr=matrix.indptr,
            shape=matrix.shape,
            original_shape=original_shape,
            allow_pickle=False,
        )
    else:
        np.save(buffer, tensor, allow_pickle=False)
    return len(buffer.getvalue())


def test_jeurkar_messages_count_the_files_their_code_writes():
    from tffprune.compression.baselines import jeurkar_message_bytes

    rng = np.random.default_rng(3)
    # Keras shapes: a conv kernel (HWIO), its bias, a BatchNorm's four
    # vectors, a dense kernel and bias; 1-D tensors are sent whole.
    shapes = [(3, 3, 2, 4), (4,), (4,), (4,), (4,), (4,), (36, 10), (10,)]
    for density in (1.0, 0.3, 0.0):
        masks = [
            rng.random(s) < density if len(s) > 1 else np.ones(s, bool) for s in shapes
        ]
        files = 0
        for shape, mask in zip(shapes, masks, strict=True):
            values = np.where(mask, 1.0, 0.0).astype(np.float32)
            if len(shape) == 4:  # PyTorch's OIHW
                values = values.transpose(3, 2, 0, 1)
            elif len(shape) == 2:  # Linear: out x in
                values = values.T
            files += _their_file(values)
        files += _their_file(np.zeros((), np.int64))  # num_batches_tracked

        assert jeurkar_message_bytes(shapes, 1, csr_bytes(masks)) == files


def test_known_positions_send_only_the_kept_values():
    tensor = np.arange(1.0, 13.0, dtype=np.float32).reshape(3, 4)
    mask = tensor % 3 == 0  # keeps 3, 6, 9, 12
    shapes = [(3, 4)]

    payload = encode([tensor], [mask], "float32", held=[mask])

    # magic 3 + version, format 2 + count 1 + rank 1 + dims 2 + encoding 1
    # + kept count 1 + 4 float32 values 16 + crc 4.
    assert len(payload) == 3 + 2 + 1 + 1 + 2 + 1 + 1 + 16 + 4
    assert len(payload) == encoded_size([mask], "float32", held=[mask])
    assert len(payload) < len(encode([tensor], [mask], "float32"))
    values, masks = decode(payload, shapes, held=[mask])
    np.testing.assert_array_equal(values[0], np.where(mask, tensor, 0))
    np.testing.assert_array_equal(masks[0], mask)
    with pytest.raises(PayloadError, match="holds its mask"):
        decode(payload, shapes)
    with pytest.raises(PayloadError, match="the held mask keeps 6"):
        decode(payload, shapes, held=[tensor % 2 == 0])


@pytest.mark.parametrize("value_format", ["float16", "int8", "int4", "int2", "int1"])
def test_known_positions_sizes_match_for_every_format(value_format):
    rng = np.random.default_rng(3)
    tensors = [rng.normal(size=(50, 20)).astype(np.float32), np.ones(20, np.float32)]
    masks = [rng.random((50, 20)) < 0.3, np.ones(20, bool)]

    payload = encode(tensors, masks, value_format, held=masks)

    assert len(payload) == encoded_size(masks, value_format, held=masks)
    values, _ = decode(payload, [(50, 20), (20,)], held=masks)
    expected = np.where(masks[0], round_trip(tensors[0], value_format), 0)
    expected[masks[0]] = round_trip(tensors[0][masks[0]], value_format)
    np.testing.assert_array_equal(values[0], expected)


def test_changed_positions_send_only_the_flips_against_the_held_mask():
    rng = np.random.default_rng(5)
    tensor = rng.normal(size=(100, 100)).astype(np.float32)
    old = rng.random((100, 100)) < 0.5  # what the receiver holds
    new = old.copy()
    new[np.unravel_index(np.flatnonzero(old)[:20], old.shape)] = False  # 20 flips

    payload = encode([tensor], [new], "int8", held=[old])

    assert len(payload) == encoded_size([new], "int8", held=[old])
    fresh = encode([tensor], [new], "int8")  # 10,000-entry bitmap or gaps
    assert len(fresh) - len(payload) > 1000
    values, masks = decode(payload, [(100, 100)], held=[old])
    np.testing.assert_array_equal(masks[0], new)
    step = quantization_step(tensor[new])
    assert np.max(np.abs(values[0] - np.where(new, tensor, 0))) <= step / 2 + 1e-6
    # One flip: a few bytes of positions.
    one = old.copy()
    flip = np.flatnonzero(old)[0]
    one[np.unravel_index(flip, old.shape)] = False
    size_one = encoded_size([one], "int8", held=[old])
    size_same = encoded_size([old], "int8", held=[old])
    # The flips count and the change's length, a byte each, the change's gap
    # code, and one int8 value fewer (the kept count is 2 bytes either way).
    change = rice.encoded_length(np.array([flip]))
    assert change <= 8  # its parameter byte and a few bits
    assert size_one - size_same == 2 + change - 1


def test_counts_and_dims_take_a_byte_per_seven_bits():
    # 300 = 0b10_0101100: two varint bytes; 20,000 needs 15 bits: three.
    for shape, dims_bytes in (((300,), 2), ((1, 20_000), 1 + 3)):
        tensor = np.ones(shape, np.float32)

        payload = encode([tensor], None, "float16")

        # magic 3, version and format 2, count 1, rank 1, encoding 1, crc 4.
        assert len(payload) == 3 + 2 + 1 + 1 + dims_bytes + 1 + 2 * tensor.size + 4
        assert len(payload) == encoded_size([np.ones(shape, bool)], "float16")
        (value,), _ = decode(payload, [shape])
        np.testing.assert_array_equal(value, tensor)
