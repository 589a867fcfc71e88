"""Magnitude pruning in TensorFlow, for use inside a TFF computation.

The TensorFlow twin of `tffprune.pruning.masks.weight_mask` (tests check one
against the other): the same count, the same order (already-pruned entries
first, then the smallest ``|w|``, ties to the lower flat index), so that a
client can prune inside its TFF work without its weights leaving the runtime.
The NumPy functions remain the reference.

The cut is found without sorting: for non-negative float32 values the integer
bit patterns order like the values, so a bisection over the 31-bit patterns
(31 counting passes, each O(n)) finds the exact k-th smallest magnitude.
"""

from __future__ import annotations

import tensorflow as tf

_ABOVE_EVERY_FLOAT = tf.int32.max


def weight_mask(
    weights: tf.Tensor, alive: tf.Tensor, num_pruned: tf.Tensor
) -> tf.Tensor:
    """Magnitude pruning of one tensor, nested in an existing mask.

    Args:
        weights: float32 tensor of any shape (finite).
        alive: bool tensor of the same shape: ``False`` entries are already
            pruned and are pruned first.
        num_pruned: int32 scalar, the number of entries to prune; if fewer
            than already pruned, only those stay pruned (a mask never revives).

    Returns:
        bool tensor of the weights' shape with exactly
        ``max(num_pruned, already pruned)`` ``False`` entries.
    """
    shape = tf.shape(weights)
    magnitudes = tf.reshape(tf.abs(weights), [-1])
    alive_flat = tf.reshape(alive, [-1])
    # abs() clears the sign bit, so the bit patterns are non-negative and order
    # like the magnitudes; pruned entries rank above everything (excluded).
    keys = tf.where(alive_flat, tf.bitcast(magnitudes, tf.int32), _ABOVE_EVERY_FLOAT)
    num_alive = tf.math.count_nonzero(alive_flat, dtype=tf.int32)
    num_dead = tf.size(alive_flat) - num_alive
    needed = tf.clip_by_value(num_pruned - num_dead, 0, num_alive)

    def prune() -> tf.Tensor:
        return _prune_alive_lowest(keys, alive_flat, needed)

    keep = tf.cond(needed > 0, prune, lambda: alive_flat)
    return tf.reshape(keep, shape)


def _prune_alive_lowest(
    keys: tf.Tensor, alive_flat: tf.Tensor, needed: tf.Tensor
) -> tf.Tensor:
    """Prunes the ``needed`` alive entries with the lowest keys (ties: index)."""

    def count_at_most(threshold: tf.Tensor) -> tf.Tensor:
        return tf.math.count_nonzero(keys <= threshold, dtype=tf.int32)

    # Smallest threshold t with count(keys <= t) >= needed, in (low, high].
    def step(low: tf.Tensor, high: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        middle = low + (high - low) // 2
        enough = count_at_most(middle) >= needed
        return tf.where(enough, low, middle), tf.where(enough, middle, high)

    _, cut = tf.while_loop(
        lambda low, high: high - low > 1,
        step,
        (tf.constant(-1, tf.int32), tf.constant(_ABOVE_EVERY_FLOAT - 1, tf.int32)),
        maximum_iterations=32,
    )
    below = keys < cut
    # Not ``keys == cut``: inside a TFF computation that equality came out all
    # False here (TF 2.14 / TFF 0.87 graph rewriting); ``<=`` and ``<`` agree.
    at_cut = tf.logical_and(
        tf.logical_and(keys <= cut, tf.logical_not(below)), alive_flat
    )
    # Among the entries equal to the cut, prune the lowest positions first.
    remaining = needed - tf.math.count_nonzero(below, dtype=tf.int32)
    rank_at_cut = tf.cumsum(tf.cast(at_cut, tf.int32))
    pruned_at_cut = tf.logical_and(at_cut, rank_at_cut <= remaining)
    return tf.logical_and(
        alive_flat, tf.logical_not(tf.logical_or(below, pruned_at_cut))
    )
