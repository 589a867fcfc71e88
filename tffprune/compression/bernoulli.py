"""Binary masks range-coded under per-entry probabilities (FedPM's uploads).

A client of FedPM (`tffprune.pruning.probabilistic`) uploads a mask sampled
from its own probabilities. Both sides hold the probabilities the server sent
down in the round, and they are close to the client's own, so the mask is
coded under them: entry ``i`` costs ``-log2 q_i`` bits if kept and
``-log2 (1 - q_i)`` if not, which is the information bound `model_bits`
gives. The coder is ``constriction``'s range coder (Bamler, 2022) with its
``Bernoulli`` model (``perfect=False``: every symbol keeps a nonzero
probability, so an entry the model calls impossible still codes, at a
cost); it comes within a few 32-bit words of the bound (tests check 0.1%).

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

__all__ = ["decode_masks", "encode_masks", "frequency_bits", "model_bits"]

_MODEL = constriction.stream.model.Bernoulli(perfect=False)


def _flat(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(p, np.float64).ravel() for p in probabilities] or [np.zeros(0)]
    )


def encode_masks(
    masks: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]
) -> bytes:
    """Codes ``masks`` (one boolean array per weight) under ``probabilities``.

    Args:
        masks: The masks, one per weight.
        probabilities: Per weight, the probability of each entry being 1,
            shaped as its mask.

    Returns:
        The message.

    Raises:
        ValueError: If a mask and its probabilities differ in shape.
    """
    for mask, p in zip(masks, probabilities, strict=True):
        if np.shape(mask) != np.shape(p):
            raise ValueError(
                f"a mask of shape {np.shape(mask)} with probabilities of shape "
                f"{np.shape(p)}"
            )
    symbols = np.concatenate(
        [np.asarray(m, bool).ravel() for m in masks] or [np.zeros(0, bool)]
    ).astype(np.int32)
    encoder = constriction.stream.queue.RangeEncoder()
    if symbols.size:
        encoder.encode(symbols, _MODEL, _flat(probabilities))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_masks(
    message: bytes, probabilities: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Inverse of `encode_masks`: the masks, shaped as ``probabilities``.

    Raises:
        ValueError: If the message is not a whole number of 32-bit words.
    """
    if len(message) % 4:
        raise ValueError(f"a range-coded message of {len(message)} bytes (not words)")
    flat = _flat(probabilities)
    words = np.frombuffer(message, "<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    symbols = decoder.decode(_MODEL, flat) if flat.size else np.zeros(0, np.int32)
    masks, start = [], 0
    for p in probabilities:
        size = int(np.size(p))
        masks.append(symbols[start : start + size].reshape(np.shape(p)).astype(bool))
        start += size
    return masks


def model_bits(
    masks: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]
) -> float:
    """``sum_i -log2 P(m_i)`` under the probabilities: the coder's bound."""
    total = 0.0
    for mask, p in zip(masks, probabilities, strict=True):
        p = np.asarray(p, np.float64)
        chosen = np.where(np.asarray(mask, bool), p, 1.0 - p)
        total -= float(np.sum(np.log2(np.maximum(chosen, 1e-300))))
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
