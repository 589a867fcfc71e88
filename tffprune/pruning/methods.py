"""The pruning methods, one registry entry each.

An entry (`PruningMethod`) holds everything a method is, in one place:

* ``counts(shape, sparsity, structured_share, sliceable)``: how many entries
  and output slices of one kernel the sparsity means (``round(sparsity * n)``,
  `tffprune.pruning.masks.num_to_prune`), decided on the driver so that one
  compiled round serves every round and client (`tffprune.pruning.counts`);
* ``numpy_mask(kernels, sparsity, currents, sliceable, structured_share,
  norm)``: the reference masks of one channel group (the kernels whose output
  channels are summed, `tffprune.pruning.channel_graph`; one kernel when it
  owns its channels), one per kernel (`tffprune.pruning.masks`);
* ``tf_mask(kernels, alives, entries, slices, sliceable, norm)``: their
  TensorFlow twin at those counts (``entries`` per kernel, ``slices`` for the
  group), run inside a round (`tffprune.pruning.tf_masks`; tests hold one
  against the other);
* ``structured``: whether it drops whole output slices;
* ``grouped``: whether a structured method ranks a channel group's slices
  together (else each kernel's alone, as if it owned its channels);
* ``followers``: whether a structured method drops, with a slice, its bias
  entry and its followers' entries (BatchNormalization's ``gamma`` and
  ``beta``).

``sliceable`` is the one answer to "can this kernel be cut into output
slices" (`PrunableWeight.structured`: its outputs are on its last axis). A
method with ``scope="global"`` ranks all prunable kernels together and has no
per-kernel functions: the lifting functions (`tffprune.pruning.policy.
build_masks`, `tf_masks.build_masks`, `counts.pruning_counts`) take that one
branch. A new method is one entry: `register` it from its own module.

Methods: ``none``; ``weight`` (per-tensor magnitude); ``global-weight`` (one
magnitude threshold over all prunable kernels); ``unit`` (whole output slices
by their L2 norm, for every sliceable kernel: Dense units and Conv filters
alike); ``channel`` (the same slices ranked by the Ln norm of ``norm``,
Jeurkar et al.'s ``ln_structured``; with ``norm`` 2 it is ``unit``);
``hybrid`` (slices at ``structured_share * sparsity``, then weight at
``sparsity``). These three structured methods rank a channel group's slices
together and drop the entries of its followers (BatchNormalization's
``gamma`` and ``beta``) with them. ``layer-channel`` is Jeurkar et al.'s
code's structured pruning (PyTorch ``ln_structured(n=1, dim=0)`` on every
kernel): each kernel's output slices ranked by their L1 norm on their own,
channels summed at a residual ``Add`` not tied together, biases and
BatchNorm left whole (a dropped slice of a BatchNorm branch still outputs its
``beta``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tffprune.pruning import masks as mask_math


@dataclasses.dataclass(frozen=True)
class PruningMethod:
    """One pruning method (see the module docstring for each field's call).

    Attributes:
        name: Its name (``--method``).
        structured: Drops whole output slices.
        grouped: A structured method ranks a channel group's slices together.
        followers: A structured method drops a dropped slice's bias entry and
            its followers' (BatchNorm) entries too.
        scope: ``kernel`` (each kernel, or channel group, alone), ``global``
            (all together) or ``none`` (never prunes).
        counts: Per kernel, ``(entries, slices)`` for a sparsity.
        numpy_mask: Per channel group, the NumPy masks at a sparsity.
        tf_mask: Per channel group, the TensorFlow masks at counts.
    """

    name: str
    structured: bool = False
    grouped: bool = True
    followers: bool = True
    scope: str = "kernel"
    counts: Callable[..., tuple[int, int]] | None = None
    numpy_mask: Callable[..., np.ndarray] | None = None
    tf_mask: Callable | None = None


_REGISTRY: dict[str, PruningMethod] = {}


def register(method: PruningMethod) -> PruningMethod:
    """Adds a method to the registry (its name must be new).

    Raises:
        ValueError: If a method of that name exists, or a ``kernel`` method
            lacks one of its three functions.
    """
    if method.name in _REGISTRY:
        raise ValueError(f"a pruning method named {method.name!r} exists")
    if method.scope == "kernel" and None in (
        method.counts,
        method.numpy_mask,
        method.tf_mask,
    ):
        raise ValueError(
            f"pruning method {method.name!r} needs counts, numpy_mask and tf_mask"
        )
    _REGISTRY[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in registration order."""
    return tuple(_REGISTRY)


def get_method(name: str) -> PruningMethod:
    """The registry entry of ``name``.

    Raises:
        ValueError: If no method has that name.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown pruning method {name!r}; expected one of {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


def _tf_masks():
    """`tffprune.pruning.tf_masks`, imported where a round is traced only."""
    from tffprune.pruning import tf_masks

    return tf_masks


def _weight_counts(shape, sparsity, structured_share, sliceable):
    return mask_math.num_to_prune(sparsity, int(np.prod(shape))), 0


def _weight_numpy(kernels, sparsity, currents, sliceable, structured_share, norm):
    return [
        mask_math.weight_mask(kernel, sparsity, current)
        for kernel, current in zip(kernels, currents, strict=True)
    ]


def _weight_tf(kernels, alives, entries, slices, sliceable, norm):
    weight_mask = _tf_masks().weight_mask
    return [
        weight_mask(kernel, alive, count)
        for kernel, alive, count in zip(kernels, alives, entries, strict=True)
    ]


def _structured(norm_of: Callable[[float], float]) -> dict:
    """The three functions of a method that drops output slices by a norm."""

    def counts(shape, sparsity, structured_share, sliceable):
        return 0, mask_math.num_to_prune(sparsity, shape[-1]) if sliceable else 0

    def numpy_mask(kernels, sparsity, currents, sliceable, structured_share, norm):
        if not sliceable:  # outputs not on the last axis, or a fixed group
            return list(currents)
        return mask_math.group_structured_mask(
            kernels, sparsity, norm=norm_of(norm), masks=currents
        )

    def tf_mask(kernels, alives, entries, slices, sliceable, norm):
        if not sliceable:
            return list(alives)
        return _tf_masks().group_structured_mask(kernels, alives, slices, norm_of(norm))

    return dict(counts=counts, numpy_mask=numpy_mask, tf_mask=tf_mask)


def _hybrid_counts(shape, sparsity, structured_share, sliceable):
    entries = mask_math.num_to_prune(sparsity, int(np.prod(shape)))
    if not sliceable:
        return entries, 0
    return entries, mask_math.num_to_prune(structured_share * sparsity, shape[-1])


def _hybrid_numpy(kernels, sparsity, currents, sliceable, structured_share, norm):
    # mask_math.hybrid_mask, over a channel group: its structured step ranks
    # the group's channels together, its weight step is each kernel's own.
    if sliceable:
        currents = mask_math.group_structured_mask(
            kernels, structured_share * sparsity, norm=norm, masks=currents
        )
    return _weight_numpy(kernels, sparsity, currents, sliceable, 0.0, norm)


def _hybrid_tf(kernels, alives, entries, slices, sliceable, norm):
    if sliceable:
        alives = _tf_masks().group_structured_mask(kernels, alives, slices, norm)
    return _weight_tf(kernels, alives, entries, slices, sliceable, norm)


NONE = register(PruningMethod("none", scope="none"))
WEIGHT = register(
    PruningMethod(
        "weight", counts=_weight_counts, numpy_mask=_weight_numpy, tf_mask=_weight_tf
    )
)
GLOBAL_WEIGHT = register(PruningMethod("global-weight", scope="global"))
UNIT = register(PruningMethod("unit", structured=True, **_structured(lambda n: 2.0)))
CHANNEL = register(
    PruningMethod("channel", structured=True, **_structured(lambda n: n))
)
LAYER_CHANNEL = register(
    PruningMethod(
        "layer-channel",
        structured=True,
        grouped=False,
        followers=False,
        **_structured(lambda n: 1.0),
    )
)
HYBRID = register(
    PruningMethod(
        "hybrid",
        structured=True,
        counts=_hybrid_counts,
        numpy_mask=_hybrid_numpy,
        tf_mask=_hybrid_tf,
    )
)
