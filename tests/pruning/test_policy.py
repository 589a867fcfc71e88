import numpy as np
import pytest

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
