"""The wire format of a round's messages, both ways: pruned tensors as bytes.

A client's update going up and the server's values going down are the same
kind of message.

``encode(tensors, masks) -> bytes`` and ``decode(bytes) -> (tensors, masks)``
are real serializations. A round's values never leave its TFF computation, so
the byte counts tffprune reports come from `encoded_size`, which equals
``len(encode(...))`` exactly (tests check it, and ``--verify-uploads`` checks
every upload of a run).

Layout (``var``: an unsigned LEB128 varint, 7 bits a byte, so a count
below 128 takes 1 byte and one below 16,384 takes 2; fixed-width integers
little-endian)::

    magic  b"TFP" | version u8 | value format u8 | tensor count var
    per tensor:
      rank u8 | dims var x rank | encoding u8
      encoding DENSE : values of all entries
      encoding SPARSE: kept count var | position coding u8 | positions bytes
                       length var | positions | values of the kept entries
    crc32 of everything above, u32

Version 2 (varints) replaced version 1 (u32 counts and dims), which cost a
small model's upload 5-10% over its information bound in headers alone
(LeNet-5's ten tensors: 76 bytes of dims).

Values are ``float32``, ``float16``, ``int8``, ``int4``, ``int2`` or ``int1``.

* ``intB`` for B = 8, 4, 2 is per-tensor affine quantization over the kept
  values with ``L = 2**B`` levels: ``scale = (max - min) / (L - 1)``,
  ``q = round((x - min) / scale)``, decoded as ``q * scale + min`` (error at
  most half a step, ``scale / 2``); min and scale are sent as float32 and the
  ``q`` packed B bits each, little-endian within a byte (``int8`` stores
  ``q - 128`` as a signed byte, as version 1 did).
* ``int1`` is the sign and one scale per tensor (signSGD with a scale, as in
  EF-signSGD, Karimireddy et al. 2019): ``scale = mean |x|`` over the kept
  values, bit ``x >= 0``, decoded as ``+scale`` or ``-scale``; the scale is
  sent as float32 and the bits packed eight to a byte.

The low-bit formats are meant for updates with error feedback
(`tffprune.compression.error_feedback`), which carries what they drop into
the next round.

Positions are coded as a bitmap (one bit per entry) or as Golomb-Rice coded gaps
between the rarer kind of entry (kept ones below 50% density, pruned ones
above), whichever is smaller (``positions="auto"``). Encodings per tensor:

* DENSE: every entry kept, values only;
* SPARSE: kept count, positions, values of the kept entries;
* DENSE_ZEROS_PRUNED (float32 only, when no kept value is exactly 0): all
  values, the mask being "nonzero"; chosen when it is no larger than SPARSE;
* KNOWN_POSITIONS: kept count and the kept values only, when the receiver
  already holds this very mask (``held``), e.g. a Sub-FedAvg client's own
  subnetwork sent down to it, or its upload when its mask did not change;
* CHANGED_POSITIONS: when the receiver holds an older mask: kept count, the
  positions that flipped (Golomb-Rice coded gaps) and the kept values; chosen
  when smaller than SPARSE (a pruning step flips few entries).

So with float32 values a tensor never costs more than dense float32 (plus its
small header), and the other formats are far below it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from tffprune.compression import mask_facts, rice
from tffprune.compression.mask_facts import MaskFacts

MAGIC = b"TFP"
VERSION = 2
VALUE_FORMATS = ("float32", "float16", "int8", "int4", "int2", "int1")
DOWNLOAD_VALUE_FORMATS = ("float32", "float16", "int8", "int4")
VALUE_BITS = {"float32": 32, "float16": 16, "int8": 8, "int4": 4, "int2": 2, "int1": 1}
POSITION_CODINGS = ("auto", "bitmap", "gaps")
# The bits a FedPM probability may be sent down in (32: float32;
# `tffprune.pruning.probabilistic.quantized`).
PROBABILITY_BITS = (32, 8, 6, 4, 3, 2, 1)

_DENSE, _SPARSE, _DENSE_ZEROS_PRUNED, _KNOWN_POSITIONS, _CHANGED_POSITIONS = range(5)
_BITMAP, _GAPS, _GAPS_PRUNED = 0, 1, 2
_VALUE_CODES = {name: code for code, name in enumerate(VALUE_FORMATS)}


class PayloadError(ValueError):
    """A payload is truncated, corrupted, or does not match what was expected."""


class CodecMismatchError(RuntimeError):
    """A message decodes to other than what was sent, or is not the size counted.

    Never expected: tffprune checks its codecs on the messages of a run, and
    this error says a check failed (a bug, not bad input).
    """


def _varint(value: int) -> bytes:
    """``value`` (>= 0) as an unsigned LEB128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varint_size(value: int) -> int:
    """``len(_varint(value))``."""
    return max(1, -(-int(value).bit_length() // 7))


def _affine_header(values: np.ndarray, levels: int) -> tuple[float, float]:
    """``(min, scale)`` of the affine formats; ``scale`` rounded to float32."""
    if values.size == 0:
        return 0.0, 0.0
    low, high = float(values.min()), float(values.max())
    return low, float(np.float32((high - low) / (levels - 1)))


def _sign_scale(values: np.ndarray) -> float:
    """``int1``'s scale: the mean magnitude (summed in float64), as float32."""
    if values.size == 0:
        return 0.0
    return float(np.float32(np.abs(values.astype(np.float64)).sum() / values.size))


def quantize(values: np.ndarray, value_format: str) -> np.ndarray:
    """The integer codes of the ``int*`` formats (unsigned, before packing).

    ``intB`` (B = 8, 4, 2): ``round((x - min) / scale)`` in ``[0, 2**B - 1]``;
    ``int1``: 1 where ``x >= 0``. Computed in float32, as the TensorFlow twin
    (`tffprune.compression.tf_values`) does.
    """
    values = np.asarray(values, np.float32).ravel()
    if value_format == "int1":
        return (values >= 0).astype(np.uint8)
    levels = 2 ** VALUE_BITS[value_format]
    low, scale = _affine_header(values, levels)
    if scale == 0.0:
        return np.zeros(values.size, np.uint8)
    codes = np.round((values - np.float32(low)) / np.float32(scale))
    return codes.clip(0, levels - 1).astype(np.uint8)


def _pack(codes: np.ndarray, bits: int) -> bytes:
    """``bits``-bit codes, ``8 // bits`` to a byte, the first in the low bits."""
    per_byte = 8 // bits
    padded = np.zeros(-(-codes.size // per_byte) * per_byte, np.uint8)
    padded[: codes.size] = codes
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    return (
        (padded.reshape(-1, per_byte) << shifts).sum(axis=1, dtype=np.uint8).tobytes()
    )


def _unpack(data: bytes, count: int, bits: int) -> np.ndarray:
    per_byte = 8 // bits
    packed = np.frombuffer(data, np.uint8)
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    codes = (packed[:, None] >> shifts) & np.uint8(2**bits - 1)
    return codes.ravel()[:count]


def _sparse_header_size(kept: int, position_length: int) -> int:
    """SPARSE's bytes after its encoding byte, before positions and values."""
    return _varint_size(kept) + 1 + _varint_size(position_length)


def _changed_header_size(kept: int, flips: int, change_length: int) -> int:
    """CHANGED_POSITIONS's bytes after its encoding byte, before the change."""
    return _varint_size(kept) + _varint_size(flips) + _varint_size(change_length)


def _encode_values(values: np.ndarray, value_format: str) -> bytes:
    values = np.asarray(values, np.float32).ravel()
    if value_format == "float32":
        return values.astype("<f4").tobytes()
    if value_format == "float16":
        return values.astype("<f2").tobytes()
    codes = quantize(values, value_format)
    if value_format == "int1":
        return struct.pack("<f", _sign_scale(values)) + _pack(codes, 1)
    low, scale = _affine_header(values, 2 ** VALUE_BITS[value_format])
    header = struct.pack("<ff", low, scale)
    if value_format == "int8":
        return header + (codes.astype(np.int16) - 128).astype(np.int8).tobytes()
    return header + _pack(codes, VALUE_BITS[value_format])


def _values_size(count: int, value_format: str) -> int:
    bits = VALUE_BITS[value_format]
    if bits >= 16:
        return bits // 8 * count
    header = 4 if value_format == "int1" else 8
    return header + -(-count * bits // 8)


def _decode_values(data: bytes, count: int, value_format: str) -> np.ndarray:
    if value_format == "float32":
        return np.frombuffer(data, "<f4", count).astype(np.float32)
    if value_format == "float16":
        return np.frombuffer(data, "<f2", count).astype(np.float32)
    if value_format == "int1":
        (scale,) = struct.unpack_from("<f", data)
        signs = _unpack(data[4:], count, 1).astype(np.float32) * 2 - 1
        return (signs * np.float32(scale)).astype(np.float32)
    low, scale = struct.unpack_from("<ff", data)
    if value_format == "int8":
        codes = np.frombuffer(data, np.int8, count, offset=8).astype(np.float32) + 128
    else:
        codes = _unpack(data[8:], count, VALUE_BITS[value_format]).astype(np.float32)
    return (codes * np.float32(scale) + np.float32(low)).astype(np.float32)


def quantization_step(values: np.ndarray, value_format: str = "int8") -> float:
    """The step of an affine format, ``(max - min) / (2**B - 1)``, as coded."""
    return _affine_header(
        np.asarray(values, np.float32).ravel(), 2 ** VALUE_BITS[value_format]
    )[1]


def round_trip(values: np.ndarray, value_format: str) -> np.ndarray:
    """What a receiver decodes from ``values`` sent whole in ``value_format``."""
    values = np.asarray(values, np.float32)
    decoded = _decode_values(
        _encode_values(values, value_format), values.size, value_format
    )
    return decoded.reshape(values.shape)


def _positions_length(facts: MaskFacts, coding: str) -> int:
    """``len()`` of the positions `_encode_positions` would choose."""
    candidates = []
    if coding in ("auto", "bitmap"):
        candidates.append((facts.size + 7) // 8)
    if coding in ("auto", "gaps"):
        candidates.append(facts.gaps_length)
    return min(candidates)


def _encode_positions(mask: np.ndarray, coding: str) -> tuple[int, bytes]:
    flat = mask.ravel()
    candidates = []
    if coding in ("auto", "bitmap"):
        candidates.append((_BITMAP, np.packbits(flat, bitorder="little").tobytes()))
    if coding in ("auto", "gaps"):
        # Code whichever side is rarer: kept positions, or pruned ones.
        if np.count_nonzero(flat) <= flat.size // 2:
            candidates.append(
                (_GAPS, rice.encode_positions(np.flatnonzero(flat), flat.size))
            )
        else:
            candidates.append(
                (_GAPS_PRUNED, rice.encode_positions(np.flatnonzero(~flat), flat.size))
            )
    return min(candidates, key=lambda item: len(item[1]))


def _decode_positions(code: int, data: bytes, size: int, count: int) -> np.ndarray:
    if code == _BITMAP:
        if len(data) != (size + 7) // 8:
            raise PayloadError(f"bitmap of {len(data)} bytes for {size} entries")
        return np.unpackbits(
            np.frombuffer(data, np.uint8), count=size, bitorder="little"
        ).astype(bool)
    if code in (_GAPS, _GAPS_PRUNED):
        try:
            if code == _GAPS:
                mask = np.zeros(size, bool)
                mask[rice.decode_positions(data, count, size)] = True
            else:
                mask = np.ones(size, bool)
                mask[rice.decode_positions(data, size - count, size)] = False
        except rice.RiceError as error:
            raise PayloadError(str(error)) from None
        return mask
    raise PayloadError(f"unknown position coding {code}")


def encode(
    tensors: Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None = None,
    value_format: str = "float32",
    positions: str = "auto",
    held: Sequence[np.ndarray | None] | None = None,
) -> bytes:
    """Serializes a (pruned) update.

    Args:
        tensors: The tensors (any shapes; sent as float32/16 or int8).
        masks: One boolean mask per tensor (True kept); ``None`` sends all.
            Entries outside the mask are not sent and decode as 0.
        value_format: ``float32``, ``float16`` or ``int8``.
        positions: ``auto`` (smaller of the two), ``bitmap`` or ``gaps``.
        held: Per tensor, the mask the receiver already holds, or None: only
            the change against it is sent (`decode` needs the same masks).

    Returns:
        The payload.

    Raises:
        ValueError: On an unknown format, mismatched masks, non-finite values,
            or a tensor of more than 255 dimensions or 2**32 entries.
    """
    if value_format not in VALUE_FORMATS:
        raise ValueError(
            f"unknown value format {value_format!r}; expected one of "
            f"{', '.join(VALUE_FORMATS)}"
        )
    if positions not in POSITION_CODINGS:
        raise ValueError(
            f"unknown position coding {positions!r}; expected one of "
            f"{', '.join(POSITION_CODINGS)}"
        )
    if masks is not None and len(masks) != len(tensors):
        raise ValueError(f"got {len(masks)} masks for {len(tensors)} tensors")
    parts = [
        MAGIC,
        struct.pack("<BB", VERSION, _VALUE_CODES[value_format]),
        _varint(len(tensors)),
    ]
    for index, tensor in enumerate(tensors):
        array = np.asarray(tensor, np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"tensor {index} has NaN or infinite values")
        if array.ndim > 255 or array.size >= 2**32:
            raise ValueError(f"tensor {index} of shape {array.shape} is too large")
        mask = (
            np.ones(array.shape, bool)
            if masks is None
            else np.asarray(masks[index], bool)
        )
        if mask.shape != array.shape:
            raise ValueError(
                f"mask {index} has shape {mask.shape}, tensor has {array.shape}"
            )
        parts.append(struct.pack("<B", array.ndim))
        parts.extend(_varint(d) for d in array.shape)
        kept = int(np.count_nonzero(mask))
        if kept == array.size:
            parts.append(struct.pack("<B", _DENSE))
            parts.append(_encode_values(array, value_format))
            continue
        previous = None if held is None else held[index]
        if previous is not None and np.array_equal(previous, mask):
            parts.append(struct.pack("<B", _KNOWN_POSITIONS) + _varint(kept))
            parts.append(_encode_values(array[mask], value_format))
            continue
        coding, position_bytes = _encode_positions(mask, positions)
        sparse_header = _sparse_header_size(kept, len(position_bytes))
        sparse_size = (
            sparse_header + len(position_bytes) + _values_size(kept, value_format)
        )
        if previous is not None:
            flipped = np.flatnonzero(np.asarray(previous, bool).ravel() != mask.ravel())
            change = rice.encode_positions(flipped, mask.size)
            changed_header = _changed_header_size(kept, flipped.size, len(change))
            if changed_header + len(change) < sparse_header + len(position_bytes):
                parts.append(
                    struct.pack("<B", _CHANGED_POSITIONS)
                    + _varint(kept)
                    + _varint(flipped.size)
                    + _varint(len(change))
                )
                parts.append(change)
                parts.append(_encode_values(array[mask], value_format))
                continue
        # float32 keeps exact zeros, so when no kept value is 0 the mask can
        # travel implicitly as "zero means pruned" at dense cost.
        implicit = value_format == "float32" and not np.any(array[mask] == 0)
        if implicit and _values_size(array.size, value_format) <= sparse_size:
            parts.append(struct.pack("<B", _DENSE_ZEROS_PRUNED))
            parts.append(_encode_values(np.where(mask, array, 0.0), value_format))
        else:
            parts.append(
                struct.pack("<B", _SPARSE)
                + _varint(kept)
                + struct.pack("<B", coding)
                + _varint(len(position_bytes))
            )
            parts.append(position_bytes)
            parts.append(_encode_values(array[mask], value_format))
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def encoded_size(
    masks: Sequence[np.ndarray],
    value_format: str = "float32",
    positions: str = "auto",
    zero_kept: Sequence[bool] | None = None,
    held: Sequence[np.ndarray | None] | None = None,
) -> int:
    """``len(encode(tensors, masks, value_format, positions))`` from the masks.

    The payload's size depends on the values only through one fact per tensor
    (float32: whether a kept value is exactly 0, which rules out the implicit
    "zero means pruned" layout), so it can be counted without the values, for
    example when the values stay inside a TFF computation.

    Args:
        masks: One boolean mask per tensor.
        value_format: ``float32``, ``float16`` or ``int8``.
        positions: ``auto``, ``bitmap`` or ``gaps``.
        zero_kept: Per tensor, whether a kept value is exactly 0 (default: no).
        held: Per tensor, the mask the receiver holds, or None (`encode`).

    Returns:
        The payload size in bytes.
    """
    return encoded_size_of(
        mask_facts.of_all(masks, held), value_format, positions, zero_kept
    )


def encoded_size_of(
    facts: Sequence[MaskFacts],
    value_format: str = "float32",
    positions: str = "auto",
    zero_kept: Sequence[bool] | None = None,
) -> int:
    """`encoded_size` from each mask's `MaskFacts` (no pass over a mask).

    Args:
        facts: Per tensor, its mask's facts (`tffprune.compression.
            mask_facts`), flips against the mask the receiver holds.
        value_format: ``float32``, ``float16`` or ``int8``.
        positions: ``auto``, ``bitmap`` or ``gaps``.
        zero_kept: Per tensor, whether a kept value is exactly 0 (default: no).

    Returns:
        The payload size in bytes.
    """
    if value_format not in VALUE_FORMATS:
        raise ValueError(f"unknown value format {value_format!r}")
    if positions not in POSITION_CODINGS:
        raise ValueError(f"unknown position coding {positions!r}")
    zero_kept = [False] * len(facts) if zero_kept is None else list(zero_kept)
    total = len(MAGIC) + 2 + _varint_size(len(facts)) + 4
    for fact, has_zero in zip(facts, zero_kept, strict=True):
        total += 1 + sum(_varint_size(d) for d in fact.shape) + 1
        kept = fact.kept
        if kept == fact.size:
            total += _values_size(fact.size, value_format)
            continue
        if fact.flips == 0:
            total += _varint_size(kept) + _values_size(kept, value_format)
            continue
        position_length = _positions_length(fact, positions)
        sparse_header = _sparse_header_size(kept, position_length)
        if fact.flips is not None:
            change = fact.change_length
            changed_header = _changed_header_size(kept, fact.flips, change)
            if changed_header + change < sparse_header + position_length:
                total += changed_header + change + _values_size(kept, value_format)
                continue
        sparse = sparse_header + position_length + _values_size(kept, value_format)
        dense = _values_size(fact.size, value_format)
        implicit = value_format == "float32" and not has_zero
        total += dense if implicit and dense <= sparse else sparse
    return total


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.offset + count > len(self.data):
            raise PayloadError(
                f"payload truncated: needed {count} bytes at offset {self.offset}, "
                f"{len(self.data) - self.offset} left"
            )
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            (byte,) = self.take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise PayloadError("malformed count (varint longer than 9 bytes)")


def _kept_values(reader: _Reader, mask: np.ndarray, value_format: str) -> np.ndarray:
    """Reads the values of a flat mask's kept entries; 0 elsewhere."""
    kept = int(np.count_nonzero(mask))
    dense = np.zeros(mask.size, np.float32)
    dense[mask] = _decode_values(
        reader.take(_values_size(kept, value_format)), kept, value_format
    )
    return dense


def decode(
    payload: bytes,
    expected_shapes: Sequence[tuple[int, ...]] | None = None,
    held: Sequence[np.ndarray | None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Parses a payload written by `encode`.

    Args:
        payload: The bytes.
        expected_shapes: If given, the tensor shapes the receiver expects.
        held: The masks the receiver holds, per tensor (the ones `encode` was
            given).

    Returns:
        ``(tensors, masks)``: float32 tensors (0 where not sent) and their masks.

    Raises:
        PayloadError: On a wrong magic or version, a checksum mismatch, a
            truncated payload, inconsistent counts, or shapes that differ from
            ``expected_shapes``.
    """
    if len(payload) < 4 + len(MAGIC) + 3:
        raise PayloadError(f"payload of {len(payload)} bytes is too short")
    body, (checksum,) = payload[:-4], struct.unpack("<I", payload[-4:])
    if payload[: len(MAGIC)] != MAGIC:
        raise PayloadError("not a tffprune payload (bad magic)")
    if zlib.crc32(body) != checksum:
        raise PayloadError("checksum mismatch: payload corrupted in transit")
    reader = _Reader(body)
    reader.take(len(MAGIC))
    version, value_code = reader.unpack("<BB")
    if version != VERSION:
        raise PayloadError(f"payload version {version}, this decoder reads {VERSION}")
    if value_code >= len(VALUE_FORMATS):
        raise PayloadError(f"unknown value format code {value_code}")
    value_format = VALUE_FORMATS[value_code]
    count = reader.varint()
    if expected_shapes is not None and count != len(expected_shapes):
        raise PayloadError(
            f"payload has {count} tensors, expected {len(expected_shapes)}"
        )
    tensors, masks = [], []
    for index in range(count):
        (rank,) = reader.unpack("<B")
        shape = tuple(reader.varint() for _ in range(rank))
        if expected_shapes is not None and tuple(expected_shapes[index]) != shape:
            expected = tuple(expected_shapes[index])
            raise PayloadError(f"tensor {index} has shape {shape}, expected {expected}")
        size = int(np.prod(shape, dtype=np.int64))
        (encoding,) = reader.unpack("<B")
        if encoding in (_DENSE, _DENSE_ZEROS_PRUNED):
            values = _decode_values(
                reader.take(_values_size(size, value_format)), size, value_format
            )
            tensors.append(values.reshape(shape))
            if encoding == _DENSE:
                masks.append(np.ones(shape, bool))
            else:
                masks.append((values != 0).reshape(shape))
        elif encoding == _SPARSE:
            kept = reader.varint()
            (coding,) = reader.unpack("<B")
            length = reader.varint()
            if kept > size:
                raise PayloadError(f"tensor {index}: {kept} kept of {size} entries")
            mask = _decode_positions(coding, reader.take(length), size, kept)
            if int(np.count_nonzero(mask)) != kept:
                raise PayloadError(f"tensor {index}: positions do not match count")
            tensors.append(_kept_values(reader, mask, value_format).reshape(shape))
            masks.append(mask.reshape(shape))
        elif encoding in (_KNOWN_POSITIONS, _CHANGED_POSITIONS):
            kept = reader.varint()
            previous = None if held is None else held[index]
            if previous is None:
                raise PayloadError(
                    f"tensor {index} was sent for a receiver that holds its mask"
                )
            mask = np.asarray(previous, bool).reshape(-1).copy()
            if mask.size != size:
                raise PayloadError(f"tensor {index}: held mask of {mask.size} entries")
            if encoding == _CHANGED_POSITIONS:
                flips, length = reader.varint(), reader.varint()
                try:
                    flipped = rice.decode_positions(reader.take(length), flips, size)
                except rice.RiceError as error:
                    raise PayloadError(f"tensor {index}: {error}") from None
                mask[flipped] = ~mask[flipped]
            if int(np.count_nonzero(mask)) != kept:
                raise PayloadError(
                    f"tensor {index}: {kept} values sent, the held mask keeps "
                    f"{int(np.count_nonzero(mask))} of {mask.size}"
                )
            tensors.append(_kept_values(reader, mask, value_format).reshape(shape))
            masks.append(mask.reshape(shape))
        else:
            raise PayloadError(f"tensor {index}: unknown encoding {encoding}")
    if reader.offset != len(body):
        raise PayloadError(f"{len(body) - reader.offset} unexpected trailing bytes")
    return tensors, masks
