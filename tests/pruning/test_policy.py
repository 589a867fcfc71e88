import numpy as np
import pytest
import tensorflow as tf

from tffprune.models import build_model
from tffprune.pruning import (
    PruningPolicy,
    apply_masks,
    build_masks,
    model_sparsity,
    prune_model,
)


@pytest.fixture(scope="module")
def lenet():
    return build_model("lenet5", (28, 28, 1), 10, seed=0)


def test_policy_selects_kernels_except_logits(lenet):
    targets = PruningPolicy().select(lenet)

    assert [t.layer for t in targets] == ["conv_1", "conv_2", "dense_1", "dense_2"]
    assert [t.kind for t in targets] == ["conv", "conv", "dense", "dense"]
    for target in targets:
        assert (
            lenet.trainable_weights[target.index]
            is lenet.get_layer(target.layer).kernel
        )
        assert (
            lenet.trainable_weights[target.bias_index]
            is lenet.get_layer(target.layer).bias
        )


def test_policy_can_include_logits(lenet):
    assert PruningPolicy(prune_logits=True).select(lenet)[-1].layer == "logits"


def test_policy_can_include_biases(lenet):
    policy = PruningPolicy(prune_logits=True, prune_biases=True)
    targets = policy.select(lenet)

    # Jeurkar et al.'s scope: every weight and bias, logits included.
    assert [t.index for t in targets] == list(range(10))
    biases = [t for t in targets if t.kind == "bias"]
    assert [t.layer for t in biases] == [
        "conv_1", "conv_2", "dense_1", "dense_2", "logits"
    ]  # fmt: skip
    assert all(not t.structured and t.bias_index is None for t in biases)
    assert policy.unpruned_layers(lenet) == []


def test_pruned_biases_lose_their_smallest_entries():
    # One Dense layer, 2 inputs -> 4 units, logits kept: the kernel has 8
    # entries, the bias 4. Weight pruning at 50% zeroes the 2 smallest of each.
    inputs = tf.keras.Input((2,))
    hidden = tf.keras.layers.Dense(4, name="hidden")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="logits")(hidden))
    targets = PruningPolicy(prune_biases=True).select(model)
    kernel = np.arange(1, 9, dtype=np.float32).reshape(2, 4)
    bias = np.array([0.3, -0.1, 0.2, -0.4], np.float32)
    weights = [kernel, bias] + [w.numpy() for w in model.trainable_weights[2:]]

    masks = build_masks(weights, targets, "weight", 0.5)

    np.testing.assert_array_equal(masks[1], [True, False, False, True])
    assert np.count_nonzero(~masks[0]) == 4
    # Channel pruning drops bias entries only with their units.
    channel = build_masks(weights, targets, "channel", 0.5)
    np.testing.assert_array_equal(channel[1], [False, False, True, True])


def test_policy_skips_batch_norm():
    model = build_model("resnet12", (28, 28, 1), 10, width_multiplier=0.125)
    targets = PruningPolicy().select(model)

    assert all("bn" not in t.layer for t in targets)
    assert len(targets) == 16  # 4 stages x (3 conv + 1 shortcut)


def _weights(model):
    return [w.numpy() for w in model.trainable_weights]


def test_weight_method_prunes_each_kernel_and_no_bias(lenet):
    weights = _weights(lenet)
    targets = PruningPolicy().select(lenet)

    masks = build_masks(weights, targets, "weight", 0.5)

    kernel_indices = {t.index for t in targets}
    for index, (weight, mask) in enumerate(zip(weights, masks, strict=True)):
        if index in kernel_indices:
            assert np.count_nonzero(~mask) == round(0.5 * weight.size)
        else:
            assert mask.all()  # biases and logits untouched


def test_unit_method_drops_units_and_bias(lenet):
    weights = _weights(lenet)
    targets = PruningPolicy().select(lenet)

    masks = build_masks(weights, targets, "unit", 0.25)

    dense_1 = next(t for t in targets if t.layer == "dense_1")
    kernel_mask, bias_mask = masks[dense_1.index], masks[dense_1.bias_index]
    assert np.count_nonzero(~bias_mask) == 30  # round(0.25 * 120)
    np.testing.assert_array_equal(kernel_mask.any(axis=0), bias_mask)


def test_global_method_hits_overall_count(lenet):
    weights = _weights(lenet)
    targets = PruningPolicy().select(lenet)

    masks = build_masks(weights, targets, "global-weight", 0.7)

    total = sum(weights[t.index].size for t in targets)
    pruned = sum(np.count_nonzero(~masks[t.index]) for t in targets)
    assert pruned == round(0.7 * total)


def test_masks_nest_across_rounds(lenet):
    weights = _weights(lenet)
    targets = PruningPolicy().select(lenet)
    first = build_masks(weights, targets, "hybrid", 0.3)
    pruned_weights = apply_masks(weights, first)

    second = build_masks(pruned_weights, targets, "hybrid", 0.6, masks=first)

    for a, b in zip(first, second, strict=True):
        assert not np.any(b & ~a)


def test_prune_model_and_sparsity_report():
    model = build_model("fc", (8, 8, 1), 10, seed=1)

    prune_model(model, "weight", 0.8)
    report = model_sparsity(model)

    assert report.prunable_sparsity == pytest.approx(0.8, abs=1e-6)
    assert report.num_parameters == model.count_params()
    logits = [layer for layer in report.layers if "logits/kernel" in layer.name]
    assert len(logits) == 1
    assert all(layer.sparsity == 0 for layer in logits)
    assert report.as_dict()["layers"][0]["sparsity"] == pytest.approx(0.8, abs=1e-3)


def test_unknown_method(lenet):
    with pytest.raises(ValueError, match="unknown pruning method 'random'"):
        build_masks(_weights(lenet), PruningPolicy().select(lenet), "random", 0.5)


def _residual_model():
    # stem -> [conv_1 -> bn_1 -> relu -> conv_2 -> bn_2] + [shortcut -> bn_s]
    # -> relu -> gap -> logits; and a block that adds the input to itself.
    tf.keras.utils.set_random_seed(3)
    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 2))
    stem = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = layers.Conv2D(8, 3, padding="same", name="conv_1", use_bias=False)(stem)
    x = layers.BatchNormalization(name="bn_1")(x)
    x = layers.ReLU(name="relu_1")(x)
    x = layers.Conv2D(8, 3, padding="same", name="conv_2")(x)
    x = layers.BatchNormalization(name="bn_2")(x)
    shortcut = layers.Conv2D(8, 1, name="shortcut", use_bias=False)(stem)
    shortcut = layers.BatchNormalization(name="bn_s")(shortcut)
    x = layers.ReLU(name="relu_out")(layers.Add(name="add")([x, shortcut]))
    identity = layers.Conv2D(2, 1, name="identity_conv")(inputs)
    fixed = layers.Add(name="input_add")([inputs, identity])
    pooled = layers.Concatenate(name="concat")(
        [
            layers.GlobalAveragePooling2D(name="gap")(x),
            layers.GlobalAveragePooling2D(name="gap_fixed")(fixed),
        ]
    )
    return tf.keras.Model(inputs, layers.Dense(3, name="logits")(pooled))


def test_policy_groups_the_kernels_of_a_residual_sum():
    model = _residual_model()
    targets = {t.layer: t for t in PruningPolicy().select(model)}
    position = {id(w): i for i, w in enumerate(model.trainable_weights)}

    def at(layer, weight):
        return position[id(getattr(model.get_layer(layer), weight))]

    assert targets["conv_2"].group == targets["shortcut"].group
    assert targets["conv_2"].group == min(
        targets["conv_2"].index, targets["shortcut"].index
    )
    assert targets["stem"].group is None and targets["conv_1"].group is None
    # BatchNorm gamma and beta follow the channels of the kernel (group) before
    # them; on the group's first kernel (conv_2 comes first in the graph).
    assert targets["conv_1"].followers == (at("bn_1", "gamma"), at("bn_1", "beta"))
    assert set(targets["conv_2"].followers) == {
        at(bn, weight) for bn in ("bn_2", "bn_s") for weight in ("gamma", "beta")
    }
    assert targets["shortcut"].followers == ()
    # y = x + conv(x): no mask can drop the input's channels from the sum.
    assert not targets["identity_conv"].structured
    assert all(t.structured for n, t in targets.items() if n != "identity_conv")


@pytest.mark.parametrize("method", ["unit", "channel", "hybrid"])
def test_pruned_channels_of_a_residual_sum_are_zero_after_it(method):
    model = _residual_model()
    targets = PruningPolicy().select(model)
    # Give BatchNorm betas (Keras starts them at 0) values to lose.
    for layer in ("bn_1", "bn_2", "bn_s"):
        model.get_layer(layer).beta.assign(np.full(8, 0.5, np.float32))
    weights = [w.numpy() for w in model.trainable_weights]

    masks = build_masks(weights, targets, method, 0.5)
    for variable, value in zip(
        model.trainable_weights, apply_masks(weights, masks), strict=True
    ):
        variable.assign(value)

    def kept(layer):
        index = next(t.index for t in targets if t.layer == layer)
        return masks[index].reshape(-1, 8).any(axis=0)

    assert kept("conv_2").tolist() == kept("shortcut").tolist()
    dropped = ~kept("conv_2")
    assert np.count_nonzero(dropped) == (4 if method != "hybrid" else 2)
    added = tf.keras.Model(model.input, model.get_layer("add").output)
    images = np.random.default_rng(0).normal(size=(5, 6, 6, 2)).astype(np.float32)
    summed = added(images, training=False).numpy()
    assert np.all(summed[..., dropped] == 0.0)
    assert np.all(np.abs(summed[..., ~dropped]).max(axis=(0, 1, 2)) > 0)


def test_channel_note_names_the_groups_and_the_fixed_kernels():
    model = _residual_model()

    assert PruningPolicy().channel_note(model, "channel") == (
        "channels pruned as one group (summed by the model): conv_2 + shortcut; "
        "channels left whole by channel pruning (summed with channels no mask "
        "can drop, such as the model's input): identity_conv"
    )
    assert PruningPolicy().channel_note(model, "weight") is None
    lenet = build_model("lenet5", (28, 28, 1), 10, seed=0)
    assert PruningPolicy().channel_note(lenet, "unit") is None
