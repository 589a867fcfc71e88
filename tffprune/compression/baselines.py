"""What other schemes would send for the same update, and the information bound.

* SciPy CSR / COO (Jeurkar et al., 2024 upload a SciPy sparse matrix): each
  tensor reshaped to 2-D ``(-1, last_dim)``; bytes are ``data.nbytes +
  indices.nbytes + indptr.nbytes`` (CSR) or ``data + row + col`` (COO) with
  SciPy's own dtypes (float32 values, int32 indices).
* The same matrices as the files Jeurkar et al.'s code sends: one
  uncompressed ``scipy.sparse.save_npz`` file per tensor (`npz_bytes`), the
  CSR arrays plus a fixed container cost per tensor (`NPZ_FILE_OVERHEAD`: zip
  entries and ``.npy`` headers of its five arrays). Their Table 1's "Data
  Size (MB)" matches these files' bytes in MiB (2**20) to its two decimals.
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


def _rows_and_kept(mask: np.ndarray) -> tuple[int, int]:
    mask = np.asarray(mask, bool)
    columns = mask.shape[-1] if mask.ndim else 1
    rows = mask.size // columns if columns else 0
    return rows, int(np.count_nonzero(mask))


def csr_bytes(masks: Sequence[np.ndarray]) -> int:
    """Bytes of the update as SciPy CSR matrices (data + indices + indptr).

    Computed from the counts, without building the matrices (this runs for
    every client every round): float32 data and int32 indices per kept entry,
    one int32 pointer per row plus one; `as_scipy_csr` builds the real thing
    and a test checks the two agree.
    """
    total = 0
    for mask in masks:
        rows, kept = _rows_and_kept(mask)
        total += 4 * kept + 4 * kept + 4 * (rows + 1)
    return total


def npz_bytes(masks: Sequence[np.ndarray]) -> int:
    """Bytes of the update as uncompressed ``scipy.sparse.save_npz`` files.

    Builds the real files (one per tensor); sizes do not depend on the
    values, so the masks stand in for them.
    """
    total = 0
    for mask in masks:
        mask = np.asarray(mask, bool)
        buffer = io.BytesIO()
        scipy.sparse.save_npz(
            buffer, _as_matrix(mask.astype(np.float32), mask), compressed=False
        )
        total += buffer.getbuffer().nbytes
    return total


def _npz_file_overhead() -> int:
    mask = np.ones((1, 1), bool)
    return npz_bytes([mask]) - csr_bytes([mask])


NPZ_FILE_OVERHEAD = _npz_file_overhead()
"""Bytes an ``.npz`` file adds to a tensor's CSR arrays (`npz_bytes` minus
`csr_bytes`; the same for every shape and density, tested)."""


def coo_bytes(masks: Sequence[np.ndarray]) -> int:
    """Bytes of the update as SciPy COO matrices (float32 data, int32 row + col)."""
    return sum(12 * _rows_and_kept(mask)[1] for mask in masks)


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
    positions then carry only the change.
    """
    bits = VALUE_BITS[value_format]
    held = [None] * len(masks) if held is None else list(held)
    total = 0.0
    for mask, previous in zip(masks, held, strict=True):
        size = int(np.size(mask))
        if size == 0:
            continue
        density = int(np.count_nonzero(mask)) / size
        change = (
            density
            if previous is None
            else int(np.count_nonzero(np.asarray(previous) != np.asarray(mask))) / size
        )
        total += size * binary_entropy(change) + density * size * bits
    return total
