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

A receiver that already holds an earlier message's tensors (a FedPM client
that downloaded the probabilities of an earlier round) needs only the new
values given the ones it holds: `encode_given` sends the table of new values
and, per value held, the histogram of the new values at its entries, and
codes each entry's new index under the histogram of its held value. That
costs ``n H(new | held)`` bits, the conditional entropy at the message's own
histograms, plus a header of ``held x new`` counts::

    new count var | new values float32 x count | held count var |
    counts var x (held count x new count), held-major |
    range coder words, entries grouped by held value (ascending), each group
    in flat order

A group whose histogram has a single value costs nothing beyond the header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import constriction
import numpy as np

# The wire format's varints (LEB128), reader and bit packing, shared.
from tffprune.compression.wire import PayloadError, _pack, _Reader, _unpack, _varint

__all__ = [
    "BYTE_INDEXED_VALUES",
    "ValueTable",
    "conditional_bits",
    "decode_given",
    "decode_tensors",
    "encode_given",
    "encode_tensors",
    "encode_with_bound",
    "entropy_bits",
    "split",
    "value_table",
]

BYTE_INDEXED_VALUES = 256
"""The most distinct values whose indices fit in a byte (`ValueTable.indices`)."""

_SAMPLE_STRIDE = 64


class ValueTable(NamedTuple):
    """Tensors as their distinct values and, per entry, its value's index.

    Attributes:
        values: The distinct values, float32, ascending.
        indices: Per entry of the tensors (flattened, concatenated), the
            index of its value: uint8 for at most 256 values, else wider.
        counts: Per value, its number of entries.
    """

    values: np.ndarray
    indices: np.ndarray
    counts: np.ndarray

    def packed_indices(self) -> np.ndarray:
        """The indices at the fewest of 1, 2, 4 or 8 bits each, packed.

        For a checkpoint: FedPM's 11 values after a round of 10 clients take 4
        bits an entry, half the bytes of `indices`.

        Raises:
            ValueError: If the table has more than 256 values.
        """
        bits = _index_bits(self.values.size)
        return np.frombuffer(_pack(self.indices, bits), np.uint8)

    @classmethod
    def from_packed(cls, values: np.ndarray, packed: np.ndarray, size: int):
        """Inverse of `packed_indices`: the table of ``size`` entries."""
        values = np.asarray(values, np.float32)
        bits = _index_bits(values.size)
        indices = _unpack(np.asarray(packed, np.uint8).tobytes(), size, bits)
        if indices.size != size or (size and int(indices.max()) >= values.size):
            raise ValueError(f"packed indices do not fit {values.size} values")
        counts = np.bincount(indices, minlength=values.size).astype(np.int64)
        return cls(values, indices, counts)


def _index_bits(count: int) -> int:
    """The fewest of 1, 2, 4 or 8 bits that index ``count`` values."""
    if count > BYTE_INDEXED_VALUES:
        raise ValueError(f"{count} values do not index in a byte")
    return next(b for b in (1, 2, 4, 8) if count <= 2**b)


def _flat(tensors: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(t, np.float32).ravel() for t in tensors]
        or [np.zeros(0, np.float32)]
    )


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def value_table(tensors: Sequence[np.ndarray]) -> ValueTable:
    """The tensors' `ValueTable`.

    Tensors of few values (FedPM's probabilities: 2.4 million entries, 15
    values) are looked up among the values of every 64th entry, without a
    sort of all entries; if that misses a value, or there are many, one sort
    of every entry gives the table.
    """
    flat = _flat(tensors)
    candidates = np.unique(flat[::_SAMPLE_STRIDE])
    if 0 < candidates.size <= BYTE_INDEXED_VALUES:
        indices = np.minimum(np.searchsorted(candidates, flat), candidates.size - 1)
        if np.array_equal(candidates[indices], flat):
            counts = np.bincount(indices, minlength=candidates.size)
            return ValueTable(candidates, indices.astype(np.uint8), counts)
    values, indices, counts = np.unique(flat, return_inverse=True, return_counts=True)
    dtype = np.uint8 if values.size <= BYTE_INDEXED_VALUES else np.int64
    return ValueTable(values.astype(np.float32), indices.astype(dtype), counts)


def encode_tensors(tensors: Sequence[np.ndarray]) -> bytes:
    """Codes float32 tensors (exactly) as a value table and coded indices."""
    return encode_with_bound(value_table(tensors))[0]


def encode_with_bound(table: ValueTable) -> tuple[bytes, float]:
    """`encode_tensors`'s message of a table, and its bound (`entropy_bits`)."""
    values, indices, counts = table
    header = _varint(values.size) + values.astype("<f4").tobytes()
    header += b"".join(_varint(int(c)) for c in counts)
    bound = _entropy_bits(counts)
    if values.size <= 1:
        return header, bound
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(indices.astype(np.int32), _model(counts))
    return header + encoder.get_compressed().astype("<u4").tobytes(), bound


def _joint_counts(table: ValueTable, held: ValueTable) -> np.ndarray:
    """Per held value (rows), the counts of the new values at its entries."""
    if table.indices.size != held.indices.size:
        raise ValueError(
            f"{table.indices.size} entries sent against {held.indices.size} held"
        )
    columns = table.values.size
    joint = held.indices.astype(np.int64) * columns + table.indices
    return np.bincount(joint, minlength=held.values.size * columns).reshape(
        held.values.size, columns
    )


def conditional_bits(table: ValueTable, held: ValueTable) -> float:
    """``n H(new | held)`` at the message's own histograms: `encode_given`'s bound."""
    return _conditional_bits(_joint_counts(table, held))


def _conditional_bits(joint: np.ndarray) -> float:
    return float(sum(_entropy_bits(row[row > 0]) for row in joint))


def encode_given(table: ValueTable, held: ValueTable) -> tuple[bytes, float]:
    """Codes ``table``'s tensors for a receiver holding ``held``'s (same shapes).

    Returns:
        The message and its bound, `conditional_bits`.

    Raises:
        ValueError: If the two hold different numbers of entries.
    """
    joint = _joint_counts(table, held)
    header = _varint(table.values.size) + table.values.astype("<f4").tobytes()
    header += _varint(held.values.size)
    header += b"".join(_varint(int(c)) for c in joint.ravel())
    grouped = table.indices[np.argsort(held.indices, kind="stable")]
    encoder = constriction.stream.queue.RangeEncoder()
    start = 0
    for row in joint:
        group = grouped[start : start + int(row.sum())]
        start += group.size
        present = np.flatnonzero(row)
        if present.size > 1:
            rank = np.zeros(row.size, np.int32)
            rank[present] = np.arange(present.size, dtype=np.int32)
            encoder.encode(rank[group], _model(row[present]))
    words = encoder.get_compressed().astype("<u4").tobytes()
    return header + words, _conditional_bits(joint)


def decode_given(
    message: bytes, held: ValueTable, shapes: Sequence[tuple[int, ...]]
) -> list[np.ndarray]:
    """Inverse of `encode_given`, for the receiver holding ``held``.

    Raises:
        PayloadError: If the message is truncated, or does not fit ``held``
            or the shapes.
    """
    reader = _Reader(message)
    columns = reader.varint()
    values = np.frombuffer(reader.take(4 * columns), "<f4").astype(np.float32)
    rows = reader.varint()
    size = sum(int(np.prod(s)) for s in shapes)
    if rows != held.values.size or held.indices.size != size:
        raise PayloadError(
            f"a message for {rows} held values, the receiver holds "
            f"{held.values.size} over {held.indices.size} entries for {size}"
        )
    joint = np.array(
        [reader.varint() for _ in range(rows * columns)], np.int64
    ).reshape(rows, columns)
    if not np.array_equal(joint.sum(axis=1), held.counts):
        raise PayloadError("the message's histograms do not fit the values held")
    words = reader.take(len(message) - reader.offset)
    if len(words) % 4:
        raise PayloadError("range coder words truncated")
    decoder = constriction.stream.queue.RangeDecoder(
        np.frombuffer(words, "<u4").astype(np.uint32)
    )
    grouped, start = np.zeros(size, np.int64), 0
    for row in joint:
        count = int(row.sum())
        present = np.flatnonzero(row)
        if present.size == 1:
            grouped[start : start + count] = present[0]
        elif present.size > 1:
            grouped[start : start + count] = present[
                decoder.decode(_model(row[present]), count)
            ]
        start += count
    indices = np.empty(size, np.int64)
    indices[np.argsort(held.indices, kind="stable")] = grouped
    return split(values[indices], shapes)


def split(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """``flat`` (the tensors' entries, concatenated) as tensors of ``shapes``."""
    tensors, start = [], 0
    for shape in shapes:
        number = int(np.prod(shape))
        tensors.append(flat[start : start + number].reshape(shape))
        start += number
    return tensors


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
    return split(flat, shapes)


def entropy_bits(tensors: Sequence[np.ndarray]) -> float:
    """``n H(values)``: the bits of the indices at the message's own histogram."""
    return _entropy_bits(value_table(tensors).counts)


def _entropy_bits(counts: np.ndarray) -> float:
    total = counts.sum()
    if not total:
        return 0.0
    frequencies = counts / total
    return float(-total * np.sum(frequencies * np.log2(frequencies)))
