"""Running exported models: the TFLite interpreter and TensorFlow Lite Micro.

Both interpreters are the real ones: ``tf.lite.Interpreter`` from TensorFlow
and the TFLM interpreter shipped in the ``tflite-micro`` package. Inputs are
quantized with the model's own input scale and zero point when it takes int8.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import tensorflow as tf


def _quantize_input(images: np.ndarray, details: dict) -> np.ndarray:
    dtype = details["dtype"]
    if dtype == np.float32:
        return images.astype(np.float32)
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    quantized = np.round(images / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def tflite_outputs(
    model: bytes, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Raw outputs (int8 or float32, as the model emits them) of a TFLite model."""
    interpreter = tf.lite.Interpreter(model_content=model)
    input_details = interpreter.get_input_details()[0]
    output_details = interpreter.get_output_details()[0]
    outputs = []
    current = None
    for start in range(0, len(images), batch_size):
        batch = _quantize_input(images[start : start + batch_size], input_details)
        if current != len(batch):
            interpreter.resize_tensor_input(input_details["index"], batch.shape)
            interpreter.allocate_tensors()
            current = len(batch)
        interpreter.set_tensor(input_details["index"], batch)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_details["index"]).copy())
    return np.concatenate(outputs)


def io_quantization(model: bytes) -> dict[str, dict[str, float | int | str]]:
    """The input and output dtype, scale and zero point firmware needs.

    ``real = scale * (quantized - zero_point)``; a float32 tensor has scale 0.
    """
    interpreter = tf.lite.Interpreter(model_content=model)
    result = {}
    for name, details in (
        ("input", interpreter.get_input_details()[0]),
        ("output", interpreter.get_output_details()[0]),
    ):
        scale, zero_point = details["quantization"]
        result[name] = {
            "dtype": np.dtype(details["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero_point),
        }
    return result


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of logits (raw int8 outputs rank the same way)."""
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Captures what C++ code writes to file descriptor 2."""
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


class MicroError(RuntimeError):
    """TensorFlow Lite Micro cannot run a model (missing op, arena too small)."""


def _tflm_interpreter(model: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def _fits(model: bytes, arena_size: int, sample: np.ndarray) -> tuple[bool, str]:
    with _captured_stderr() as log:
        try:
            interpreter = _tflm_interpreter(model, arena_size)
            interpreter.set_input(sample, 0)
            interpreter.invoke()
            ok = True
        except (RuntimeError, ValueError):
            ok = False
    return ok, "".join(log).strip()


def tensor_arena_size(
    model: bytes, input_shape: tuple[int, ...], input_dtype: type, limit: int = 64 << 20
) -> int:
    """Smallest TFLM tensor arena (16-byte steps) in which the model runs.

    Raises:
        MicroError: If it does not run even with ``limit`` bytes; the message
            carries TFLM's own reason (e.g. an unsupported op).
    """
    sample = np.zeros(input_shape, input_dtype)
    ok, log = _fits(model, limit, sample)
    if not ok:
        reason = log.splitlines()[0] if log else "unknown failure"
        raise MicroError(f"TFLite Micro cannot run the model: {reason}")
    low, high = 0, limit
    while high - low > 16:
        middle = (low + high) // 2
        if _fits(model, middle, sample)[0]:
            high = middle
        else:
            low = middle
    return high


@dataclasses.dataclass
class MicroResult:
    """Outcome of running a model in TFLite Micro."""

    outputs: np.ndarray
    arena_bytes: int


def tflm_outputs(
    model: bytes,
    images: np.ndarray,
    arena_bytes: int | None = None,
    uncompressed: bytes | None = None,
) -> MicroResult:
    """Runs every image through the TFLite Micro interpreter (batch 1).

    Args:
        model: An int8 (or float) ``.tflite`` model with batch size 1.
        images: float32 images; quantized with the model's input parameters.
        arena_bytes: Arena to use; measured with `tensor_arena_size` if None.
        uncompressed: For a LUT-compressed ``model`` (which TensorFlow's own
            interpreter cannot read), the model before compression, whose
            input parameters are the same.

    Raises:
        MicroError: If TFLM cannot run the model.
    """
    probe = tf.lite.Interpreter(model_content=uncompressed or model)
    details = probe.get_input_details()[0]
    shape = tuple(int(d) for d in details["shape"])
    if arena_bytes is None:
        arena_bytes = tensor_arena_size(model, shape, details["dtype"])
    quantized = _quantize_input(images, details)
    with _captured_stderr():
        interpreter = _tflm_interpreter(model, arena_bytes)
    outputs = []
    for image in quantized:
        interpreter.set_input(image.reshape(shape), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)).reshape(-1))
    return MicroResult(outputs=np.stack(outputs), arena_bytes=arena_bytes)
