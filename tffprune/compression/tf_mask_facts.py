"""The TensorFlow twin of `tffprune.compression.mask_facts`.

A client counts its new mask's facts where the mask is made (its TFF work),
so the driver learns its upload's exact size, CSR size and bound from four
numbers a weight instead of a pass over the mask. `facts_vector` gives what
`tffprune.compression.mask_facts.from_vector` reads; `rice_length` is the
twin of `tffprune.compression.rice.encoded_length` (tests hold both equal to
the NumPy reference).
"""

from __future__ import annotations

import tensorflow as tf

# Rice parameters are at most 31 (`rice.best_parameter`): 2**62 bounds a gap.
_POWERS = tuple(2**c for c in range(1, 63))


@tf.autograph.experimental.do_not_convert
def rice_length(positions: tf.Tensor) -> tf.Tensor:
    """``rice.encoded_length(positions)``: bytes of their Rice code, int64.

    Args:
        positions: int64, strictly increasing, 1-D.

    Returns:
        The same parameter choice and length as the NumPy coder: ``k`` from
        ``center - 2 .. center + 2`` (clipped to 0..31), the first of the
        fewest bits, ``center = floor(log2(mean gap))``.
    """
    count = tf.size(positions, out_type=tf.int64)
    gaps = positions - tf.concat([[-1], positions[:-1]], axis=0) - 1
    mean = tf.reduce_sum(gaps) // tf.maximum(count, 1)
    center = tf.reduce_sum(tf.cast(mean >= tf.constant(_POWERS, tf.int64), tf.int64))
    low = tf.maximum(center - 2, 0)
    high = tf.minimum(center + 3, 32)
    best_bits = tf.constant(-1, tf.int64)
    best_unary = best_k = tf.constant(0, tf.int64)
    for offset in range(5):
        k = low + offset
        unary = tf.reduce_sum(tf.bitwise.right_shift(gaps, k)) + count
        bits = unary + count * k
        better = tf.logical_and(
            k < high, tf.logical_or(best_bits < 0, bits < best_bits)
        )
        best_bits = tf.where(better, bits, best_bits)
        best_unary = tf.where(better, unary, best_unary)
        best_k = tf.where(better, k, best_k)
    return 1 + (best_unary + 7) // 8 + (count * best_k + 7) // 8


def _positions(flat: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.where(flat), [-1])


@tf.autograph.experimental.do_not_convert
def facts_vector(mask: tf.Tensor, held: tf.Tensor | None = None) -> tf.Tensor:
    """``[kept, flips, gaps_length, change_length]`` of ``mask``, int64.

    Args:
        mask: bool, True kept.
        held: The mask the receiver may hold (the client's start mask), or
            None: flips and the change's length are then 0.

    Returns:
        The vector `mask_facts.from_vector` reads. The code lengths are
        counted only where a message can use them (0 otherwise): the gaps'
        unless every entry is kept or nothing flipped, the change's when
        something flipped.
    """
    flat = tf.reshape(mask, [-1])
    size = tf.size(flat, out_type=tf.int64)
    kept = tf.math.count_nonzero(flat, dtype=tf.int64)
    zero = tf.constant(0, tf.int64)
    flips = change_length = zero
    if held is not None:
        flipped = tf.not_equal(flat, tf.reshape(held, [-1]))
        flips = tf.math.count_nonzero(flipped, dtype=tf.int64)
        change_length = tf.cond(
            flips > 0, lambda: rice_length(_positions(flipped)), lambda: zero
        )
    rarer = tf.where(kept <= size // 2, flat, tf.logical_not(flat))
    needed = tf.logical_and(kept < size, held is None or flips > 0)
    gaps_length = tf.cond(needed, lambda: rice_length(_positions(rarer)), lambda: zero)
    return tf.stack([kept, flips, gaps_length, change_length])
