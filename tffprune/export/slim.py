"""A physically smaller model: pruned units and channels removed, outputs equal.

TFLite and TFLite Micro store every weight of a dense tensor, so a zeroed
unit or filter costs flash and time until it is cut out of the model.
`slim_model` finds the channels a structured run has zeroed and rebuilds the
Keras model without them:

* A channel of a channel group (`tffprune.pruning.channel_graph`: a kernel,
  or the kernels a residual ``Add`` sums) is **dead** when every kernel of the
  group has an all-zero slice and a zero bias for it, and every follower
  (BatchNormalization) has ``gamma`` and ``beta`` zero there: its value is
  then exactly 0 everywhere after those layers.
* The group's kernels lose those output slices (``filters`` / ``units``
  shrink), their biases and followers (BatchNorm ``gamma``, ``beta`` and
  moving statistics) the entries; each layer that reads the channels loses
  the matching inputs: the input axis of a Conv kernel, the rows of a Dense
  kernel, or after a ``Flatten`` every row of those channels at each
  position.
* A group is left as it is when a pruned channel might not stay 0 on its way
  (an activation with ``f(0) != 0`` such as a sigmoid, an operator sum with a
  constant), or when its channels reach a layer that cannot drop inputs here
  (Concatenate, Reshape, a depthwise convolution, a model output).

The slim model is checked against the masked one on the inputs given
(`check_outputs`): the largest output difference is reported, and a difference
above the tolerance is an error, not a silent change of the model.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import tensorflow as tf

from tffprune.pruning import channel_graph
from tffprune.pruning.policy import _flatten_layers, _prunable_kernel, model_config

# f(0) = 0: a dead channel stays 0 through these.
_ZERO_KEEPING_ACTIVATIONS = frozenset(
    {
        "linear",
        None,
        "relu",
        "relu6",
        "elu",
        "selu",
        "tanh",
        "swish",
        "silu",
        "gelu",
        "softsign",
        "leaky_relu",
        "mish",
    }
)
_TRANSPOSED = (
    tf.keras.layers.Conv1DTranspose,
    tf.keras.layers.Conv2DTranspose,
    tf.keras.layers.Conv3DTranspose,
)


def _plain_kernel(layer) -> bool:
    """A Dense or Conv layer with one (..., inputs, outputs) kernel and a bias.

    The layers `slim_model` cuts on both axes (not separable, depthwise or
    transposed convolutions).
    """
    layers = tf.keras.layers
    return isinstance(
        layer, layers.Dense | layers.Conv1D | layers.Conv2D | layers.Conv3D
    ) and not isinstance(layer, _TRANSPOSED)


@dataclasses.dataclass(frozen=True)
class SlimReport:
    """What `slim_model` removed.

    Attributes:
        channels: Per slimmed group (named by its kernels joined with ``+``),
            ``(kept, before)`` output channels.
        left_whole: Per group with dead channels it could not remove, why.
        parameters_before: Parameters of the masked model.
        parameters_after: Parameters of the slim model.
    """

    channels: dict[str, tuple[int, int]]
    left_whole: dict[str, str]
    parameters_before: int
    parameters_after: int

    def as_dict(self) -> dict:
        """The report as ``export.json`` holds it."""
        return {
            "slim_channels": {k: list(v) for k, v in self.channels.items()},
            "slim_left_whole": dict(self.left_whole),
            "slim_parameters_before": self.parameters_before,
            "slim_parameters_after": self.parameters_after,
        }


def _kernel_layers(model) -> dict:
    """Layers whose kernel has its outputs on the last axis, by name."""
    result = {}
    for layer in _flatten_layers(model):
        found = _prunable_kernel(layer)
        if found is not None and found[2]:
            result[layer.name] = layer
    return result


def _dead_channels(group, layers, followers) -> np.ndarray:
    """Boolean per channel: zero in every kernel, bias and follower."""
    dead = None
    for name in group:
        layer = layers[name]
        kernel = _prunable_kernel(layer)[0].numpy()
        here = ~kernel.reshape(-1, kernel.shape[-1]).any(axis=0)
        bias = getattr(layer, "bias", None)
        if bias is not None:
            here &= bias.numpy() == 0
        dead = here if dead is None else dead & here
    for layer in followers:
        for name in ("gamma", "beta"):
            weight = getattr(layer, name, None)
            if weight is not None:
                dead &= weight.numpy() == 0
    return dead


def _layer_config_activation(layer) -> object:
    activation = layer.get_config().get("activation")
    return activation if isinstance(activation, str | type(None)) else "custom"


def _blocker(group_nodes, nodes, layers_by_name, output_names) -> str | None:
    """Why a group's dead channels cannot be cut out (None: they can)."""
    names = {node.name for node in group_nodes}
    for node in group_nodes:
        layer = layers_by_name.get(node.name)
        if layer is None:
            return f"{node.name} is not a layer of the model"
        if node.role == channel_graph.SOURCE:
            if not _plain_kernel(layer):
                return f"{node.name} ({type(layer).__name__}) is not cut here"
            if _layer_config_activation(layer) not in _ZERO_KEEPING_ACTIVATIONS:
                return f"{node.name}'s activation does not keep 0 at 0"
        elif node.role == channel_graph.JOIN:
            if len(node.inputs) < 2:
                return f"{node.name} adds a constant to the channels"
        elif type(layer).__name__ == "Activation":
            if _layer_config_activation(layer) not in _ZERO_KEEPING_ACTIVATIONS:
                return f"{node.name}'s activation does not keep 0 at 0"
        elif type(layer).__name__ == "BatchNormalization" and not (
            layer.scale and layer.center
        ):
            return f"{node.name} has no gamma or beta to zero"
        if node.name in output_names:
            return f"its channels are an output of the model ({node.name})"
    for node in nodes:
        if node.name in names or not set(node.inputs) & names:
            continue
        layer = layers_by_name.get(node.name)
        if _plain_kernel(layer):
            continue
        if type(layer).__name__ == "Flatten":
            readers = [n for n in nodes if node.name in n.inputs]
            if readers and all(
                isinstance(layers_by_name.get(n.name), tf.keras.layers.Dense)
                for n in readers
            ):
                continue
            return f"its channels are flattened into {node.name}, read by a non-Dense"
        kind = type(layer).__name__ if layer is not None else "an input"
        return f"its channels reach {node.name} ({kind}), which cannot drop inputs"
    return None


def slim_model(model: tf.keras.Model) -> tuple[tf.keras.Model, SlimReport]:
    """Rebuilds a masked Keras model without its dead units and channels.

    Args:
        model: A functional or Sequential Keras model whose pruned channels
            are zero (a structured run's saved model, or one client's).

    Returns:
        The slim model (new layers of the same names, fewer units and filters)
        and what was removed. A model with no dead channel comes back as a
        copy with the same weights.

    Raises:
        ValueError: For a subclassed model (no graph to rebuild).
    """
    found = model_config(model)
    if found is None:
        raise ValueError(
            "--slim rebuilds a functional or Sequential Keras model; this one is "
            "subclassed: export it without --slim"
        )
    config, class_name = found
    kernel_layers = _kernel_layers(model)
    nodes = channel_graph.nodes_from_config(config, list(kernel_layers), class_name)
    graph = channel_graph.channel_groups(nodes)
    layers_by_name = {layer.name: layer for layer in _flatten_layers(model)}
    output_names = set(_output_layer_names(nodes, config, class_name))
    keep: dict[str, np.ndarray] = {}  # group leader -> kept channels
    channels, left_whole = {}, {}
    for group in graph.groups:
        leader = group[0]
        followers = [
            layers_by_name[name]
            for name, lead in graph.followers.items()
            if lead == leader and name in layers_by_name
        ]
        dead = _dead_channels(group, kernel_layers, followers)
        if not dead.any():
            continue
        label = " + ".join(group)
        group_nodes = [n for n in nodes if graph.origins.get(n.name) == leader]
        reason = _blocker(group_nodes, nodes, layers_by_name, output_names)
        if reason is not None:
            left_whole[label] = f"{int(dead.sum())} dead channels kept: {reason}"
            continue
        kept = ~dead
        if not kept.any():  # a layer needs one channel: keep a zero one
            kept[0] = True
        keep[leader] = kept
        channels[label] = (int(kept.sum()), int(kept.size))
    slim_config = copy.deepcopy(config)
    sizes = {
        name: int(keep[leader].sum())
        for group in graph.groups
        if (leader := group[0]) in keep
        for name in group
    }
    _resize(slim_config, sizes)
    cls = tf.keras.Sequential if class_name == "Sequential" else tf.keras.Model
    slim = cls.from_config(slim_config)
    slim_layers = {layer.name: layer for layer in _flatten_layers(slim)}
    for name, layer in layers_by_name.items():
        if not layer.weights:
            continue
        values = [
            _slice(layer, index, value, nodes, graph, keep, layers_by_name)
            for index, value in enumerate(layer.get_weights())
        ]
        slim_layers[name].set_weights(values)
    report = SlimReport(
        channels, left_whole, int(model.count_params()), int(slim.count_params())
    )
    return slim, report


def _output_layer_names(nodes, config, class_name) -> list[str]:
    if class_name == "Sequential":
        return [nodes[-1].name] if nodes else []
    return [entry[0] for entry in config.get("output_layers", [])]


def _resize(config: dict, sizes: dict[str, int]) -> None:
    """Sets ``filters`` / ``units`` of the named layers, nested models too."""
    for layer in config.get("layers", []):
        inner = layer.get("config", {})
        name = channel_graph.config_layer_name(layer)
        if name in sizes:
            inner["filters" if "filters" in inner else "units"] = sizes[name]
        if "layers" in inner:
            _resize(inner, sizes)


def _input_keep(name, nodes, graph, keep, layers_by_name) -> np.ndarray | None:
    """The kept input features of layer ``name`` (None: all of them)."""
    node = next(n for n in nodes if n.name == name)
    if not node.inputs:
        return None
    parent = node.inputs[0]
    leader = graph.origins.get(parent)
    if leader in keep:
        return keep[leader]
    parent_layer = layers_by_name.get(parent)
    if type(parent_layer).__name__ == "Flatten":
        flat = next(n for n in nodes if n.name == parent)
        leader = graph.origins.get(flat.inputs[0]) if flat.inputs else None
        if leader in keep:
            positions = int(np.prod(parent_layer.input_shape[1:-1]))
            return np.tile(keep[leader], positions)
    return None


def _slice(layer, index, value, nodes, graph, keep, layers_by_name) -> np.ndarray:
    """One weight of ``layer`` with the removed channels cut out.

    A BatchNormalization (a follower) loses the entries of its group's
    removed channels in all four vectors; a plain kernel layer its removed
    inputs (kernel rows) and, when its own group is cut, its removed outputs
    (kernel slices and bias entries). Other layers keep their weights.
    """
    leader = graph.origins.get(layer.name)
    output_keep = keep.get(leader) if leader is not None else None
    if type(layer).__name__ == "BatchNormalization":
        return value[output_keep] if output_keep is not None else value
    if not _plain_kernel(layer):
        return value
    if index == 0:  # the kernel: (..., inputs, outputs)
        input_keep = _input_keep(layer.name, nodes, graph, keep, layers_by_name)
        if input_keep is not None:
            value = value[..., input_keep, :]
        return value[..., output_keep] if output_keep is not None else value
    return value[output_keep] if output_keep is not None else value  # the bias


def check_outputs(
    masked: tf.keras.Model,
    slim: tf.keras.Model,
    inputs: np.ndarray,
    tolerance: float = 1e-4,
) -> float:
    """The largest output difference of the two models on ``inputs``.

    Args:
        masked: The model before slimming.
        slim: `slim_model`'s model.
        inputs: Examples of the model's input.
        tolerance: Largest difference allowed, relative to the largest
            output magnitude (float32 sums in another order differ by ~1e-6).

    Returns:
        The largest absolute difference.

    Raises:
        ValueError: If the difference exceeds the tolerance.
    """
    first = masked.predict(inputs, batch_size=256, verbose=0)
    second = slim.predict(inputs, batch_size=256, verbose=0)
    difference = float(np.max(np.abs(first - second))) if first.size else 0.0
    scale = max(1.0, float(np.max(np.abs(first)))) if first.size else 1.0
    if difference > tolerance * scale:
        raise ValueError(
            f"--slim: the slim model's outputs differ from the masked model's by "
            f"{difference:.3g} (over {tolerance:g} x {scale:.3g}); export without "
            "--slim"
        )
    return difference
