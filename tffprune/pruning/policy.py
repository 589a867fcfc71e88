"""What is prunable in a model, and masks lifted over a whole model.

Weights are handled as the list of a Keras model's ``trainable_weights`` (as
NumPy arrays, in that order), the same list TFF's ``ModelWeights.trainable``
holds. A `PruningPolicy` picks the prunable kernels in that list:

* Dense and Conv2D kernels are prunable;
* biases are not weight-pruned by default (``prune_biases``: the biases of
  the pruned layers too, by magnitude, as PyTorch's ``global_unstructured``
  over all parameters does for Jeurkar et al., 2024); the structured methods
  unit, channel and hybrid drop the bias entries (and BatchNorm ``gamma`` and
  ``beta``) of the units or filters they remove either way, ``layer-channel``
  does not (the paper's code's rule);
* BatchNorm parameters and every other weight are never pruned by magnitude;
* the final logits layer is left whole by default, as Singh & Raj (2023) do.

Methods (``METHODS``) are the entries of `tffprune.pruning.methods`:
``none``, ``weight``, ``global-weight``, ``unit``, ``channel``,
``layer-channel``, ``hybrid``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tffprune.pruning import channel_graph
from tffprune.pruning import masks as mask_math
from tffprune.pruning.methods import get_method, method_names

METHODS = method_names()


@dataclasses.dataclass(frozen=True)
class PrunableWeight:
    """One prunable kernel in a model's trainable weights.

    Attributes:
        index: Position of the kernel in ``model.trainable_weights``.
        layer: Name of its layer.
        kind: ``dense`` or ``conv``; ``bias`` for a bias pruned by magnitude
            (`PruningPolicy.prune_biases`).
        bias_index: Position of the layer's bias, or ``None`` when it has none.
        structured: Whether structured methods may drop whole output slices:
            its outputs are on its last axis and no channel it shares at a
            sum is one no mask can drop (``False`` for transposed
            convolutions and for a fixed channel group,
            `tffprune.pruning.channel_graph`; those are weight-pruned only).
        group: The index of the first kernel of its channel group when its
            output channels are summed with other kernels' (a residual
            ``Add``): structured methods rank and drop the group's channels
            together. ``None`` when it owns its channels.
        followers: Positions of the weights whose last axis follows its
            (its group's) output channels, BatchNormalization's ``gamma`` and
            ``beta``: structured methods drop their entries of a pruned
            channel as they drop the bias's. Set on a group's first kernel.
    """

    index: int
    layer: str
    kind: str
    bias_index: int | None
    structured: bool = True
    group: int | None = None
    followers: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class PruningPolicy:
    """Which weights of a model may be pruned.

    Prunable: the kernels of Dense, Conv1D/2D/3D and their transposed forms
    (weight pruning only), and the pointwise kernels of separable
    convolutions. Biases, normalization parameters, depthwise kernels,
    embeddings, recurrent layers and every other weight are kept whole
    (`unpruned_layers` lists them).

    Attributes:
        prune_logits: Whether the last Dense layer (the logits) is prunable.
        prune_biases: Whether the biases of the prunable layers are prunable
            entry by entry too (weight and global-weight methods; ``kind``
            ``bias``, no output slices).
    """

    prune_logits: bool = False
    prune_biases: bool = False

    def select(self, model) -> list[PrunableWeight]:
        """Lists the prunable kernels of a Keras model.

        Args:
            model: A built ``tf.keras.Model``.

        Returns:
            The prunable kernels (and, with ``prune_biases``, their biases) in
            ``trainable_weights`` order.

        Raises:
            ValueError: If the model holds layers wrapped by tfmot's
                ``prune_low_magnitude`` (see `tffprune.pruning.tfmot_interop`).
        """
        check_not_tfmot_wrapped(model)
        positions = {id(v): i for i, v in enumerate(model.trainable_weights)}
        candidates: list[PrunableWeight] = []
        for layer in _flatten_layers(model):
            found = _prunable_kernel(layer)
            if found is None or not layer.trainable:
                continue
            kernel, kind, structured = found
            if id(kernel) not in positions:
                continue
            bias = getattr(layer, "bias", None)
            candidates.append(
                PrunableWeight(
                    index=positions[id(kernel)],
                    layer=layer.name,
                    kind=kind,
                    bias_index=None if bias is None else positions.get(id(bias)),
                    structured=structured,
                )
            )
        logits = self.logits_layer(candidates)
        if logits is not None:
            candidates = [c for c in candidates if c is not logits]
        candidates = _with_channel_groups(model, candidates, positions)
        if self.prune_biases:
            candidates += [
                PrunableWeight(c.bias_index, c.layer, "bias", None, structured=False)
                for c in candidates
                if c.bias_index is not None
            ]
        return sorted(candidates, key=lambda c: c.index)

    def logits_layer(
        self, candidates: Sequence[PrunableWeight]
    ) -> PrunableWeight | None:
        """The candidate kept whole as the logits layer (None if pruned too)."""
        if self.prune_logits:
            return None
        dense = [c for c in candidates if c.kind == "dense"]
        return max(dense, key=lambda c: c.index) if dense else None

    def unpruned_layers(self, model) -> list[str]:
        """Layers with trainable weights that this policy leaves whole.

        Returns:
            ``"name (Class)"`` per layer, the logits layer marked as such; the
            line a run prints at start ("not pruned: ...").
        """
        selected = {t.layer for t in self.select(model) if t.kind != "bias"}
        result = []
        for layer in _flatten_layers(model):
            if not layer.trainable_weights or layer.name in selected:
                continue
            kind = type(layer).__name__
            if _prunable_kernel(layer) is not None and not self.prune_logits:
                kind += ", logits"
            result.append(f"{layer.name} ({kind})")
        return result

    def channel_note(self, model, method: str) -> str | None:
        """The line a structured run prints about coupled channels, if any.

        Names the channel groups (kernels whose channels are summed, ranked
        and dropped as one, unless the method prunes each kernel alone) and
        the kernels whose channels stay whole because they are summed with
        channels no mask can drop. ``None`` for unstructured methods and for
        models with neither.
        """
        entry = get_method(method)
        if not entry.structured:
            return None
        targets = [t for t in self.select(model) if t.kind != "bias"]
        layers = {layer.name: layer for layer in _flatten_layers(model)}
        # The sources select() grouped: kernels with outputs on their last axis.
        sources = [t.layer for t in targets if _prunable_kernel(layers[t.layer])[2]]
        graph = model_channel_groups(model, sources)
        if graph is None:
            return None
        parts = []
        groups = [" + ".join(g) for g in graph.groups if len(g) > 1]
        if groups and entry.grouped:
            parts.append(
                "channels pruned as one group (summed by the model): "
                + "; ".join(groups)
            )
        fixed = [
            t.layer for t in targets if not t.structured and t.layer in graph.fixed
        ]
        if fixed:
            parts.append(
                f"channels left whole by {method} pruning (summed with channels "
                f"no mask can drop, such as the model's input): {', '.join(fixed)}"
            )
        return "; ".join(parts) or None


def model_channel_groups(
    model, sources: Sequence[str]
) -> channel_graph.ChannelGroups | None:
    """The channel groups of a Keras model whose sliceable kernels are ``sources``.

    Returns:
        `tffprune.pruning.channel_graph.ChannelGroups`, or ``None`` for a
        subclassed model (no graph to read: every kernel owns its channels).
    """
    found = model_config(model)
    if found is None:
        return None
    config, class_name = found
    nodes = channel_graph.nodes_from_config(config, sources, class_name)
    return channel_graph.channel_groups(nodes)


def model_config(model) -> tuple[dict, str] | None:
    """A Keras model's graph config and its kind, as `channel_graph` reads them.

    Returns:
        ``(config, "Sequential" | "Functional")``, or ``None`` for a
        subclassed model (no graph in its config).
    """
    try:
        config = model.get_config()
    except NotImplementedError:
        return None
    if not isinstance(config, dict) or "layers" not in config:
        return None
    return config, "Sequential" if type(
        model
    ).__name__ == "Sequential" else "Functional"


def _with_channel_groups(
    model, candidates: list[PrunableWeight], positions: dict[int, int]
) -> list[PrunableWeight]:
    """The candidates with their channel groups and followers filled in."""
    sliceable = [c for c in candidates if c.structured]
    graph = model_channel_groups(model, [c.layer for c in sliceable])
    if graph is None:
        return candidates
    by_layer = {c.layer: c for c in sliceable}
    layers = {layer.name: layer for layer in _flatten_layers(model)}
    followers: dict[str, list[int]] = {}
    for name, leader in graph.followers.items():
        for weight in _channel_weights(layers.get(name)):
            if id(weight) in positions:
                followers.setdefault(leader, []).append(positions[id(weight)])
    result = []
    for candidate in candidates:
        if candidate.layer in graph.fixed:
            candidate = dataclasses.replace(candidate, structured=False)
        elif candidate.structured:
            group = graph.group_of(candidate.layer)
            candidate = dataclasses.replace(
                candidate,
                group=by_layer[group[0]].index if len(group) > 1 else None,
                followers=tuple(sorted(followers.get(candidate.layer, ()))),
            )
        result.append(candidate)
    return result


def _channel_weights(layer) -> list:
    """A follower layer's per-channel trainable weights (BatchNorm gamma, beta)."""
    if layer is None or not layer.trainable:
        return []
    return [
        weight
        for weight in (getattr(layer, "gamma", None), getattr(layer, "beta", None))
        if weight is not None
    ]


def _prunable_kernel(layer):
    """``(kernel, kind, structured)`` of a layer this policy prunes, else None."""
    import tensorflow as tf

    layers = tf.keras.layers
    if isinstance(layer, layers.Dense):
        return layer.kernel, "dense", True
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        return layer.pointwise_kernel, "conv", True
    if isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        return None
    transposed = (
        layers.Conv1DTranspose,
        layers.Conv2DTranspose,
        layers.Conv3DTranspose,
    )
    if isinstance(layer, transposed):
        return layer.kernel, "conv", False
    if isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        return layer.kernel, "conv", True
    return None


def _flatten_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _flatten_layers(layer)
        else:
            yield layer


def _tfmot_wrapped_layers(model) -> list:
    return [
        layer
        for layer in _flatten_layers(model)
        if type(layer).__name__ == "PruneLowMagnitude"
    ]


def check_not_tfmot_wrapped(model) -> None:
    """Refuses a model whose layers carry tfmot's pruning wrapper.

    tfmot's ``PruneLowMagnitude`` keeps its mask in non-trainable variables
    that only a Keras callback updates, which a federated round never runs;
    training such a model would silently leave it dense.

    Raises:
        ValueError: Naming the wrapped layers and the two ways out.
    """
    wrapped = [layer.name for layer in _tfmot_wrapped_layers(model)]
    if wrapped:
        raise ValueError(
            f"layers {', '.join(wrapped)} are wrapped with tfmot's "
            "prune_low_magnitude; strip them first "
            "(tfmot.sparsity.keras.strip_pruning(model)) and let tffprune prune; "
            "tffprune.pruning.masks_from_tfmot(model) gives their masks"
        )


def check_method(method: str) -> str:
    """Validates a pruning method name.

    Raises:
        ValueError: If the method is not one of `METHODS`.
    """
    get_method(method)
    return method


def build_masks(
    weights: Sequence[np.ndarray],
    targets: Sequence[PrunableWeight],
    method: str,
    sparsity: float,
    masks: Sequence[np.ndarray] | None = None,
    structured_share: float = 0.5,
    norm: float = 2,
) -> list[np.ndarray]:
    """Builds a mask for every weight of a model.

    Args:
        weights: All trainable weights (NumPy arrays), in model order.
        targets: The prunable kernels (from `PruningPolicy.select`).
        method: One of `METHODS`.
        sparsity: Target sparsity of each prunable kernel (``global-weight``:
            of all of them together), in [0, 1).
        masks: Current masks (same structure); pruned entries stay pruned.
        structured_share: For ``hybrid``: share of the sparsity reached by
            dropping whole units/filters.
        norm: Ln norm for ``channel`` and ``hybrid``.

    Returns:
        One boolean mask per weight; weights that are not pruned get all-True
        masks (or their current mask).

    Raises:
        ValueError: On an unknown method, invalid sparsity, or a mask list that
            does not match the weights.
    """
    entry = get_method(method)
    sparsity = mask_math.check_sparsity(sparsity)
    if masks is not None and len(masks) != len(weights):
        raise ValueError(f"got {len(masks)} masks for {len(weights)} weights")
    result = [
        np.ones(np.shape(w), bool) if masks is None else np.asarray(masks[i], bool)
        for i, w in enumerate(weights)
    ]
    if entry.scope == "none" or not targets:
        return result
    if entry.scope == "global":
        kernels = global_weight_masks_for(weights, targets, sparsity, result)
        for target, kernel_mask in zip(targets, kernels, strict=True):
            result[target.index] = kernel_mask
        return result
    for unit in channel_units(targets, entry.grouped):
        news = entry.numpy_mask(
            [np.asarray(weights[t.index]) for t in unit],
            sparsity,
            [result[t.index] for t in unit],
            unit[0].structured,
            structured_share,
            norm,
        )
        for target, new in zip(unit, news, strict=True):
            result[target.index] = new
        if entry.structured and entry.followers and unit[0].structured:
            for index, keep in channel_followers(unit, news, mask_math.bias_mask_for):
                result[index] = result[index] & keep
    return result


def channel_units(
    targets: Sequence[PrunableWeight], grouped: bool = True
) -> list[tuple[PrunableWeight, ...]]:
    """The targets as a method prunes them: each channel group as one unit.

    A group's unit sits where its first kernel is in ``targets`` (weight
    order), so a bias target, after its kernel, sees the channels its group
    dropped. Every other target is a unit of one; without ``grouped`` (a
    method that prunes each kernel on its own), every target.
    """
    units: list[tuple[PrunableWeight, ...]] = []
    seen: set[int] = set()
    for target in targets:
        if target.group is None or target.kind == "bias" or not grouped:
            units.append((target,))
        elif target.group not in seen:
            seen.add(target.group)
            units.append(tuple(t for t in targets if t.group == target.group))
    return units


def channel_followers(unit, masks, keep_of) -> list[tuple[int, object]]:
    """``(position, keep)`` for each bias and follower of a pruned unit.

    A kernel's bias keeps the channels its own mask keeps; a follower keeps
    the channels any kernel of the unit keeps (`ChannelGroups`). ``keep_of``
    is `tffprune.pruning.masks.bias_mask_for` or its TensorFlow twin; the
    union is ``|`` on either.
    """
    keeps = [keep_of(mask) for mask in masks]
    result = [
        (target.bias_index, keep)
        for target, keep in zip(unit, keeps, strict=True)
        if target.bias_index is not None
    ]
    union = keeps[0]
    for keep in keeps[1:]:
        union = union | keep
    result += [(index, union) for target in unit for index in target.followers]
    return result


def global_weight_masks_for(
    weights: Sequence[np.ndarray],
    targets: Sequence[PrunableWeight],
    sparsity: float,
    masks: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """Global magnitude masks for the target kernels only."""
    return mask_math.global_weight_masks(
        [weights[t.index] for t in targets],
        sparsity,
        [masks[t.index] for t in targets],
    )


def apply_masks(
    weights: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Zeroes the pruned entries of every weight."""
    if len(masks) != len(weights):
        raise ValueError(f"got {len(masks)} masks for {len(weights)} weights")
    return [mask_math.apply_mask(w, m) for w, m in zip(weights, masks, strict=True)]


@dataclasses.dataclass(frozen=True)
class LayerSparsity:
    """Sparsity of one weight tensor."""

    name: str
    size: int
    nonzero: int
    prunable: bool

    @property
    def sparsity(self) -> float:
        """Fraction of zero entries."""
        return 0.0 if self.size == 0 else 1.0 - self.nonzero / self.size


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-tensor and overall sparsity of a model's weights."""

    layers: tuple[LayerSparsity, ...]

    @property
    def prunable_sparsity(self) -> float:
        """Fraction of zeros over the prunable kernels only."""
        return _fraction_zero([layer for layer in self.layers if layer.prunable])

    @property
    def overall_sparsity(self) -> float:
        """Fraction of zeros over all trainable parameters."""
        return _fraction_zero(self.layers)

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(layer.size for layer in self.layers)

    @property
    def num_nonzero(self) -> int:
        """Number of nonzero trainable parameters."""
        return sum(layer.nonzero for layer in self.layers)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "prunable_sparsity": self.prunable_sparsity,
            "overall_sparsity": self.overall_sparsity,
            "num_parameters": self.num_parameters,
            "num_nonzero": self.num_nonzero,
            "layers": [
                {**dataclasses.asdict(layer), "sparsity": layer.sparsity}
                for layer in self.layers
            ],
        }


def _fraction_zero(layers: Sequence[LayerSparsity]) -> float:
    size = sum(layer.size for layer in layers)
    return 0.0 if size == 0 else 1.0 - sum(layer.nonzero for layer in layers) / size


def sparsity_report(
    weights: Sequence[np.ndarray],
    targets: Sequence[PrunableWeight],
    names: Sequence[str] | None = None,
) -> SparsityReport:
    """Measures zeros in every weight tensor.

    Args:
        weights: All trainable weights (or masks: ``False`` counts as zero).
        targets: The prunable kernels.
        names: Optional tensor names (default ``weight_<i>``).

    Returns:
        The report.
    """
    counts = [(int(np.size(w)), int(np.count_nonzero(w))) for w in weights]
    return sparsity_report_of(counts, targets, names)


def sparsity_report_of(
    counts: Sequence[tuple[int, int]],
    targets: Sequence[PrunableWeight],
    names: Sequence[str] | None = None,
) -> SparsityReport:
    """`sparsity_report` from each weight's ``(entries, nonzero)`` counts."""
    prunable = {t.index for t in targets}
    return SparsityReport(
        tuple(
            LayerSparsity(
                name=names[index] if names is not None else f"weight_{index}",
                size=size,
                nonzero=nonzero,
                prunable=index in prunable,
            )
            for index, (size, nonzero) in enumerate(counts)
        )
    )


def model_sparsity(model, policy: PruningPolicy | None = None) -> SparsityReport:
    """Sparsity report of a Keras model's trainable weights.

    For a model wrapped with tfmot's ``prune_low_magnitude``, the weights are
    taken times their tfmot masks and the prunable kernels are the ones tfmot
    prunes (``policy`` is not used).
    """
    if _tfmot_wrapped_layers(model):
        from tffprune.pruning.tfmot_interop import masks_from_tfmot

        masks = masks_from_tfmot(model)
        variables = model.trainable_weights
        wrapped = {
            id(weight): layer.name
            for layer in _tfmot_wrapped_layers(model)
            for weight, _, _ in layer.pruning_vars
        }
        targets = [
            PrunableWeight(index, wrapped[id(v)], "tfmot", None)
            for index, v in enumerate(variables)
            if id(v) in wrapped
        ]
        return sparsity_report(
            [v.numpy() * m for v, m in zip(variables, masks, strict=True)],
            targets,
            [v.name for v in variables],
        )
    policy = policy or PruningPolicy()
    return sparsity_report(
        [w.numpy() for w in model.trainable_weights],
        policy.select(model),
        [w.name for w in model.trainable_weights],
    )


def prune_model(
    model,
    method: str,
    sparsity: float,
    policy: PruningPolicy | None = None,
    **options: float,
) -> list[np.ndarray]:
    """Prunes a Keras model in place and returns the masks it applied.

    Args:
        model: A built Keras model.
        method: One of `METHODS`.
        sparsity: Target sparsity.
        policy: Which weights are prunable (default: `PruningPolicy()`).
        **options: ``structured_share`` and ``norm`` for `build_masks`.

    Returns:
        The masks, one per trainable weight.
    """
    policy = policy or PruningPolicy()
    weights = [w.numpy() for w in model.trainable_weights]
    masks = build_masks(weights, policy.select(model), method, sparsity, **options)
    for variable, value in zip(
        model.trainable_weights, apply_masks(weights, masks), strict=True
    ):
        variable.assign(value)
    return masks
