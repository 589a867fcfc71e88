"""TensorFlow Lite Micro's look-up-table compression of an int8 model.

A microcontroller keeps the model in flash as its ``.tflite`` bytes; TFLite
Micro stores every weight, zero or not (it has no sparse tensors), so pruning
alone saves no flash. What it can decode at run time is a look-up table
(LUT): a tensor with at most ``2**k`` distinct values (k = 1..7, per tensor,
or per channel along axis 0 or the last axis) is stored as k-bit indices into
a value table, and a DECODE operator expands it into the arena before the
kernel runs. Sparsity-preserving clustering (tfmot) makes the weight tensors
of a pruned model such tensors, with 0 one of the values.

`compress_model` picks, for every constant input of the kernels that read
decoded tensors (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV),
the smallest k that holds it, with one table per channel for a tensor
quantized per channel (along its quantization axis) and one table otherwise,
compresses with the compressor shipped in the ``tflite-micro``
package and reports, per tensor, the k used or why the tensor stayed
uncompressed (too many distinct values, no saving, an input the kernel must
read as a constant).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

MAX_INDEX_BITS = 7
_SUPPORTED_KERNELS = (
    "FULLY_CONNECTED",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
)
# The decode metadata (DCM) header in front of each value table.
_HEADER_BYTES = 16


@dataclasses.dataclass(frozen=True)
class TensorCompression:
    """What happened to one constant tensor.

    Attributes:
        tensor: Its index in the model's subgraph 0.
        name: Its name.
        shape: Its shape.
        dtype: Its element type (``int8``, ``int32``, ...).
        distinct: Distinct values (per channel: the most in one channel).
        index_bits: k of its indices, or None when left uncompressed.
        per_channel_axis: The table axis, or None for one table.
        bytes_before: Its stored size uncompressed.
        bytes_after: Indices + value tables + header, or None.
        reason: Why it stayed uncompressed (empty when compressed).
    """

    tensor: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    distinct: int
    index_bits: int | None
    per_channel_axis: int | None
    bytes_before: int
    bytes_after: int | None
    reason: str = ""

    def as_dict(self) -> dict:
        """A JSON-ready form."""
        return {**dataclasses.asdict(self), "shape": list(self.shape)}


def index_bits_for(distinct: int) -> int:
    """The smallest k >= 1 with ``2**k >= distinct``."""
    return max(1, math.ceil(math.log2(max(distinct, 1))))


def _stored_bytes(array: np.ndarray, axis: int | None) -> tuple[int, int, int]:
    """``(distinct, k, bytes)`` of ``array`` as a LUT along ``axis``."""
    if axis is None:
        tables = [np.unique(array)]
    else:
        tables = [np.unique(part) for part in np.moveaxis(array, axis, 0)]
    distinct = max(len(table) for table in tables)
    bits = index_bits_for(distinct)
    indices = math.ceil(array.size * bits / 8)
    values = len(tables) * distinct * array.dtype.itemsize
    return distinct, bits, indices + values + _HEADER_BYTES


def _modules():
    from tflite_micro.tensorflow.lite.micro.compression import (
        constant_inputs,
        model_editor,
        spec,
    )
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return constant_inputs, model_editor, spec, schema_py_generated


def plan_compression(model: bytes) -> list[TensorCompression]:
    """Decides each candidate tensor's compression (nothing is changed).

    Args:
        model: A ``.tflite`` flatbuffer (int8 for TFLite Micro).

    Returns:
        One `TensorCompression` per constant input of the supported kernels,
        in tensor order.
    """
    constant_inputs, model_editor, _, schema = _modules()
    names = {getattr(schema.BuiltinOperator, name): name for name in _SUPPORTED_KERNELS}
    subgraph = model_editor.read(model).subgraphs[0]
    candidates = {}
    for operator in subgraph.operators:
        if operator.opcode not in names:
            continue
        for tensor in operator.inputs:
            if tensor is not None and tensor.buffer is not None and tensor.buffer.data:
                candidates[tensor.index] = tensor
    plans = []
    for index, tensor in sorted(candidates.items()):
        array = tensor.array.reshape(tensor.shape)
        before = len(tensor.buffer.data)
        common = dict(
            tensor=index,
            name=tensor.name or f"tensor {index}",
            shape=tuple(int(d) for d in tensor.shape),
            dtype=array.dtype.name,
        )
        if constant_inputs.find_uses(subgraph, tensor):
            plans.append(
                TensorCompression(
                    **common,
                    distinct=len(np.unique(array)),
                    index_bits=None,
                    per_channel_axis=None,
                    bytes_before=before,
                    bytes_after=None,
                    reason="a kernel reads it as a constant in Prepare",
                )
            )
            continue
        axis = getattr(tensor.quantization, "axis", None)
        scales = getattr(tensor.quantization, "scales", None)
        if isinstance(scales, list) and len(scales) > 1:
            # Per-channel quantized: one table per channel along its axis (a
            # single table decodes wrongly in TFLite Micro: measured, the
            # tfmot_cnn conv kernel's accuracy fell from 0.75 to 0.12).
            axis = axis or 0
            distinct, bits, after = _stored_bytes(array, axis)
        else:
            axis = None
            distinct, bits, after = _stored_bytes(array, None)
        reason = ""
        if axis not in (None, 0, array.ndim - 1):
            reason = f"per-channel axis {axis}: TFLite Micro decodes 0 or last only"
        elif distinct > 2**MAX_INDEX_BITS:
            reason = f"{distinct} distinct values, more than {2**MAX_INDEX_BITS}"
        elif after >= before:
            reason = f"no saving ({after} bytes as a table, {before} as it is)"
        plans.append(
            TensorCompression(
                **common,
                distinct=distinct,
                index_bits=None if reason else bits,
                per_channel_axis=None if reason else axis,
                bytes_before=before,
                bytes_after=None if reason else after,
                reason=reason,
            )
        )
    return plans


def compress_model(model: bytes) -> tuple[bytes, list[TensorCompression]]:
    """LUT-compresses every tensor that `plan_compression` can compress.

    Returns:
        The compressed model (the input unchanged if no tensor qualifies)
        and the plan, one entry per candidate tensor.
    """
    _, _, spec, _ = _modules()
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress

    plans = plan_compression(model)
    specs = [
        spec.Tensor(
            subgraph=0,
            tensor=plan.tensor,
            compression=[
                spec.LookUpTableCompression(
                    index_bitwidth=plan.index_bits,
                    mode=spec.PerTensor()
                    if plan.per_channel_axis is None
                    else spec.PerChannel(axis=plan.per_channel_axis),
                )
            ],
        )
        for plan in plans
        if plan.index_bits is not None
    ]
    if not specs:
        return model, plans
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compressed = bytes(compress(model, specs))
    if len(compressed) >= len(model):  # the DECODE operators cost more
        reason = (
            f"not applied: the compressed model ({len(compressed)} bytes) is not "
            f"smaller than the model ({len(model)} bytes)"
        )
        return model, [
            dataclasses.replace(
                plan, index_bits=None, per_channel_axis=None, bytes_after=None,
                reason=plan.reason or reason,
            )
            for plan in plans
        ]  # fmt: skip
    return compressed, plans
