"""Tensors of few distinct values: a value table and range-coded indices.

FedPM's server sends its probabilities down (`tffprune.fl.fedpm`). With the
posterior reset every round they are ``eps + (1 - 2 eps) j / K`` for the ``K``
clients of the round, so there are at most ``K + 1`` distinct values however
many weights; sent at ``b`` bits, at most ``2**b``. Coding each entry as the
index of its value under the message's own histogram costs ``n H(values)``
bits, the bound, plus a header, and loses nothing::

    distinct count var | values float32 x count | counts var x count |
    range coder words (32-bit, little-endian)

``constriction``'s range coder with a ``Categorical`` model of the counts;
the decoder rebuilds the same model from the header. Shapes are known to
both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import constriction
import numpy as np

# The wire format's varints (LEB128) and reader, shared.
from tffprune.compression.wire import PayloadError, _Reader, _varint

__all__ = ["decode_tensors", "encode_tensors", "encode_with_bound", "entropy_bits"]


def _flat(tensors: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(t, np.float32).ravel() for t in tensors]
        or [np.zeros(0, np.float32)]
    )


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def encode_tensors(tensors: Sequence[np.ndarray]) -> bytes:
    """Codes float32 tensors (exactly) as a value table and coded indices."""
    return encode_with_bound(tensors)[0]


def encode_with_bound(tensors: Sequence[np.ndarray]) -> tuple[bytes, float]:
    """`encode_tensors`'s message and `entropy_bits`, from one pass over the values."""
    flat = _flat(tensors)
    values, indices, counts = np.unique(flat, return_inverse=True, return_counts=True)
    header = _varint(values.size) + values.astype("<f4").tobytes()
    header += b"".join(_varint(int(c)) for c in counts)
    bound = _entropy_bits(counts)
    if values.size <= 1:
        return header, bound
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(indices.astype(np.int32), _model(counts))
    return header + encoder.get_compressed().astype("<u4").tobytes(), bound


def decode_tensors(
    message: bytes, shapes: Sequence[tuple[int, ...]]
) -> list[np.ndarray]:
    """Inverse of `encode_tensors`: float32 tensors of ``shapes``.

    Raises:
        PayloadError: If the message is truncated or does not fit the shapes.
    """
    reader = _Reader(message)
    count = reader.varint()
    values = np.frombuffer(reader.take(4 * count), "<f4").astype(np.float32)
    counts = np.array([reader.varint() for _ in range(count)], np.float64)
    size = sum(int(np.prod(s)) for s in shapes)
    if int(counts.sum()) != size:
        raise PayloadError(f"a table of {int(counts.sum())} entries for {size}")
    if count <= 1:
        flat = np.full(size, values[0] if count else 0.0, np.float32)
    else:
        words = reader.take(len(message) - reader.offset)
        if len(words) % 4:
            raise PayloadError("range coder words truncated")
        decoder = constriction.stream.queue.RangeDecoder(
            np.frombuffer(words, "<u4").astype(np.uint32)
        )
        flat = values[decoder.decode(_model(counts), size)]
    tensors, start = [], 0
    for shape in shapes:
        number = int(np.prod(shape))
        tensors.append(flat[start : start + number].reshape(shape))
        start += number
    return tensors


def entropy_bits(tensors: Sequence[np.ndarray]) -> float:
    """``n H(values)``: the bits of the indices at the message's own histogram."""
    flat = _flat(tensors)
    return _entropy_bits(np.unique(flat, return_counts=True)[1]) if flat.size else 0.0


def _entropy_bits(counts: np.ndarray) -> float:
    total = counts.sum()
    if not total:
        return 0.0
    frequencies = counts / total
    return float(-total * np.sum(frequencies * np.log2(frequencies)))
