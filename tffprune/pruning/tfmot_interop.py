"""Masks between tffprune and models wrapped by tfmot's ``prune_low_magnitude``.

tfmot keeps each pruned kernel's mask in a non-trainable variable of its
``PruneLowMagnitude`` wrapper (``layer.pruning_vars``: ``(weight, mask,
threshold)``), which only its Keras callback updates. A federated round never
runs Keras callbacks, so tffprune refuses wrapped models for training
(`tffprune.pruning.policy.check_not_tfmot_wrapped`) and offers these two
bridges instead:

* `masks_from_tfmot`: a wrapped (e.g. centrally pruned) model's masks as
  tffprune masks, one per trainable weight;
* `set_tfmot_masks`: tffprune masks (e.g. a client's subnetwork) into a
  wrapped model, which then fine-tunes with tfmot keeping them.

Masks are listed in ``model.trainable_weights`` order, which
``tfmot.sparsity.keras.strip_pruning`` keeps, so they apply to the stripped
model too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tffprune.pruning.policy import _tfmot_wrapped_layers


def _wrappers(model) -> list:
    wrappers = _tfmot_wrapped_layers(model)
    if not wrappers:
        raise ValueError(
            "the model has no layer wrapped with tfmot's prune_low_magnitude"
        )
    return wrappers


def _pruned_variables(model) -> list[tuple[int, object, object]]:
    """``(position in trainable_weights, weight, mask)`` of every pruned kernel."""
    wrappers = _wrappers(model)
    positions = {id(v): i for i, v in enumerate(model.trainable_weights)}
    found = []
    for wrapper in wrappers:
        if not wrapper.built:
            raise ValueError(f"layer {wrapper.name} is not built yet")
        for weight, mask, _ in wrapper.pruning_vars:
            found.append((positions[id(weight)], weight, mask))
    return found


def masks_from_tfmot(model) -> list[np.ndarray]:
    """The masks a tfmot-wrapped model holds.

    Args:
        model: A built Keras model with ``prune_low_magnitude`` layers.

    Returns:
        One boolean mask per ``model.trainable_weights`` entry; weights tfmot
        does not prune are all ``True``.

    Raises:
        ValueError: If no layer is wrapped.
    """
    pruned = _pruned_variables(model)
    masks = [np.ones(tuple(w.shape), bool) for w in model.trainable_weights]
    for position, _, mask in pruned:
        masks[position] = mask.numpy() != 0
    return masks


def set_tfmot_masks(model, masks: Sequence[np.ndarray]) -> None:
    """Writes tffprune masks into a tfmot-wrapped model and zeroes the pruned.

    Args:
        model: A built Keras model with ``prune_low_magnitude`` layers.
        masks: One boolean mask per ``model.trainable_weights`` entry (masks
            of weights tfmot does not prune are ignored).

    Raises:
        ValueError: If no layer is wrapped or the masks do not match.
    """
    if len(masks) != len(model.trainable_weights):
        raise ValueError(
            f"got {len(masks)} masks for {len(model.trainable_weights)} weights"
        )
    for position, weight, mask in _pruned_variables(model):
        kept = np.asarray(masks[position], bool)
        if kept.shape != tuple(weight.shape):
            raise ValueError(
                f"mask {position} has shape {kept.shape}, {weight.name} "
                f"{tuple(weight.shape)}"
            )
        mask.assign(kept.astype(mask.dtype.as_numpy_dtype))
        weight.assign(np.where(kept, weight.numpy(), 0).astype(weight.dtype.name))
