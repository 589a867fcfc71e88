"""Per-client tensors kept compactly: their nonzero entries only.

A client's state between rounds (its error-feedback residual, its own model)
is zero wherever the client's subnetwork dropped a weight, so it is kept as
one bit per entry (nonzero or not) plus the values of the nonzero entries in
the tensors' own float type: ``n / 8 + 4 nnz`` bytes for float32 instead of
``4 n`` (``2 nnz`` for float16 residuals). The round trip is exact
(`CompactTensors.expand` returns the very same values, in the same type), so
a run resumed from a checkpoint of these continues bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CompactTensors:
    """Tensors as a packed bitmap of their nonzero entries and those values.

    Attributes:
        nonzero: ``np.packbits`` of the concatenated, flattened tensors' ``!= 0``.
        values: The nonzero entries' values (float32 or float16), in order.
    """

    nonzero: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (and written to a checkpoint)."""
        return int(self.nonzero.nbytes + self.values.nbytes)

    def expand(self, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """The dense tensors of these shapes, in the values' float type.

        Raises:
            ValueError: If the shapes do not hold as many entries as were
                packed.
        """
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
        total = sum(sizes)
        if -(-total // 8) != self.nonzero.size:
            raise ValueError(
                f"{self.nonzero.size} bytes of positions cannot hold {total} entries"
            )
        flat_nonzero = np.unpackbits(self.nonzero, count=total).astype(bool)
        if int(np.count_nonzero(flat_nonzero)) != self.values.size:
            raise ValueError(
                f"{self.values.size} values for {np.count_nonzero(flat_nonzero)} "
                "nonzero entries"
            )
        flat = np.zeros(total, self.values.dtype)
        flat[flat_nonzero] = self.values
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]


def compact(tensors: Sequence[np.ndarray], dtype: type = np.float32) -> CompactTensors:
    """Keeps the nonzero entries of ``tensors`` as ``dtype`` values.

    Exact when the tensors hold ``dtype`` values (float16 residuals, float32
    weights).
    """
    flat = np.concatenate(
        [np.asarray(t, dtype).ravel() for t in tensors] or [np.zeros(0, dtype)]
    )
    nonzero = flat != 0
    return CompactTensors(np.packbits(nonzero), flat[nonzero])
