"""Golomb-Rice coding of the positions of kept entries (NumPy, vectorized).

Kept positions ``p_0 < p_1 < ...`` of a flattened tensor become gaps
``g_0 = p_0``, ``g_i = p_i - p_{i-1} - 1`` (>= 0). For entries kept
independently with probability ``d`` the gaps are geometric, and the Rice code
with parameter ``k`` (quotient ``g >> k`` in unary, then the ``k`` low bits)
comes within a few percent of the entropy ``H(d) / d`` bits per kept entry when
``k`` is chosen well; `encode_positions` tries the values of ``k`` around
``log2(mean gap)`` and keeps the shortest.

The unary quotients and the fixed-width remainders are stored as two separate
bit streams, so that both directions are vectorized (same total bits as the
interleaved code)::

    k u8 | unary stream | remainder stream

The unary stream's length is not sent: the decoder knows how many gaps to
read, and the remainders start at the byte after the one holding the last
gap's terminating zero.
"""

from __future__ import annotations

import struct

import numpy as np


class RiceError(ValueError):
    """A Rice-coded position stream is malformed."""


def _gaps(indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(indices, np.int64)
    if indices.size == 0:
        return indices
    gaps = np.diff(indices, prepend=-1) - 1
    if np.any(gaps < 0):
        raise ValueError("positions must be strictly increasing")
    return gaps


def _total_bits(gaps: np.ndarray, k: int) -> int:
    return int(np.sum(gaps >> k)) + gaps.size * (1 + k)


def best_parameter(gaps: np.ndarray) -> int:
    """The Rice parameter k that codes ``gaps`` in the fewest bits."""
    if gaps.size == 0:
        return 0
    # floor(log2(mean gap)), in integers (the TensorFlow twin counts the same).
    center = max(int(gaps.sum()) // gaps.size, 1).bit_length() - 1
    candidates = range(max(0, center - 2), min(center + 3, 32))
    return min(candidates, key=lambda k: _total_bits(gaps, k))


def encode_positions(indices: np.ndarray, size: int) -> bytes:
    """Codes strictly increasing positions in ``[0, size)``.

    Args:
        indices: Kept positions, sorted ascending.
        size: Number of entries of the tensor (for validation).

    Returns:
        The coded positions.

    Raises:
        ValueError: If positions are unsorted, repeated or out of range.
    """
    indices = np.asarray(indices, np.int64)
    if indices.size and (indices[0] < 0 or indices[-1] >= size):
        raise ValueError(f"positions must lie in [0, {size})")
    gaps = _gaps(indices)
    k = best_parameter(gaps)
    quotients = gaps >> k
    # Unary: q ones then a zero, for each gap.
    lengths = quotients + 1
    unary = np.ones(int(lengths.sum()), np.uint8)
    unary[np.cumsum(lengths) - 1] = 0
    unary_bytes = np.packbits(unary, bitorder="little").tobytes()
    if k:
        remainders = gaps & ((1 << k) - 1)
        bits = (remainders[:, None] >> np.arange(k - 1, -1, -1)) & 1
        remainder_bytes = np.packbits(bits.astype(np.uint8).ravel()).tobytes()
    else:
        remainder_bytes = b""
    return struct.pack("<B", k) + unary_bytes + remainder_bytes


def encoded_length(indices: np.ndarray) -> int:
    """``len(encode_positions(indices, size))`` without building the bytes."""
    gaps = _gaps(indices)
    k = best_parameter(gaps)
    unary_bits = int(np.sum(gaps >> k)) + gaps.size
    return 1 + (unary_bits + 7) // 8 + (gaps.size * k + 7) // 8


def decode_positions(data: bytes, count: int, size: int) -> np.ndarray:
    """Inverse of `encode_positions`.

    Args:
        data: The coded positions.
        count: Number of positions to read.
        size: Number of entries of the tensor.

    Returns:
        The positions, int64, ascending.

    Raises:
        RiceError: If the stream is truncated or yields positions outside
            ``[0, size)``.
    """
    if len(data) < 1:
        raise RiceError("position stream shorter than its header")
    (k,) = struct.unpack_from("<B", data)
    if k > 32:
        raise RiceError("position stream header is inconsistent")
    unary = np.unpackbits(np.frombuffer(data, np.uint8, offset=1), bitorder="little")
    ends = np.flatnonzero(unary == 0)
    if ends.size < count:
        raise RiceError(f"position stream holds {ends.size} of {count} gaps")
    ends = ends[:count]
    quotients = np.diff(ends, prepend=-1) - 1
    unary_length = (int(ends[-1]) + 1 + 7) // 8 if count else 0
    remainder_bits = np.unpackbits(
        np.frombuffer(data, np.uint8, offset=1 + unary_length)
    )
    if remainder_bits.size < count * k:
        raise RiceError("position stream remainders are truncated")
    if k:
        bits = remainder_bits[: count * k].reshape(count, k).astype(np.int64)
        remainders = bits @ (1 << np.arange(k - 1, -1, -1, dtype=np.int64))
    else:
        remainders = np.zeros(count, np.int64)
    gaps = (quotients.astype(np.int64) << k) + remainders
    positions = np.cumsum(gaps + 1) - 1
    if count and positions[-1] >= size:
        raise RiceError(f"decoded position {positions[-1]} outside a tensor of {size}")
    return positions
