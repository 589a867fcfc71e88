"""Per-client tensors kept compactly: the values at a set of positions.

A client's own model, kept between rounds by the driver, is zero wherever
the client's subnetwork dropped a weight, so it is kept as one bit per entry
(position kept or not) plus the values at the kept positions, in the
tensors' own float type: ``n / 8 + 4 k`` bytes for float32 instead of
``4 n``. The positions are the client's new masks (`at_positions`: the round
hands back the values there). The round trip is exact
(`CompactTensors.expand` returns the very same values, in the same type), so
a run resumed from a checkpoint of these continues bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CompactTensors:
    """Tensors as a packed bitmap of positions and the values there.

    Entries outside the positions are zero.

    Attributes:
        positions: ``np.packbits`` of the concatenated, flattened tensors'
            kept positions.
        values: The values at those positions (float32 or float16), in order.
    """

    positions: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (and written to a checkpoint)."""
        return int(self.positions.nbytes + self.values.nbytes)

    def expand(self, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """The dense tensors of these shapes, in the values' float type.

        Raises:
            ValueError: If the shapes do not hold as many entries as were
                packed, or the positions not as many as there are values.
        """
        sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
        total = sum(sizes)
        if -(-total // 8) != self.positions.size:
            raise ValueError(
                f"{self.positions.size} bytes of positions cannot hold {total} entries"
            )
        flat_positions = np.unpackbits(self.positions, count=total).astype(bool)
        if int(np.count_nonzero(flat_positions)) != self.values.size:
            raise ValueError(
                f"{self.values.size} values for "
                f"{np.count_nonzero(flat_positions)} positions"
            )
        flat = np.zeros(total, self.values.dtype)
        flat[flat_positions] = self.values
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]


def at_positions(
    masks: Sequence[np.ndarray], values: Sequence[np.ndarray]
) -> CompactTensors:
    """Tensors given as, per tensor, its values at its mask's ``True`` entries.

    Args:
        masks: One bool array per tensor, of the tensor's shape.
        values: Per tensor, a 1-D array of its values there, in flat order.

    Raises:
        ValueError: If a tensor's values do not match its mask's count.
    """
    for index, (mask, value) in enumerate(zip(masks, values, strict=True)):
        if np.size(value) != np.count_nonzero(mask):
            raise ValueError(
                f"tensor {index}: {np.size(value)} values for "
                f"{np.count_nonzero(mask)} positions"
            )
    flat_masks = np.concatenate(
        [np.asarray(m, bool).ravel() for m in masks] or [np.zeros(0, bool)]
    )
    flat_values = np.concatenate(
        [np.ravel(v) for v in values] or [np.zeros(0, np.float32)]
    )
    return CompactTensors(np.packbits(flat_masks), flat_values)
