import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tffprune.pruning import (
    PruningPolicy,
    masks_from_tfmot,
    model_sparsity,
    set_tfmot_masks,
    weight_mask,
)


def _wrapped_model():
    tf.keras.utils.set_random_seed(0)
    dense = tf.keras.Sequential(
        [tf.keras.Input((6,)), tf.keras.layers.Dense(8), tf.keras.layers.Dense(3)]
    )
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
    return tfmot.sparsity.keras.prune_low_magnitude(dense, pruning_schedule=schedule)


def _fit_one_step(model):
    model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    model.fit(
        rng.random((8, 6)),
        rng.integers(0, 3, 8),
        epochs=2,
        batch_size=4,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )


def test_masks_come_out_of_a_tfmot_pruned_model():
    model = _wrapped_model()
    _fit_one_step(model)

    masks = masks_from_tfmot(model)

    kernels = [w for w in model.trainable_weights if "kernel" in w.name]
    assert len(kernels) == 2
    by_shape = {m.shape: m for m in masks}
    assert by_shape[(6, 8)].mean() == 0.5 and by_shape[(8, 3)].mean() == 0.5
    assert all(m.all() for m in masks if m.ndim == 1)  # biases
    report = model_sparsity(model)  # not 0.0: tfmot's masks are counted
    assert report.prunable_sparsity == pytest.approx(0.5)


def test_tffprune_masks_go_into_a_tfmot_model_and_survive_stripping():
    model = _wrapped_model()
    model.build((None, 6))
    weights = [w.numpy() for w in model.trainable_weights]
    ours = [
        weight_mask(w, 0.25) if w.ndim == 2 else np.ones(w.shape, bool) for w in weights
    ]

    set_tfmot_masks(model, ours)

    for theirs, mine in zip(masks_from_tfmot(model), ours, strict=True):
        np.testing.assert_array_equal(theirs, mine)
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    for weight, mask in zip(stripped.trainable_weights, ours, strict=True):
        assert np.all(weight.numpy()[~mask] == 0)


def test_policy_refuses_a_wrapped_model_with_the_way_out():
    with pytest.raises(ValueError, match="strip_pruning"):
        PruningPolicy().select(_wrapped_model())


def test_unwrapped_model_has_no_tfmot_masks():
    with pytest.raises(ValueError, match="no layer wrapped"):
        masks_from_tfmot(tf.keras.Sequential([tf.keras.layers.Dense(2)]))
