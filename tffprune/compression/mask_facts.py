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

So they can be counted where the mask is made (a client's TensorFlow work,
`tffprune.compression.tf_mask_facts`, whose vector `from_vector` reads) and
only these numbers need to reach the driver. `of` counts them in NumPy; a
test holds the two equal.
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


def from_vector(shape: Sequence[int], vector, held: bool) -> MaskFacts:
    """The facts counted in TensorFlow (`tf_mask_facts.facts_vector`).

    Args:
        shape: The weight's shape.
        vector: ``[kept, flips, gaps_length, change_length]``, flips and
            the change against the mask the client started from.
        held: Whether the receiver holds that mask; if not, the flips are
            dropped.

    Returns:
        The facts, with the lengths kept only where `of` keeps them.
    """
    kept, flips, gaps_length, change_length = (int(v) for v in vector)
    shape = tuple(int(d) for d in shape)
    facts = MaskFacts(shape, kept, flips if held else None)
    if kept == facts.size or facts.flips == 0:
        return facts
    return facts._replace(
        gaps_length=gaps_length, change_length=change_length if facts.flips else None
    )
