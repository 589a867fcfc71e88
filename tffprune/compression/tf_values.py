"""The codec's value formats in TensorFlow, for use inside a TFF computation.

`transmitted` returns what the server decodes from a client's upload, computed
where the client's weights already are (inside its TFF work), so they need not
leave the runtime to be encoded and decoded. It follows `tffprune.compression.
wire` exactly (tests compare it with ``wire.decode(wire.encode(...))``):

* float32: the kept values, 0 where pruned;
* float16: the kept values rounded to float16 and back;
* int8, int4, int2: per-tensor affine quantization over the kept values
  with ``L = 2**B`` levels, ``scale = float32((max - min) / (L - 1))`` (the
  division in float64, as the NumPy encoder does), ``q = clip(round((x -
  min) / scale), 0, L - 1)`` in float32, decoded as ``q * scale + min``;
* int1: ``scale = float32(mean |x|)`` over the kept values (summed in
  float64), decoded as ``+scale`` where ``x >= 0`` and ``-scale`` elsewhere.
"""

from __future__ import annotations

import tensorflow as tf

from tffprune.compression.wire import VALUE_BITS, VALUE_FORMATS


@tf.autograph.experimental.do_not_convert
def transmitted(values: tf.Tensor, mask: tf.Tensor, value_format: str) -> tf.Tensor:
    """The tensor as the server decodes it.

    Args:
        values: float32 tensor (finite).
        mask: bool tensor of the same shape (True kept).
        value_format: One of `tffprune.compression.wire.VALUE_FORMATS`.

    Returns:
        float32 tensor: decoded kept values, 0 at pruned entries.

    Raises:
        ValueError: On an unknown value format.
    """
    if value_format not in VALUE_FORMATS:
        raise ValueError(
            f"unknown value format {value_format!r}; expected one of "
            f"{', '.join(VALUE_FORMATS)}"
        )
    zeros = tf.zeros_like(values)
    if value_format == "float32":
        return tf.where(mask, values, zeros)
    if value_format == "float16":
        return tf.where(mask, tf.cast(tf.cast(values, tf.float16), tf.float32), zeros)
    if value_format == "int1":
        kept = tf.cast(tf.math.count_nonzero(mask), tf.float64)
        magnitude = tf.reduce_sum(
            tf.where(mask, tf.abs(tf.cast(values, tf.float64)), 0.0)
        )
        scale = tf.cast(tf.math.divide_no_nan(magnitude, kept), tf.float32)
        return tf.where(mask, tf.where(values >= 0, scale, -scale), zeros)
    levels = float(2 ** VALUE_BITS[value_format])
    infinity = tf.constant(float("inf"), tf.float32)
    low = tf.reduce_min(tf.where(mask, values, infinity))
    high = tf.reduce_max(tf.where(mask, values, -infinity))
    any_kept = tf.reduce_any(mask)
    low = tf.where(any_kept, low, 0.0)
    high = tf.where(any_kept, high, 0.0)
    scale = tf.cast(
        (tf.cast(high, tf.float64) - tf.cast(low, tf.float64)) / (levels - 1),
        tf.float32,
    )
    safe_scale = tf.where(scale > 0, scale, 1.0)
    codes = tf.where(
        scale > 0,
        tf.clip_by_value(tf.round((values - low) / safe_scale), 0.0, levels - 1),
        tf.zeros_like(values),
    )
    return tf.where(mask, codes * scale + low, zeros)


@tf.autograph.experimental.do_not_convert
def with_error_feedback(
    update: tf.Tensor, residual: tf.Tensor, mask: tf.Tensor, value_format: str
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`tffprune.compression.error_feedback.error_feedback_step` in TensorFlow.

    Returns:
        ``(sent, residual, corrected)``: ``Q((update + residual) ⊙ mask)`` as
        the server decodes it (float32), what it dropped (0 outside the
        mask) in float16 (`tffprune.compression.error_feedback.
        RESIDUAL_DTYPE`), and the corrected update ``(update + residual) ⊙
        mask`` that was encoded (float32).
    """
    residual = tf.cast(residual, tf.float32)
    corrected = tf.where(mask, update + residual, tf.zeros_like(update))
    sent = transmitted(corrected, mask, value_format)
    # Both are 0 outside the mask, so what was dropped is too.
    return sent, tf.cast(corrected - sent, tf.float16), corrected
