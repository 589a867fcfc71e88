"""Channel groups read from a model's graph (tffprune.pruning.channel_graph)."""

import pytest

from tffprune.pruning.channel_graph import (
    JOIN,
    OTHER,
    SOURCE,
    THROUGH,
    Node,
    channel_groups,
    nodes_from_config,
)


def _residual_block():
    # input -> a -> bn_a -> relu -> b -> bn_b --+--> add -> relu_out
    # input -> shortcut -> bn_s ---------------/
    return [
        Node("input", OTHER),
        Node("a", SOURCE, ("input",)),
        Node("bn_a", THROUGH, ("a",), follows=True),
        Node("relu", THROUGH, ("bn_a",)),
        Node("b", SOURCE, ("relu",)),
        Node("bn_b", THROUGH, ("b",), follows=True),
        Node("shortcut", SOURCE, ("input",)),
        Node("bn_s", THROUGH, ("shortcut",), follows=True),
        Node("add", JOIN, ("bn_b", "bn_s")),
        Node("relu_out", THROUGH, ("add",)),
        Node("bn_out", THROUGH, ("relu_out",), follows=True),
    ]


def test_a_residual_sum_makes_its_branches_one_group():
    groups = channel_groups(_residual_block())

    assert groups.groups == (("a",), ("b", "shortcut"))
    assert groups.fixed == ()
    # Each BatchNorm follows the group its input's channels are in, named by
    # the group's first source.
    assert dict(groups.followers) == {
        "bn_a": "a",
        "bn_b": "b",
        "bn_s": "b",
        "bn_out": "b",
    }
    # What each layer's output carries: the input is no group's channels.
    assert dict(groups.origins) == {
        "a": "a",
        "bn_a": "a",
        "relu": "a",
        **dict.fromkeys(["b", "bn_b", "shortcut", "bn_s", "add", "relu_out"], "b"),
        "bn_out": "b",
    }


def test_a_sum_with_the_input_fixes_the_group():
    # y = x + conv(x): channel c of the input is in the sum whatever conv does.
    nodes = [
        Node("input", OTHER),
        Node("conv", SOURCE, ("input",)),
        Node("bn", THROUGH, ("conv",), follows=True),
        Node("add", JOIN, ("input", "bn")),
        Node("head", SOURCE, ("add",)),
    ]
    groups = channel_groups(nodes)

    assert groups.fixed == ("conv",)
    assert groups.groups == (("head",),)
    assert dict(groups.followers) == {}


def test_groups_chain_through_consecutive_sums():
    # Two identity blocks after a stem: stem, b1 and b2 all add into one sum.
    nodes = [
        Node("input", OTHER),
        Node("stem", SOURCE, ("input",)),
        Node("b1", SOURCE, ("stem",)),
        Node("add1", JOIN, ("stem", "b1")),
        Node("b2", SOURCE, ("add1",)),
        Node("add2", JOIN, ("add1", "b2")),
        Node("flatten", OTHER, ("add2",)),
        Node("dense", SOURCE, ("flatten",)),
    ]
    assert channel_groups(nodes).groups == (("stem", "b1", "b2"), ("dense",))


def test_a_cycle_is_refused():
    with pytest.raises(ValueError, match="cycle"):
        channel_groups([Node("a", THROUGH, ("b",)), Node("b", THROUGH, ("a",))])


def test_config_of_a_functional_model_with_an_operator_sum_and_a_nested_model():
    # The get_config() Keras 2.14 writes for:
    #   inner = Model(i, conv_c(bn(conv_a(i))) + bn(conv_a(i)))
    #   outer: add([inner(j), conv_g(j)]) -> gap -> logits
    inner = {
        "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": []},
            {"class_name": "Conv2D", "name": "a",
             "inbound_nodes": [[["input_1", 0, 0, {}]]]},
            {"class_name": "BatchNormalization", "name": "bn",
             "inbound_nodes": [[["a", 0, 0, {}]]]},
            {"class_name": "Conv2D", "name": "c",
             "inbound_nodes": [[["bn", 0, 0, {}]]]},
            {"class_name": "TFOpLambda", "name": "tf.__operators__.add",
             "config": {"function": "__operators__.add"},
             "inbound_nodes": [["c", 0, 0, {"y": ["bn", 0, 0], "name": None}]]},
        ],
        "input_layers": [["input_1", 0, 0]],
        "output_layers": [["tf.__operators__.add", 0, 0]],
    }  # fmt: skip
    outer = {
        "layers": [
            {"class_name": "InputLayer", "name": "input_2", "inbound_nodes": []},
            {"class_name": "Functional", "name": "inner", "config": inner,
             "inbound_nodes": [[["input_2", 0, 0, {}]]]},
            {"class_name": "Conv2D", "name": "g",
             "inbound_nodes": [[["input_2", 0, 0, {}]]]},
            {"class_name": "Add", "name": "add",
             "inbound_nodes": [[["inner", 1, 0, {}], ["g", 0, 0, {}]]]},
            {"class_name": "GlobalAveragePooling2D", "name": "gap",
             "inbound_nodes": [[["add", 0, 0, {}]]]},
            {"class_name": "Dense", "name": "logits",
             "inbound_nodes": [[["gap", 0, 0, {}]]]},
        ],
        "input_layers": [["input_2", 0, 0]],
        "output_layers": [["logits", 0, 0]],
    }  # fmt: skip
    nodes = nodes_from_config(outer, sources=["a", "c", "g"])

    assert [(n.name, n.role, n.inputs) for n in nodes] == [
        ("input_2", OTHER, ()),
        ("a", SOURCE, ("input_2",)),
        ("bn", THROUGH, ("a",)),
        ("c", SOURCE, ("bn",)),
        ("tf.__operators__.add", JOIN, ("c", "bn")),
        ("g", SOURCE, ("input_2",)),
        ("add", JOIN, ("tf.__operators__.add", "g")),
        ("gap", THROUGH, ("add",)),
        ("logits", OTHER, ("gap",)),  # not a source: left whole
    ]
    groups = channel_groups(nodes)
    assert groups.groups == (("a", "c", "g"),)
    assert dict(groups.followers) == {"bn": "a"}


def test_config_of_a_sequential_model_is_a_chain():
    # A Sequential's get_config() names its layers inside their configs.
    config = {
        "layers": [
            {"class_name": "InputLayer", "config": {"name": "in"}},
            {"class_name": "Dense", "config": {"name": "d1"}},
            {"class_name": "Activation",
             "config": {"name": "soft", "activation": "softmax"}},
            {"class_name": "Dense", "config": {"name": "d2"}},
        ]
    }  # fmt: skip
    nodes = nodes_from_config(config, ["d1", "d2"], class_name="Sequential")

    assert [(n.name, n.role, n.inputs) for n in nodes] == [
        ("in", OTHER, ()),
        ("d1", SOURCE, ("in",)),
        ("soft", OTHER, ("d1",)),  # softmax mixes the channels
        ("d2", SOURCE, ("soft",)),
    ]
