import numpy as np
import pytest

from tffprune.data import load_dataset
from tffprune.models import build_model
from tffprune.pruning import PruningPolicy
from tffprune.pruning.centralized import (
    cluster_preserving_sparsity,
    prune_trained,
    train_dense,
    train_from_scratch,
)


@pytest.fixture(scope="module")
def subset():
    data = load_dataset("fashion_mnist", download=False)
    return (
        data.x_train[:6000],
        data.y_train[:6000],
        data.x_test[:2000],
        data.y_test[:2000],
    )


@pytest.mark.slow
def test_prune_trained_reaches_target_and_keeps_baseline(subset):
    x, y, x_test, y_test = subset
    baseline = train_dense(
        build_model("lenet5", (28, 28, 1), 10, seed=0), x, y, x_test, y_test, epochs=2
    )
    before = [w.copy() for w in baseline.model.get_weights()]

    result = prune_trained(baseline.model, x, y, x_test, y_test, 0.8, epochs=2)

    print(f"baseline {baseline.test_accuracy:.4f} pruned {result.test_accuracy:.4f}")
    assert result.sparsity.prunable_sparsity == pytest.approx(0.8, abs=0.01)
    assert result.test_accuracy > 0.6
    for a, b in zip(before, baseline.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched
    assert not any("prune" in layer.name for layer in result.model.layers)


@pytest.mark.slow
def test_from_scratch_reaches_target_including_logits(subset):
    x, y, x_test, y_test = subset

    result = train_from_scratch(
        build_model("tfmot_cnn", (28, 28, 1), 10, seed=0),
        x,
        y,
        x_test,
        y_test,
        0.5,
        epochs=2,
        policy=PruningPolicy(prune_logits=True),
    )

    print(f"from scratch {result.test_accuracy:.4f}")
    assert result.sparsity.prunable_sparsity == pytest.approx(0.5, abs=0.01)
    assert result.test_accuracy > 0.6


@pytest.mark.slow
def test_clustering_keeps_zeros_and_limits_distinct_values(subset):
    x, y, x_test, y_test = subset
    pruned = train_from_scratch(
        build_model("tfmot_cnn", (28, 28, 1), 10, seed=0),
        x,
        y,
        x_test,
        y_test,
        0.8,
        epochs=1,
        policy=PruningPolicy(prune_logits=True),
    )
    before = [w.copy() for w in pruned.model.get_weights()]

    result = cluster_preserving_sparsity(
        pruned.model,
        x,
        y,
        x_test,
        y_test,
        number_of_clusters=8,
        policy=PruningPolicy(prune_logits=True),
    )

    print(f"pruned {pruned.test_accuracy:.4f} clustered {result.test_accuracy:.4f}")
    after = result.model.get_weights()
    for original, clustered in zip(before, after, strict=True):
        if original.ndim > 1:  # kernels: pruned stay 0, at most 8 nonzero values
            assert np.all(clustered[original == 0] == 0)
            assert np.unique(clustered[clustered != 0]).size <= 8
            assert np.mean(clustered == 0) < np.mean(original == 0) + 0.05
    for a, b in zip(before, pruned.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the caller's model is untouched
    assert result.test_accuracy > pruned.test_accuracy - 0.05
    assert not any("cluster" in layer.name for layer in result.model.layers)


def test_clustering_rejects_fewer_than_two_clusters(subset):
    x, y, x_test, y_test = subset
    model = build_model("tfmot_cnn", (28, 28, 1), 10, seed=0)
    with pytest.raises(ValueError, match="number_of_clusters"):
        cluster_preserving_sparsity(model, x, y, x_test, y_test, number_of_clusters=1)


def test_a_kernel_of_three_values_is_kept_exactly_by_three_clusters(subset):
    # A FedPM network: every weight -c, 0 or +c. k-means++ over two distinct
    # nonzero values merged them in a logits kernel (12% of its entries
    # changed, measured on fc); such a kernel needs no clustering.
    import tensorflow as tf

    rng = np.random.default_rng(0)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(inputs)
    x = tf.keras.layers.Dense(200, activation="relu")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x))
    # The measured logits kernel's shares: 871 at -c, 885 at 0, 244 at +c.
    values = np.float32([-0.19, 0.0, 0.19])
    weights = [
        rng.choice(values, weight.shape, p=[0.4355, 0.4425, 0.122])
        for weight in model.get_weights()
    ]
    model.set_weights(weights)
    tf.keras.utils.set_random_seed(0)  # as the export seeds its clustering
    x_train, y_train, x_test, y_test = subset

    result = cluster_preserving_sparsity(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        3,
        epochs=0,
        policy=PruningPolicy(prune_logits=True),
    )

    for ours, theirs in zip(result.model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
