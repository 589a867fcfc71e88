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
    return bytes(converter.convert())
