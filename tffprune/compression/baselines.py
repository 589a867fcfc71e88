"""What other schemes would send for the same update, and the information bound.

* SciPy CSR / COO (Jeurkar et al., 2024 upload a SciPy sparse matrix): each
  tensor reshaped to 2-D ``(-1, last_dim)``; bytes are ``data.nbytes +
  indices.nbytes + indptr.nbytes`` (CSR) or ``data + row + col`` (COO) with
  SciPy's own dtypes (float32 values, int32 indices).
* The files Jeurkar et al.'s code sends (`jeurkar_message_bytes`): its
  ``ndarray_to_sparse_bytes`` stores each tensor of PyTorch's ``state_dict``
  in PyTorch's layout, one of 2+ dimensions as an uncompressed ``np.savez``
  of the CSR arrays of ``reshape(-1, last dimension)`` (plus its shape and
  original shape), a 1-D or 0-D one with ``np.save``. Their Table 1's "Data
  Size (MB)" is these bytes in MiB (2**20): their dense ResNet12's logged
  163,303,855 bytes to the byte.
* TFF's ``tff.learning.compression_aggregator``: 8-bit uniform quantization of
  every tensor with more than 20,000 entries (its ``quantize_above_threshold(
  quantization_bits=8, threshold=20000)``), plus a float32 min and max each;
  smaller tensors as float32. No sparsity is exploited.
* The information bound of a sparse update with ``n`` entries, density ``d``
  and ``b``-bit values: ``n H(d) + d n b`` bits, ``H`` the binary entropy;
  where the receiver holds an earlier mask, ``n H(c) + d n b`` with ``c`` the
  fraction of entries that changed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import scipy.sparse

from tffprune.compression import mask_facts
from tffprune.compression.mask_facts import MaskFacts
from tffprune.compression.wire import VALUE_BITS

TFF_QUANTIZATION_THRESHOLD = 20_000


def _as_matrix(values: np.ndarray, mask: np.ndarray) -> scipy.sparse.csr_matrix:
    """The tensor as SciPy builds it: 2-D ``(-1, last_dim)``, kept entries only."""
    values = np.asarray(values, np.float32)
    mask = np.asarray(mask, bool)
    columns = values.shape[-1] if values.ndim else 1
    kept = np.where(mask, values, 0.0).reshape(-1, columns)
    # Keep explicit entries where the mask keeps a value that happens to be 0.
    rows, cols = np.nonzero(mask.reshape(-1, columns))
    return scipy.sparse.csr_matrix(
        (kept[rows, cols], (rows, cols)), shape=kept.shape, dtype=np.float32
    )


def csr_bytes(masks: Sequence[np.ndarray]) -> int:
    """Bytes of the update as SciPy CSR matrices (data + indices + indptr).

    Computed from the counts, without building the matrices (`csr_bytes_of`);
    `as_scipy_csr` builds the real thing and a test checks the two agree.
    """
    return csr_bytes_of([mask_facts.counted(mask) for mask in masks])


def csr_bytes_of(facts: Sequence[MaskFacts]) -> int:
    """`csr_bytes` from each mask's facts (shape and kept entries).

    float32 data and int32 indices per kept entry, one int32 pointer per row
    of ``(-1, last_dim)`` plus one.
    """
    total = 0
    for fact in facts:
        columns = fact.shape[-1] if fact.shape else 1
        rows = fact.size // columns if columns else 0
        total += 4 * fact.kept + 4 * fact.kept + 4 * (rows + 1)
    return total


def torch_layout(shape: Sequence[int]) -> tuple[int, ...]:
    """A Keras weight's shape in PyTorch's order (Conv2D OIHW, Linear out x in)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 4:
        height, width, inputs, outputs = shape
        return outputs, inputs, height, width
    if len(shape) == 2:
        return shape[1], shape[0]
    return shape


def _as_paper_file(tensor: np.ndarray) -> bytes:
    """One tensor as Jeurkar et al.'s ``ndarray_to_sparse_bytes`` writes it."""
    buffer = io.BytesIO()
    if tensor.ndim > 1:
        matrix = scipy.sparse.csr_matrix(tensor.reshape(-1, tensor.shape[-1]))
        np.savez(
            buffer,
            data=matrix.data,
            indices=matrix.indices,
            indptr=matrix.indptr,
            shape=matrix.shape,
            original_shape=tensor.shape,
            allow_pickle=False,
        )
    else:
        np.save(buffer, tensor, allow_pickle=False)
    return buffer.getvalue()


_CSR_FILE = len(_as_paper_file(np.ones((1, 1), np.float32))) - 8 - 4 * 2
"""A 2-D tensor's file beyond its CSR arrays (zip entries, ``.npy`` headers,
shape and original shape); each further dimension adds 8 (one more int64)."""
_NPY_FILE = len(_as_paper_file(np.zeros(0, np.float32)))
"""A 1-D or 0-D tensor's file beyond its raw values (the ``.npy`` header)."""


def jeurkar_message_bytes(
    shapes: Sequence[Sequence[int]], batch_norms: int, csr_bytes_: float
) -> int:
    """Bytes Jeurkar et al.'s code sends for a message of this model.

    From `csr_bytes` of the message's masks (Keras's layout, every tensor as
    CSR), counting the tensors as their code writes them (see the module
    docstring): the kept entries of the 2+-D tensors follow from it, 1-D
    tensors counted as kept whole (exact but for pruned biases, 8 bytes
    each), and BatchNorm's int64 ``num_batches_tracked``, one per layer.

    Args:
        shapes: The model's weights' shapes (Keras's order and layout).
        batch_norms: Its BatchNormalization layers.
        csr_bytes_: `csr_bytes` of the message.
    """
    fixed = 0
    for shape in shapes:
        size = int(np.prod(shape))
        if len(shape) > 1:
            csr_bytes_ -= 4 * (size // shape[-1] + 1)
            rows = size // torch_layout(shape)[-1]
            fixed += _CSR_FILE + 8 * (len(shape) - 2) + 4 * (rows + 1)
        else:
            csr_bytes_ -= 8 * size + 8
            fixed += _NPY_FILE + 4 * size
    counters = batch_norms * len(_as_paper_file(np.zeros((), np.int64)))
    return int(round(fixed + counters + csr_bytes_))


def coo_bytes(masks: Sequence[np.ndarray]) -> int:
    """Bytes of the update as SciPy COO matrices (float32 data, int32 row + col)."""
    return sum(12 * int(np.count_nonzero(mask)) for mask in masks)


def as_scipy_csr(
    values: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> list[scipy.sparse.csr_matrix]:
    """The update as real SciPy CSR matrices (what Jeurkar et al. uploaded)."""
    return [_as_matrix(v, m) for v, m in zip(values, masks, strict=True)]


def tff_8bit_bytes(shapes: Sequence[tuple[int, ...]]) -> int:
    """Bytes TFF's ``compression_aggregator`` would send for dense tensors."""
    total = 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        if size > TFF_QUANTIZATION_THRESHOLD:
            total += size + 8
        else:
            total += 4 * size
    return total


def binary_entropy(density: float) -> float:
    """``H(d) = -d log2 d - (1 - d) log2 (1 - d)`` (0 at d = 0 or 1)."""
    if density <= 0.0 or density >= 1.0:
        return 0.0
    return float(-density * np.log2(density) - (1 - density) * np.log2(1 - density))


def information_bound_bits(
    masks: Sequence[np.ndarray],
    value_format: str = "float32",
    held: Sequence[np.ndarray | None] | None = None,
) -> float:
    """``sum over tensors of n H(p) + d n b`` bits for these masks.

    ``p`` is the density ``d`` of the mask, or, where the receiver already
    holds an earlier mask (``held``), the fraction of entries that changed:
    positions then carry only the change (`information_bound_bits_of`).
    """
    held = [None] * len(masks) if held is None else list(held)
    return information_bound_bits_of(
        [mask_facts.counted(m, h) for m, h in zip(masks, held, strict=True)],
        value_format,
    )


def information_bound_bits_of(
    facts: Sequence[MaskFacts], value_format: str = "float32"
) -> float:
    """`information_bound_bits` from each mask's facts (kept entries, flips)."""
    bits = VALUE_BITS[value_format]
    total = 0.0
    for fact in facts:
        if fact.size == 0:
            continue
        density = fact.kept / fact.size
        change = density if fact.flips is None else fact.flips / fact.size
        total += fact.size * binary_entropy(change) + density * fact.size * bits
    return total
