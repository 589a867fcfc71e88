"""How much a client prunes in one round, as counts per weight.

The NumPy masks (`tffprune.pruning.policy.build_masks`) take a sparsity; the
TensorFlow twins that run inside a round (`tffprune.pruning.tf_masks`) take
the counts that sparsity means, computed here once on the driver with the same
rounding (``round(sparsity * n)``, `tffprune.pruning.masks.num_to_prune`):
per prunable kernel, the entries and output slices its method's entry says
(`tffprune.pruning.methods`: ``weight`` entries, ``unit`` / ``channel``
slices, ``hybrid`` slices at ``structured_share * sparsity`` then entries at
``sparsity``), or one total over all prunable kernels (``global-weight``).

Zero counts leave a mask as it is (a mask never revives an entry), which is
how a client that does not prune this round is expressed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from tffprune.pruning.masks import num_to_prune
from tffprune.pruning.methods import get_method
from tffprune.pruning.policy import PrunableWeight


class PruningStep(NamedTuple):
    """How far a client prunes this round, as a round takes it (`ClientInput`).

    Attributes:
        entries: int32, per trainable weight, entries its mask prunes in all.
        slices: int32, per trainable weight, output slices pruned in all.
        total: int32, entries pruned over all prunable kernels together
            (``global-weight``).
        early_examples: int32, with the mask-distance rule, the training
            examples after which the early candidate mask is drawn (0: off).
    """

    entries: Any
    slices: Any
    total: Any
    early_examples: Any


@dataclasses.dataclass(frozen=True)
class PruningCounts:
    """One client's pruning step for one round.

    Attributes:
        entries: int32, per trainable weight, entries its mask prunes in all.
        slices: int32, per trainable weight, output slices pruned in all.
        total: Entries pruned over all prunable kernels (``global-weight``).
        early_examples: With the mask-distance rule (Sub-FedAvg's reference
            client), the training examples after which the client draws its
            early candidate mask (one local epoch); 0 without the rule.
    """

    entries: np.ndarray
    slices: np.ndarray
    total: int
    early_examples: int = 0

    def as_tensors(self) -> PruningStep:
        """The form a round's client work takes (`ClientInput.counts`)."""
        return PruningStep(
            np.asarray(self.entries, np.int32),
            np.asarray(self.slices, np.int32),
            np.int32(self.total),
            np.int32(self.early_examples),
        )

    @property
    def prunes(self) -> bool:
        """Whether these counts change a mask at all."""
        return bool(np.any(self.entries) or np.any(self.slices) or self.total)


def no_pruning(num_trainable: int) -> PruningCounts:
    """Counts that leave every mask unchanged."""
    return PruningCounts(
        np.zeros(num_trainable, np.int32), np.zeros(num_trainable, np.int32), 0
    )


def pruning_counts(
    shapes: Sequence[tuple[int, ...]],
    targets: Sequence[PrunableWeight],
    method: str,
    sparsity: float,
    structured_share: float = 0.5,
) -> PruningCounts:
    """The counts of ``method`` at ``sparsity`` for a model's trainable weights.

    Args:
        shapes: Shapes of all trainable weights, in model order.
        targets: The prunable kernels (`PruningPolicy.select`).
        method: One of `tffprune.pruning.policy.METHODS`.
        sparsity: Target sparsity in [0, 1).
        structured_share: For ``hybrid``: share of the sparsity reached by
            whole slices.

    Returns:
        The counts; all zero for ``none`` or sparsity 0.
    """
    entry = get_method(method)
    counts = no_pruning(len(shapes))
    if entry.scope == "none" or sparsity == 0.0:
        return counts
    if entry.scope == "global":
        size = sum(int(np.prod(shapes[t.index])) for t in targets)
        return dataclasses.replace(counts, total=num_to_prune(sparsity, size))
    entries, slices = counts.entries.copy(), counts.slices.copy()
    for target in targets:
        entries[target.index], slices[target.index] = entry.counts(
            shapes[target.index], sparsity, structured_share, target.structured
        )
    return PruningCounts(entries, slices, 0)
