"""Which output channels of a model are one: coupled channels and their followers.

A structured method drops whole output channels (Dense units, Conv filters).
In a plain chain every prunable kernel owns its channels. A residual block
does not: ``Add([branch, shortcut])`` sums channel ``c`` of both branches, so
channel ``c`` is gone only when every kernel feeding the sum drops it. Pruned
one kernel at a time, the two branches drop different channels
(``[1, 2, 4, 8, ...]`` and ``[1, 2, 5, 8, ...]``), the sum keeps all of them
alive and nothing can be removed. Here such kernels form one **channel
group**, ranked and pruned together; the layers whose per-channel weights sit
on those channels (BatchNormalization's ``gamma`` and ``beta``) are its
**followers** and lose the pruned channels' entries too, so a pruned channel
is exactly zero after them.

The graph is read from a Keras model's config (`nodes_from_config`), so the
rules are plain data and testable without TensorFlow. A node's role:

* ``source``: a prunable kernel's layer; its outputs are its own channels.
* ``through``: output channel ``c`` comes from input channel ``c`` alone
  (BatchNormalization, activations, dropout, pooling, padding); its output
  carries its input's channels.
* ``join``: element-wise over several inputs (``Add``, ``Subtract``,
  ``Average``, ``Maximum``, ``Minimum``, and ``x + y`` written as an
  operator); the channels of all its inputs become one group.
* ``other``: anything else (inputs, Flatten, Concatenate, a layer left whole);
  its outputs are channels no mask can drop.

A group that meets ``other`` channels at a join (``Add([inputs, conv(x)])``
with the model's input, or with a kernel left whole) is **fixed**: pruning a
channel of its kernels could never remove it from the sum, so structured
methods leave those kernels' channels whole (weight pruning still applies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

SOURCE = "source"
THROUGH = "through"
JOIN = "join"
OTHER = "other"

# Per-channel layers: channel c out depends on channel c in only.
_THROUGH_CLASSES = frozenset(
    {
        "BatchNormalization",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "ThresholdedReLU",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
    }
)
_JOIN_CLASSES = frozenset({"Add", "Subtract", "Average", "Maximum", "Minimum"})
# ``x + y`` and friends in a functional model are TFOpLambda layers.
_JOIN_FUNCTIONS = frozenset(
    {
        "__operators__.add",
        "math.add",
        "math.add_n",
        "math.subtract",
        "math.maximum",
        "math.minimum",
    }
)
# Layers with per-channel weights on their last axis that follow a channel.
_FOLLOWER_CLASSES = frozenset({"BatchNormalization"})
_MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})


@dataclasses.dataclass(frozen=True)
class Node:
    """One layer of a model's graph, as channel grouping sees it.

    Attributes:
        name: The layer's name.
        role: ``source``, ``through``, ``join`` or ``other`` (module docstring).
        inputs: The names of the layers whose outputs it takes.
        follows: Whether its per-channel weights follow its input's channels
            (BatchNormalization).
    """

    name: str
    role: str
    inputs: tuple[str, ...] = ()
    follows: bool = False


@dataclasses.dataclass(frozen=True)
class ChannelGroups:
    """The coupled channels of a model.

    Attributes:
        groups: Per group, the names of the source layers whose output
            channels are one, in graph order; a source alone is a group of
            one. Fixed groups are not here.
        fixed: Source layers whose channels meet channels no mask can drop
            at a join; structured methods leave their channels whole.
        followers: Layer name -> the first source of the group whose channels
            its per-channel weights follow.
        origins: Layer name -> the first source of the (not fixed) group
            whose channels its output carries; layers whose outputs are no
            group's channels are not in it.
    """

    groups: tuple[tuple[str, ...], ...]
    fixed: tuple[str, ...]
    followers: Mapping[str, str]
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def group_of(self, source: str) -> tuple[str, ...]:
        """The group holding ``source`` (empty if it is fixed or unknown)."""
        for group in self.groups:
            if source in group:
                return group
        return ()


class _Sets:
    """Union-find over node names, with a "fixed" flag per set."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.fixed: dict[str, bool] = {}

    def add(self, name: str, fixed: bool = False) -> None:
        self.parent.setdefault(name, name)
        self.fixed.setdefault(name, fixed)

    def find(self, name: str) -> str:
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, first: str, second: str) -> str:
        first, second = self.find(first), self.find(second)
        if first != second:
            self.parent[second] = first
            self.fixed[first] = self.fixed[first] or self.fixed[second]
        return first


def channel_groups(nodes: Sequence[Node]) -> ChannelGroups:
    """Groups the sources whose output channels are summed together.

    Args:
        nodes: The model's layers (`nodes_from_config`), any order; an input
            naming no node counts as ``other`` (a model input).

    Returns:
        The groups, fixed sources and followers (`ChannelGroups`).

    Raises:
        ValueError: If a layer's inputs form a cycle.
    """
    by_name = {node.name: node for node in nodes}
    sets = _Sets()
    origin: dict[str, str] = {}  # node -> the set its output channels are in
    visiting: set[str] = set()

    def fixed_origin(name: str) -> str:
        key = f"\0other:{name}"
        sets.add(key, fixed=True)
        return key

    def resolve(name: str) -> str:
        if name in origin:
            return origin[name]
        node = by_name.get(name)
        if node is None:
            origin[name] = fixed_origin(name)
            return origin[name]
        if name in visiting:
            raise ValueError(f"layer {name!r} takes its own output (a cycle)")
        visiting.add(name)
        inputs = [resolve(parent) for parent in node.inputs]
        visiting.discard(name)
        if node.role == SOURCE:
            sets.add(name)
            result = name
        elif node.role in (THROUGH, JOIN) and inputs:
            result = inputs[0]
            for other in inputs[1:]:
                result = sets.union(result, other)
        else:
            result = fixed_origin(name)
        origin[name] = result
        return result

    for node in nodes:
        resolve(node.name)
    order = [node.name for node in nodes if node.role == SOURCE]
    members: dict[str, list[str]] = {}
    for name in order:
        members.setdefault(sets.find(name), []).append(name)
    groups = tuple(
        tuple(names) for root, names in members.items() if not sets.fixed[root]
    )
    fixed = tuple(name for name in order if sets.fixed[sets.find(name)])
    leaders = {sets.find(group[0]): group[0] for group in groups}
    origins = {
        node.name: leaders[sets.find(origin[node.name])]
        for node in nodes
        if sets.find(origin[node.name]) in leaders
    }
    followers = {
        node.name: origins[node.name]
        for node in nodes
        if node.follows and node.name in origins
    }
    return ChannelGroups(groups, fixed, followers, origins)


def config_layer_name(layer: Mapping) -> str:
    """A layer's name in a model config (a Sequential's is in its config)."""
    return layer.get("name") or layer.get("config", {})["name"]


def _role(layer: Mapping, sources: frozenset[str]) -> str:
    name, class_name = config_layer_name(layer), layer["class_name"]
    config = layer.get("config", {})
    if name in sources:
        return SOURCE
    if class_name in _JOIN_CLASSES:
        return JOIN
    if class_name == "TFOpLambda" and config.get("function") in _JOIN_FUNCTIONS:
        return JOIN
    if class_name == "Activation" and config.get("activation") == "softmax":
        return OTHER  # normalizes over the channels: mixes them
    if class_name in _THROUGH_CLASSES:
        return THROUGH
    return OTHER


def _inbound_names(node) -> list[str]:
    """Layer names in one inbound node of a Keras config (any nesting)."""
    if (
        isinstance(node, list)
        and len(node) >= 3
        and isinstance(node[0], str)
        and isinstance(node[1], int)
    ):
        names = [node[0]]
        for value in node[3:]:
            names += _inbound_names(value)
        return names
    if isinstance(node, dict):
        return [name for value in node.values() for name in _inbound_names(value)]
    if isinstance(node, list):
        return [name for item in node for name in _inbound_names(item)]
    return []


def nodes_from_config(
    config: Mapping, sources: Sequence[str], class_name: str = "Functional"
) -> list[Node]:
    """The channel graph of a Keras model from its ``get_config()``.

    Nested models (a functional or Sequential model used as a layer) are
    flattened: their inputs take the outer layer's inputs and the outer
    references to them name their output layer.

    Args:
        config: ``model.get_config()`` of a functional or Sequential model.
        sources: Names of the layers with a prunable kernel whose outputs are
            its last axis (their channels can be dropped).
        class_name: ``Functional`` or ``Sequential`` (``type(model).__name__``
            of a Sequential model).

    Returns:
        The nodes, in the config's order.
    """
    nodes: list[Node] = []
    _flatten(config, class_name, frozenset(sources), (), nodes)
    return nodes


def _flatten(
    config: Mapping,
    class_name: str,
    sources: frozenset[str],
    outer_inputs: tuple[str, ...],
    nodes: list[Node],
) -> str | None:
    """Appends a model's layers to ``nodes``; returns its output layer's name."""
    layers = config.get("layers", [])
    alias: dict[str, str] = {}
    input_names = [entry[0] for entry in config.get("input_layers", [])]
    last: str | None = None
    for layer in layers:
        name = config_layer_name(layer)
        if class_name == "Sequential":
            inputs = (last,) if last is not None else outer_inputs
        else:
            inputs = tuple(
                alias.get(parent, parent)
                for inbound in layer.get("inbound_nodes", [])[:1]
                for parent in _inbound_names(inbound)
            )
        if layer["class_name"] == "InputLayer":
            if outer_inputs:  # a nested model's input is the outer input
                where = input_names.index(name) if name in input_names else 0
                alias[name] = outer_inputs[min(where, len(outer_inputs) - 1)]
                last = alias[name]
            else:
                nodes.append(Node(name, OTHER))
                last = name
            continue
        if layer["class_name"] in _MODEL_CLASSES:
            output = _flatten(
                layer.get("config", {}), layer["class_name"], sources, inputs, nodes
            )
            if output is not None:
                alias[name] = output
                last = output
            continue
        nodes.append(
            Node(
                name,
                _role(layer, sources),
                inputs,
                follows=layer["class_name"] in _FOLLOWER_CLASSES,
            )
        )
        last = name
    if class_name != "Sequential" and config.get("output_layers"):
        output = config["output_layers"][0][0]
        return alias.get(output, output)
    return last
