"""The few facts about a mask that its messages' sizes depend on.

A message's exact size (`tffprune.compression.wire.encoded_size_of`), its
SciPy CSR size and its information bound (`tffprune.compression.baselines`)
depend on a mask only through:

* its shape and how many entries it keeps;
* where the receiver holds an earlier mask: how many entries differ from it
  (``flips``), and the length of the Rice code of those positions
  (``change_length``);
* the length of the Rice code of the positions of its rarer side
  (``gaps_length``: kept entries if at most half are kept, else pruned ones;
  `tffprune.compression.rice.encoded_length`).

`of` counts them once a mask; the sizes, CSR bytes and bounds are then
read from them. A Sub-FedAvg client's download, whose positions the client
holds, needs only its kept entries (`tffprune.pruning.packed_masks.
PackedMasks.kept`, on its packed bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tffprune.compression import rice


class MaskFacts(NamedTuple):
    """What a message's size depends on, of one weight's mask.

    Attributes:
        shape: The weight's shape.
        kept: Entries kept.
        flips: Entries that differ from the mask the receiver holds; None if
            it holds none.
        gaps_length: Bytes of the Rice code of the rarer side's positions;
            None where no message needs them (every entry kept, or nothing
            changed from the held mask).
        change_length: Bytes of the Rice code of the flipped positions; None
            unless some flipped.
    """

    shape: tuple[int, ...]
    kept: int
    flips: int | None = None
    gaps_length: int | None = None
    change_length: int | None = None

    @property
    def size(self) -> int:
        """Entries of the weight."""
        return int(np.prod(self.shape, dtype=np.int64))


def counted(mask: np.ndarray, held: np.ndarray | None = None) -> MaskFacts:
    """The mask's shape, kept entries and flips against ``held`` (no codes)."""
    mask = np.asarray(mask, bool)
    flips = None
    if held is not None:
        flips = int(np.count_nonzero(np.asarray(held, bool) != mask))
    return MaskFacts(tuple(mask.shape), int(np.count_nonzero(mask)), flips)


def of(mask: np.ndarray, held: np.ndarray | None = None) -> MaskFacts:
    """Every fact of ``mask`` a message may need, ``held`` the receiver's mask.

    Args:
        mask: Boolean, True kept.
        held: The mask the receiver already holds, or None.

    Returns:
        The facts; code lengths only where a message can use them.
    """
    mask = np.asarray(mask, bool)
    facts = counted(mask, held)
    if facts.kept == mask.size or facts.flips == 0:
        return facts
    flat = mask.ravel()
    rarer = flat if facts.kept <= flat.size // 2 else ~flat
    change_length = None
    if facts.flips:
        flipped = np.flatnonzero(np.asarray(held, bool).ravel() != flat)
        change_length = rice.encoded_length(flipped)
    return facts._replace(
        gaps_length=rice.encoded_length(np.flatnonzero(rarer)),
        change_length=change_length,
    )


def of_all(
    masks: Sequence[np.ndarray], held: Sequence[np.ndarray | None] | None = None
) -> list[MaskFacts]:
    """`of` each mask, against its held mask (None: none held)."""
    held = [None] * len(masks) if held is None else held
    return [of(mask, previous) for mask, previous in zip(masks, held, strict=True)]


def whole(shape: Sequence[int]) -> MaskFacts:
    """The facts of a weight sent whole (every entry kept, nothing held)."""
    shape = tuple(int(d) for d in shape)
    return MaskFacts(shape, int(np.prod(shape, dtype=np.int64)))
