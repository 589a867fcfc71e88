"""Pruning masks as pure NumPy functions.

A mask is a boolean array of the weights' shape: ``True`` keeps a weight,
``False`` prunes it. Every function here takes arrays and returns arrays; none
needs TensorFlow.

Counting and tie-breaking, the same everywhere:

* The number of pruned entries (or units, or channels) is
  ``round(sparsity * n)`` with Python's ``round`` (half to even), so
  ``weight_mask(np.linspace(1, 100, 100), 0.5)`` prunes exactly 1..50.
* Candidates are ranked by score (magnitude, or column / filter norm) and the
  lowest go first; equal scores are broken by position, lower flat index
  pruned first. The result is deterministic.
* An optional ``mask`` marks entries already pruned: they are pruned first and
  count toward the total, so masks nest (pruning further never revives a weight).

Methods (Singh & Raj 2023; Jeurkar et al. 2024):

* weight pruning: per tensor, zero the smallest ``|w|``;
* global weight pruning: one magnitude threshold over several tensors;
* unit pruning: zero whole columns of a Dense kernel (inputs, units) with the
  smallest L2 norm, and the matching bias entries;
* channel pruning: zero whole output filters of a Conv2D kernel
  (height, width, in, out) with the smallest Ln norm;
* hybrid: structured (units or channels) first, then weight pruning among the
  survivors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_sparsity(sparsity: float) -> float:
    """Validates a sparsity: a real number in [0, 1).

    Raises:
        ValueError: If the sparsity is not in [0, 1).
    """
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(
            f"sparsity must be a number in [0, 1), got {sparsity!r}"
        ) from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return value


def _check_weights(weights: np.ndarray, name: str = "weights") -> np.ndarray:
    array = np.asarray(weights)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite entries")
    return array


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match weights {shape}")
    return mask.astype(bool)


def num_to_prune(sparsity: float, count: int) -> int:
    """How many of ``count`` items a sparsity prunes: ``round(sparsity * count)``."""
    return int(round(check_sparsity(sparsity) * count))


def _prune_lowest(scores: np.ndarray, alive: np.ndarray, num_pruned: int) -> np.ndarray:
    """Keep-vector over flat candidates: dead first, then lowest score, then index.

    Equivalent to a stable sort on ``(alive, score)`` but O(n): the cut value is
    found with ``np.partition`` and ties at the cut are broken by position.
    """
    scores = np.asarray(scores, np.float64)
    # Scores are magnitudes or norms (>= 0); dead entries rank below all of them.
    key = np.where(alive, scores, -1.0)
    count = max(num_pruned, int(np.count_nonzero(~alive)))
    keep = np.ones(key.size, dtype=bool)
    if count == 0:
        return keep
    cut = np.partition(key, count - 1)[count - 1]
    below = key < cut
    keep[below] = False
    needed = count - int(np.count_nonzero(below))
    keep[np.flatnonzero(key == cut)[:needed]] = False
    return keep


def weight_mask(
    weights: np.ndarray, sparsity: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """Magnitude pruning of one tensor.

    Args:
        weights: Any-shaped numeric array.
        sparsity: Fraction of entries to prune, in [0, 1).
        mask: Entries already pruned (``False``); they are pruned first. If they
            already exceed ``round(sparsity * size)``, the mask is returned
            unchanged (pruning never revives a weight).

    Returns:
        Boolean array of the weights' shape with exactly
        ``max(round(sparsity * size), already pruned)`` ``False`` entries.

    Raises:
        ValueError: If the sparsity is outside [0, 1), the weights are not
            finite, or the mask's shape differs.
    """
    sparsity = check_sparsity(sparsity)
    weights = _check_weights(weights)
    alive = _check_mask(mask, weights.shape)
    keep = _prune_lowest(
        np.abs(weights).ravel(), alive.ravel(), num_to_prune(sparsity, weights.size)
    )
    return keep.reshape(weights.shape)


def global_weight_masks(
    weights_list: Sequence[np.ndarray],
    sparsity: float,
    masks: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Magnitude pruning with one threshold across several tensors.

    The smallest ``round(sparsity * total)`` magnitudes over all tensors are
    pruned (global L1 unstructured pruning, as ``torch.nn.utils.prune.
    global_unstructured`` does); a tensor may end up sparser or denser than the
    target. Ties: earlier tensor first, then lower flat index.

    Args:
        weights_list: The tensors.
        sparsity: Overall fraction to prune, in [0, 1).
        masks: Optional existing masks, one per tensor.

    Returns:
        One boolean mask per tensor.

    Raises:
        ValueError: On invalid sparsity, non-finite weights or mismatched masks.
    """
    sparsity = check_sparsity(sparsity)
    arrays = [
        _check_weights(w, f"weights_list[{i}]") for i, w in enumerate(weights_list)
    ]
    if masks is not None and len(masks) != len(arrays):
        raise ValueError(f"got {len(masks)} masks for {len(arrays)} tensors")
    alive = [
        _check_mask(None if masks is None else masks[i], a.shape)
        for i, a in enumerate(arrays)
    ]
    if not arrays:
        return []
    scores = np.concatenate([np.abs(a).ravel() for a in arrays])
    alive_flat = np.concatenate([m.ravel() for m in alive])
    keep = _prune_lowest(scores, alive_flat, num_to_prune(sparsity, scores.size))
    sizes = np.cumsum([a.size for a in arrays])[:-1]
    return [
        part.reshape(a.shape)
        for part, a in zip(np.split(keep, sizes), arrays, strict=True)
    ]


def structured_mask(
    kernel: np.ndarray,
    sparsity: float,
    norm: float = 2,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Drops whole output slices (the last axis) with the lowest Ln norm.

    The common core of `unit_mask` (Dense) and `channel_mask` (Conv2D), for any
    kernel whose last axis is its outputs: `group_structured_mask` of one.

    Args:
        kernel: Kernel with at least 2 dimensions, outputs last.
        sparsity: Fraction of outputs to drop, in [0, 1).
        norm: The n of the Ln norm over each output's entries.
        mask: Optional existing mask; outputs with no kept entry count as
            dropped, and norms are taken over kept entries only.

    Returns:
        Boolean mask of the kernel's shape with whole output slices ``False``.

    Raises:
        ValueError: On a kernel with fewer than 2 dimensions, invalid sparsity
            or non-finite weights.
    """
    return group_structured_mask([kernel], sparsity, norm, [mask])[0]


def group_structured_mask(
    kernels: Sequence[np.ndarray],
    sparsity: float,
    norm: float = 2,
    masks: Sequence[np.ndarray | None] | None = None,
) -> list[np.ndarray]:
    """Drops the same output slices of kernels whose outputs are one channel.

    Kernels whose outputs are summed (the two branches of a residual ``Add``,
    `tffprune.pruning.channel_graph`) rank each channel ``c`` by the Ln norm
    of all their kept entries of ``c`` together,
    ``(sum_k sum_i |w_k[i, c]|^n)^(1/n)`` (the largest magnitude for
    ``n = inf``), and drop the lowest ``round(sparsity * channels)`` from
    every kernel. A channel is dead already when no kernel keeps an entry of
    it. With one kernel this is `structured_mask`.

    Args:
        kernels: Kernels with at least 2 dimensions and the same number of
            outputs on their last axis.
        sparsity: Fraction of channels to drop, in [0, 1).
        norm: The n of the Ln norm.
        masks: Optional existing masks, one per kernel (``None`` entries:
            nothing pruned yet).

    Returns:
        One boolean mask per kernel, the same channels ``False`` in each.

    Raises:
        ValueError: On a kernel with fewer than 2 dimensions, kernels with
            different numbers of outputs, invalid sparsity or non-finite
            weights.
    """
    sparsity = check_sparsity(sparsity)
    arrays = [_check_weights(k, "kernel") for k in kernels]
    for kernel in arrays:
        if kernel.ndim < 2:
            raise ValueError(
                f"structured pruning needs a kernel with outputs on its last axis "
                f"(>= 2 dimensions), got shape {kernel.shape}"
            )
    outputs = {kernel.shape[-1] for kernel in arrays}
    if len(outputs) != 1:
        raise ValueError(
            f"kernels pruned as one channel group need the same number of "
            f"outputs, got {sorted(outputs)}"
        )
    (outputs,) = outputs
    if masks is None:
        masks = [None] * len(arrays)
    alive = [_check_mask(m, k.shape) for m, k in zip(masks, arrays, strict=True)]
    # Norms in float64, so that their order does not depend on summation order
    # (the TensorFlow twin sums differently).
    flat = np.concatenate(
        [
            (k.astype(np.float64) * a).reshape(-1, outputs)
            for k, a in zip(arrays, alive, strict=True)
        ]
    )
    scores = (
        np.linalg.norm(flat, ord=norm, axis=0) if flat.shape[0] else np.zeros(outputs)
    )
    output_alive = np.concatenate([a.reshape(-1, outputs) for a in alive]).any(axis=0)
    keep = _prune_lowest(scores, output_alive, num_to_prune(sparsity, outputs))
    return [a & keep for a in alive]


def unit_mask(
    kernel: np.ndarray, sparsity: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """Neuron pruning of a Dense kernel: drop the lowest-L2-norm columns.

    Args:
        kernel: Dense kernel of shape (inputs, units).
        sparsity: Fraction of units to drop, in [0, 1); exactly
            ``round(sparsity * units)`` columns are zeroed.
        mask: Optional existing mask; columns with no kept entry count as
            dropped, and norms are taken over kept entries only.

    Returns:
        Boolean mask of the kernel's shape with whole columns ``False``. Use
        `bias_mask_for` for the matching bias entries.

    Raises:
        ValueError: If the kernel is not 2-D, or on invalid sparsity or weights.
    """
    sparsity = check_sparsity(sparsity)
    kernel = _check_weights(kernel, "kernel")
    if kernel.ndim != 2:
        raise ValueError(
            f"unit_mask expects a 2-D Dense kernel (inputs, units), got shape "
            f"{kernel.shape}"
        )
    return structured_mask(kernel, sparsity, norm=2, mask=mask)


def channel_mask(
    kernel: np.ndarray,
    sparsity: float,
    norm: float = 2,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Filter pruning of a Conv2D kernel: drop the lowest-Ln-norm output filters.

    Args:
        kernel: Conv2D kernel of shape (height, width, in_channels, filters).
        sparsity: Fraction of filters to drop, in [0, 1); exactly
            ``round(sparsity * filters)``.
        norm: The n of the Ln norm (1, 2, ``np.inf``); the second paper's
            ``ln_structured`` uses n = 2 by default.
        mask: Optional existing mask.

    Returns:
        Boolean mask of the kernel's shape with whole filters ``False``.

    Raises:
        ValueError: If the kernel is not 4-D, or on invalid sparsity or weights.
    """
    sparsity = check_sparsity(sparsity)
    kernel = _check_weights(kernel, "kernel")
    if kernel.ndim != 4:
        raise ValueError(
            f"channel_mask expects a 4-D Conv2D kernel (height, width, in, out), "
            f"got shape {kernel.shape}"
        )
    return structured_mask(kernel, sparsity, norm=norm, mask=mask)


def bias_mask_for(kernel_mask: np.ndarray) -> np.ndarray:
    """Bias mask matching a structured kernel mask.

    A unit's (or filter's) bias is kept when any of its kernel entries is kept,
    so after `unit_mask` or `channel_mask` dropped units lose their bias too.

    Args:
        kernel_mask: Mask of a kernel whose last axis is the output units.

    Returns:
        Boolean vector of length ``kernel_mask.shape[-1]``.
    """
    kernel_mask = np.asarray(kernel_mask, dtype=bool)
    return kernel_mask.reshape(-1, kernel_mask.shape[-1]).any(axis=0)


def hybrid_mask(
    kernel: np.ndarray,
    sparsity: float,
    structured_share: float = 0.5,
    norm: float = 2,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Structured pruning first, then weight pruning among the survivors.

    With overall sparsity ``s`` and share ``a``, whole units/filters are
    dropped at structured sparsity ``a * s``; then magnitude pruning among the
    remaining weights brings the tensor to exactly ``round(s * size)`` pruned
    entries. The overall sparsity is ``1 - (1 - a s)(1 - s_w)`` with the weight
    step's ``s_w = 1 - (1 - s) / (1 - a s)``.

    Args:
        kernel: Kernel with its outputs on the last axis (Dense, Conv); a
            1-D tensor is weight-pruned only.
        sparsity: Overall fraction to prune, in [0, 1).
        structured_share: ``a`` in [0, 1]: 0 is pure weight pruning, 1 is
            structured pruning as far as whole units allow.
        norm: Ln norm for the structured step.
        mask: Optional existing mask.

    Returns:
        Boolean mask of the kernel's shape.

    Raises:
        ValueError: On an invalid sparsity, share or weights.
    """
    sparsity = check_sparsity(sparsity)
    if not 0.0 <= structured_share <= 1.0:
        raise ValueError(f"structured_share must be in [0, 1], got {structured_share}")
    kernel = _check_weights(kernel, "kernel")
    structured = _check_mask(mask, kernel.shape)
    if kernel.ndim >= 2:
        structured = structured_mask(
            kernel, structured_share * sparsity, norm=norm, mask=structured
        )
    return weight_mask(kernel, sparsity, structured)


def apply_mask(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zeroes the pruned entries: ``weights * mask`` in the weights' dtype."""
    weights = np.asarray(weights)
    mask = _check_mask(mask, weights.shape)
    return np.where(mask, weights, np.zeros((), weights.dtype))


def mask_sparsity(mask: np.ndarray) -> float:
    """Fraction of pruned (``False``) entries; 0 for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    return 0.0 if mask.size == 0 else 1.0 - np.count_nonzero(mask) / mask.size


def mask_distance(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> float:
    """Mean over tensors of the Hamming distance of two masks.

    Sub-FedAvg's reference client (``dist_masks``): per tensor, the share of
    entries whose kept/pruned state differs, then the mean over tensors.

    Args:
        first: Boolean masks.
        second: Masks of the same shapes.

    Returns:
        The distance in [0, 1]; 0 for no tensors.

    Raises:
        ValueError: If the lists' lengths or shapes differ.
    """
    if len(first) != len(second):
        raise ValueError(f"{len(first)} masks against {len(second)}")
    distances = []
    for a, b in zip(first, second, strict=True):
        a, b = np.asarray(a, bool), np.asarray(b, bool)
        if a.shape != b.shape:
            raise ValueError(f"mask shapes differ: {a.shape} and {b.shape}")
        distances.append(float(np.mean(a != b)) if a.size else 0.0)
    return float(np.mean(distances)) if distances else 0.0
