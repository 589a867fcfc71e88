"""Keras -> TFLite conversion in the four modes the edge needs.

* ``float32``: plain conversion;
* ``float16``: weights stored as float16 (``Optimize.DEFAULT`` +
  ``supported_types = [tf.float16]``);
* ``dynamic``: dynamic-range quantization, int8 weights, float activations
  (``Optimize.DEFAULT``, the tfmot tutorial's "quantized" model);
* ``int8``: full-integer quantization with a representative data set, int8
  inputs and outputs and ``TFLITE_BUILTINS_INT8`` only, as TensorFlow Lite
  Micro needs.

``sparse=True`` adds ``Optimize.EXPERIMENTAL_SPARSITY`` so the converter stores
pruned tensors in a sparse format where it pays.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

QUANTIZE_MODES = ("float32", "float16", "dynamic", "int8")


def convert(
    model: tf.keras.Model,
    quantize: str = "float32",
    sparse: bool = False,
    representative_images: np.ndarray | None = None,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer.

    Args:
        model: The (stripped) Keras model.
        quantize: One of `QUANTIZE_MODES`.
        sparse: Ask the converter to store sparse tensors.
        representative_images: Images drawn from the training data; required
            for ``int8`` (a few hundred are plenty).

    Returns:
        The ``.tflite`` bytes.

    Raises:
        ValueError: On an unknown mode, or ``int8`` without representative data.
        ConversionError: If the converter refuses the model (its reason in
            one line).
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"unknown quantize mode {quantize!r}; expected one of "
            f"{', '.join(QUANTIZE_MODES)}"
        )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = set()
    if quantize in ("float16", "dynamic", "int8"):
        optimizations.add(tf.lite.Optimize.DEFAULT)
    if sparse:
        optimizations.add(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError(
                "int8 quantization needs representative data from the model's "
                "training set; none is available"
            )
        images = np.asarray(representative_images, np.float32)

        def representative() -> Iterator[list[np.ndarray]]:
            for image in images:
                yield [image[np.newaxis]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with _quiet_stderr():  # its C++ diagnostics are in the exception too
            return bytes(converter.convert())
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds
        raise ConversionError(_conversion_reason(error, quantize)) from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Sends file descriptor 2 (where the converter's C++ code writes) away."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class ConversionError(ValueError):
    """The TFLite converter refused the model (one line saying why)."""


def _conversion_reason(error: Exception, quantize: str) -> str:
    """The converter's own reason, in one line, and what to try."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [
        line for line in lines if "error:" in line.lower() or "failed" in line.lower()
    ]
    reason = (useful or lines or [type(error).__name__])[0]
    hint = (
        "; the model has operations without int8 kernels: try --quantize dynamic "
        "or float32"
        if quantize == "int8"
        else ""
    )
    return f"TFLite conversion ({quantize}) failed: {reason[:300]}{hint}"
