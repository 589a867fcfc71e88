"""Binary masks range-coded under per-entry probabilities (FedPM's uploads).

A client of FedPM (`tffprune.pruning.probabilistic`) uploads a mask sampled
from its own probabilities. Both sides hold the probabilities the server sent
down in the round, and they are close to the client's own, so the mask is
coded under them: entry ``i`` costs ``-log2 q_i`` bits if kept and
``-log2 (1 - q_i)`` if not, which is the information bound `model_bits`
gives. The coder is ``constriction``'s range coder (Bamler, 2022); every
symbol keeps a nonzero probability (``perfect=False``), so an entry the
model calls impossible still codes, at a cost. It comes within a few 32-bit
words of the bound (tests check 0.1%).

Two codings, chosen the same way by both sides from the probabilities alone:

* few distinct probabilities (at most 256; FedPM's after a round with its
  posterior reset: 15 on fc with 10 clients): the entries grouped by
  probability value (ascending), each group in flat order, and coded eight
  to a byte symbol (first entry the high bit) under the group's product
  model ``q^k (1 - q)^(8 - k)`` for ``k`` ones; a group's last ``r < 8``
  entries are one ``r``-bit symbol. The same information as one entry at a
  time, with an eighth of the coder's steps: a round's 10 masks on fc
  coded, decoded and bounded in 0.26 s instead of 1.72 s
  (`experiments/benchmarks/mask_coding.py`);
* otherwise one entry at a time under constriction's ``Bernoulli`` model.

The message is the coder's 32-bit words, little-endian; its size is
``4 * words``. Shapes and probabilities are known to both sides, so the
message carries nothing else. FedPM's own code estimates its rate as the
binary entropy of the fraction of ones instead of coding (`frequency_bits`
is that estimate, for comparison).
"""

from __future__ import annotations

from collections.abc import Sequence

import constriction
import numpy as np

from tffprune.compression import dictionary

__all__ = [
    "MaskCoder",
    "decode_masks",
    "encode_masks",
    "frequency_bits",
    "model_bits",
]

_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)
_SYMBOL_BITS = 8
_SMALLEST = 1e-300  # an impossible entry's probability in the bound


def _ones(width: int) -> np.ndarray:
    """The number of ones of each ``width``-bit symbol."""
    symbols = np.arange(2**width, dtype=np.uint16)
    return np.array([int(s).bit_count() for s in symbols], np.int64)


def _product_model(probability: float, width: int):
    """``width`` entries of probability ``probability`` as one symbol's model."""
    ones = _ones(width)
    q = float(probability)
    weights = q**ones * (1.0 - q) ** (width - ones)
    return constriction.stream.model.Categorical(weights / weights.sum(), perfect=False)


def _flat(masks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(m, bool).ravel() for m in masks] or [np.zeros(0, bool)]
    )


class MaskCoder:
    """One round's probabilities, ready to code any number of masks under them.

    Builds what every mask's coding shares once (the grouping by value, the
    models), so each client's upload costs only its own coding.

    Args:
        probabilities: Per weight, the probability of each entry being 1.
        table: Their `dictionary.ValueTable`, if already computed (a FedPM
            round computes it for its download).
    """

    def __init__(
        self,
        probabilities: Sequence[np.ndarray],
        table: dictionary.ValueTable | None = None,
    ) -> None:
        self.shapes = [np.shape(p) for p in probabilities]
        self.size = sum(int(np.prod(s)) for s in self.shapes)
        if table is None:
            table = dictionary.value_table(probabilities)
        self.grouped = table.values.size <= dictionary.BYTE_INDEXED_VALUES
        if self.grouped:
            self._values = table.values.astype(np.float64)
            self._counts = table.counts.astype(np.int64)
            self._order = np.argsort(table.indices, kind="stable")
            self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
            self._models = [_product_model(q, _SYMBOL_BITS) for q in self._values]
            # A group's last count % 8 entries: one symbol of that many bits.
            self._tail_models = [
                _product_model(q, int(c) % _SYMBOL_BITS) if c % _SYMBOL_BITS else None
                for q, c in zip(self._values, self._counts, strict=True)
            ]
        else:
            self._probabilities = np.concatenate(
                [np.asarray(p, np.float64).ravel() for p in probabilities]
            )

    def _symbols(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """The masks flattened, checked against the shapes."""
        for mask, shape in zip(masks, self.shapes, strict=True):
            if np.shape(mask) != shape:
                raise ValueError(
                    f"a mask of shape {np.shape(mask)} with probabilities of "
                    f"shape {shape}"
                )
        return _flat(masks)

    def encode(self, masks: Sequence[np.ndarray]) -> bytes:
        """Codes ``masks`` (one boolean array per weight).

        Raises:
            ValueError: If a mask and its probabilities differ in shape.
        """
        flat = self._symbols(masks)
        encoder = constriction.stream.queue.RangeEncoder()
        if not self.grouped:
            if flat.size:
                encoder.encode(flat.astype(np.int32), _BERNOULLI, self._probabilities)
        else:
            grouped = flat[self._order]
            for start, count, model, tail_model in self._groups():
                whole = count - count % _SYMBOL_BITS
                group = grouped[start : start + count]
                if whole:
                    encoder.encode(np.packbits(group[:whole]).astype(np.int32), model)
                if whole < count:
                    tail = group[whole:]
                    width = tail.size
                    symbol = int(np.packbits(tail)[0]) >> (_SYMBOL_BITS - width)
                    encoder.encode(symbol, tail_model)
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, message: bytes) -> list[np.ndarray]:
        """Inverse of `encode`: the masks, shaped as the probabilities.

        Raises:
            ValueError: If the message is not a whole number of 32-bit words.
        """
        if len(message) % 4:
            raise ValueError(
                f"a range-coded message of {len(message)} bytes (not words)"
            )
        words = np.frombuffer(message, "<u4").astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        if not self.grouped:
            flat = (
                decoder.decode(_BERNOULLI, self._probabilities).astype(bool)
                if self.size
                else np.zeros(0, bool)
            )
        else:
            grouped = np.zeros(self.size, bool)
            for start, count, model, tail_model in self._groups():
                whole = count - count % _SYMBOL_BITS
                if whole:
                    symbols = decoder.decode(model, whole // _SYMBOL_BITS)
                    grouped[start : start + whole] = np.unpackbits(
                        symbols.astype(np.uint8)
                    ).astype(bool)
                if whole < count:
                    width = count - whole
                    symbol = int(decoder.decode(tail_model))
                    tail = np.unpackbits(np.uint8(symbol << (_SYMBOL_BITS - width)))
                    grouped[start + whole : start + count] = tail[:width].astype(bool)
            flat = np.empty_like(grouped)
            flat[self._order] = grouped
        return dictionary.split(flat, self.shapes)

    def bits(self, masks: Sequence[np.ndarray]) -> float:
        """``sum_i -log2 P(m_i)`` under the probabilities: the coder's bound."""
        flat = self._symbols(masks)
        if not self.grouped:
            return _bits(flat, self._probabilities)
        if not flat.size:
            return 0.0
        ones = np.add.reduceat(
            flat[self._order].view(np.uint8), self._starts, dtype=np.int64
        )
        zeros = self._counts - ones
        cost_one = -np.log2(np.maximum(self._values, _SMALLEST))
        cost_zero = -np.log2(np.maximum(1.0 - self._values, _SMALLEST))
        return float(np.sum(ones * cost_one) + np.sum(zeros * cost_zero))

    def _groups(self):
        """Per distinct probability: first entry, count, and its two models."""
        return zip(
            self._starts, self._counts, self._models, self._tail_models, strict=True
        )


def _bits(flat: np.ndarray, probabilities: np.ndarray) -> float:
    chosen = np.where(flat, probabilities, 1.0 - probabilities)
    return float(-np.sum(np.log2(np.maximum(chosen, _SMALLEST))))


def encode_masks(
    masks: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]
) -> bytes:
    """Codes ``masks`` (one boolean array per weight) under ``probabilities``.

    Args:
        masks: The masks, one per weight.
        probabilities: Per weight, the probability of each entry being 1,
            shaped as its mask.

    Returns:
        The message (`MaskCoder.encode`).

    Raises:
        ValueError: If a mask and its probabilities differ in shape.
    """
    return MaskCoder(probabilities).encode(masks)


def decode_masks(
    message: bytes, probabilities: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Inverse of `encode_masks`: the masks, shaped as ``probabilities``.

    Raises:
        ValueError: If the message is not a whole number of 32-bit words.
    """
    return MaskCoder(probabilities).decode(message)


def model_bits(
    masks: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]
) -> float:
    """``sum_i -log2 P(m_i)`` under the probabilities: the coder's bound."""
    total = 0.0
    for mask, p in zip(masks, probabilities, strict=True):
        p = np.asarray(p, np.float64)
        total += _bits(np.asarray(mask, bool).ravel(), p.ravel())
    return total


def frequency_bits(masks: Sequence[np.ndarray]) -> float:
    """FedPM's code's rate estimate: ``n H(f)`` with ``f`` the fraction of ones."""
    size = sum(int(np.size(m)) for m in masks)
    if not size:
        return 0.0
    ones = sum(int(np.count_nonzero(m)) for m in masks)
    fraction = ones / size
    if fraction in (0.0, 1.0):
        return 0.0
    entropy = -fraction * np.log2(fraction) - (1 - fraction) * np.log2(1 - fraction)
    return float(size * entropy)
