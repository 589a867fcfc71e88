"""The codec's value formats in TensorFlow, for use inside a TFF computation.

`transmitted` returns what the server decodes from a client's upload, computed
where the client's weights already are (inside its TFF work), so they need not
leave the runtime to be encoded and decoded. It follows `tffprune.compression.
wire` exactly (tests compare it with ``wire.decode(wire.encode(...))``):

* float32: the kept values, 0 where pruned;
* float16: the kept values rounded to float16 and back;
* int8: per-tensor affine quantization over the kept values,
  ``scale = float32((max - min) / 255)`` (the division in float64, as the
  NumPy encoder does), ``q = clip(round((x - min) / scale) - 128)``, decoded as
  ``(q + 128) * scale + min``.
"""

from __future__ import annotations

import tensorflow as tf

from tffprune.compression.wire import VALUE_FORMATS


def transmitted(values: tf.Tensor, mask: tf.Tensor, value_format: str) -> tf.Tensor:
    """The tensor as the server decodes it.

    Args:
        values: float32 tensor (finite).
        mask: bool tensor of the same shape (True kept).
        value_format: ``float32``, ``float16`` or ``int8``.

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
    infinity = tf.constant(float("inf"), tf.float32)
    low = tf.reduce_min(tf.where(mask, values, infinity))
    high = tf.reduce_max(tf.where(mask, values, -infinity))
    any_kept = tf.reduce_any(mask)
    low = tf.where(any_kept, low, 0.0)
    high = tf.where(any_kept, high, 0.0)
    scale = tf.cast(
        (tf.cast(high, tf.float64) - tf.cast(low, tf.float64)) / 255.0, tf.float32
    )
    safe_scale = tf.where(scale > 0, scale, 1.0)
    quantized = tf.where(
        scale > 0,
        tf.clip_by_value(tf.round((values - low) / safe_scale) - 128.0, -128.0, 127.0),
        tf.fill(tf.shape(values), -128.0),
    )
    decoded = (quantized + 128.0) * scale + low
    return tf.where(mask, decoded, zeros)
