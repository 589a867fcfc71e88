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
        fewest bits, ``center = floor(log2(mean gap))``. The five candidates
        are counted in one pass (a few ops: the round's graph stays small).
    """
    count = tf.size(positions, out_type=tf.int64)
    gaps = positions - tf.concat([[-1], positions[:-1]], axis=0) - 1
    mean = tf.reduce_sum(gaps) // tf.maximum(count, 1)
    center = tf.reduce_sum(tf.cast(mean >= tf.constant(_POWERS, tf.int64), tf.int64))
    candidates = tf.maximum(center - 2, 0) + tf.range(5, dtype=tf.int64)
    unary = (
        tf.reduce_sum(
            tf.bitwise.right_shift(gaps[:, None], candidates[None, :]), axis=0
        )
        + count
    )
    bits = unary + count * candidates
    bits = tf.where(candidates < tf.minimum(center + 3, 32), bits, 2**56)
    # The first of the fewest, as Python's min() takes it: keys are unique.
    first = tf.argmin(bits * 8 + tf.range(5, dtype=tf.int64))
    k = tf.gather(candidates, first)
    return 1 + (tf.gather(unary, first) + 7) // 8 + (count * k + 7) // 8


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
        The vector `mask_facts.from_vector` reads (it keeps the code lengths
        only where a message can use them; both are counted regardless, so
        the round's graph has no branches).
    """
    flat = tf.reshape(mask, [-1])
    size = tf.size(flat, out_type=tf.int64)
    kept = tf.math.count_nonzero(flat, dtype=tf.int64)
    flips = change_length = tf.constant(0, tf.int64)
    if held is not None:
        flipped = tf.not_equal(flat, tf.reshape(held, [-1]))
        flips = tf.math.count_nonzero(flipped, dtype=tf.int64)
        change_length = rice_length(_positions(flipped))
    rarer = tf.where(kept <= size // 2, flat, tf.logical_not(flat))
    gaps_length = rice_length(_positions(rarer))
    return tf.stack([kept, flips, gaps_length, change_length])
