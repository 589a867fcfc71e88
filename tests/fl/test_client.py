"""A client's work, run eagerly on a tiny model (no TFF runtime).

The local optimizer is TFF's SGD with momentum: an optimizer object runs as
plain TensorFlow.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.client import build_client_train_fn, build_client_work_fn
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.fl.messages import ClientInput, Download, PruningStep
from tffprune.pruning import PruningPolicy, build_masks, mask_distance
from tffprune.pruning.counts import pruning_counts
from tffprune.pruning.packed_masks import pack_all, unpack_all

EXAMPLES, BATCH, EPOCHS = 40, 10, 3


def model_fn():
    tf.keras.utils.set_random_seed(1)
    inputs = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(6, activation="relu")(inputs)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(hidden)
    return tf.keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(EXAMPLES, 4)).astype(np.float32)
    labels = rng.integers(0, 3, EXAMPLES).astype(np.int32)
    model = model_fn()
    weights = [w.numpy() for w in model.trainable_weights]
    targets = tuple(PruningPolicy().select(model))
    return inputs, labels, weights, targets


def _dataset(inputs, labels, epochs=EPOCHS):
    """Unshuffled: the same batches in every epoch and every call."""
    return (
        tf.data.Dataset.from_tensor_slices((inputs, labels)).repeat(epochs).batch(BATCH)
    )


def test_early_snapshot_is_the_model_after_the_first_epoch(setting):
    inputs, labels, weights, _ = setting
    optimizer = tff.learning.optimizers.build_sgdm(0.5, momentum=0.5)
    train = build_client_train_fn(model_fn, optimizer, early_snapshot=True)
    plain = build_client_train_fn(model_fn, optimizer)
    ones = [tf.ones_like(w) for w in weights]

    trained, _, seen, _, early = train(
        weights, [], ones, _dataset(inputs, labels), tf.constant(EXAMPLES)
    )
    first_epoch, _, _, _ = plain(weights, [], ones, _dataset(inputs, labels, 1))
    whole, _, _, _ = plain(weights, [], ones, _dataset(inputs, labels))

    # The oracle: training on the first epoch alone, and on all of them.
    assert int(seen) == EPOCHS * EXAMPLES
    for ours, theirs in zip(early, first_epoch, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for ours, theirs in zip(trained, whole, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def _client_round(setting, learning_rate, threshold):
    inputs, labels, weights, targets = setting
    shapes = [w.shape for w in weights]
    work = build_client_work_fn(
        model_fn,
        tff.learning.optimizers.build_sgdm(learning_rate, momentum=0.5),
        ClientWorkConfig.from_options(
            "weight", targets, mask_distance_threshold=threshold
        ),
    )
    counts = pruning_counts(shapes, targets, "weight", 0.5)
    counts = counts.as_tensors()[:3] + (np.int32(EXAMPLES),)
    received = [tf.constant(w) for w in weights]
    _, output = work(
        Download(received=received, server=received),
        ClientInput(
            mask=pack_all([np.ones(s, bool) for s in shapes]),
            counts=PruningStep(*(tf.constant(c) for c in counts)),
            delivered=tf.constant(True),
            residual_files=(),
        ),
        _dataset(inputs, labels),
    )
    masks = unpack_all([m.numpy() for m in output.mask], shapes)
    return masks, float(output.mask_distance)


def test_identical_candidate_masks_do_not_prune(setting):
    # A step too small to move any float32 weight: both candidates are the
    # masks of the starting weights, so their distance is exactly 0.
    masks, distance = _client_round(setting, learning_rate=1e-30, threshold=1e-4)

    assert distance == 0.0
    assert all(m.all() for m in masks)


def test_a_large_distance_takes_the_step_exactly_to_the_target(setting):
    inputs, labels, weights, targets = setting
    optimizer = tff.learning.optimizers.build_sgdm(0.5, momentum=0.5)
    plain = build_client_train_fn(model_fn, optimizer)
    ones = [tf.ones_like(w) for w in weights]
    early, _, _, _ = plain(weights, [], ones, _dataset(inputs, labels, 1))
    final, _, _, _ = plain(weights, [], ones, _dataset(inputs, labels))
    early_masks = build_masks([w.numpy() for w in early], targets, "weight", 0.5)
    final_masks = build_masks([w.numpy() for w in final], targets, "weight", 0.5)
    kernels = [t.index for t in targets]
    expected = mask_distance(
        [early_masks[i] for i in kernels], [final_masks[i] for i in kernels]
    )
    assert expected > 0.1  # the oracle's premise: the masks moved

    masks, distance = _client_round(setting, learning_rate=0.5, threshold=1e-4)

    assert distance == pytest.approx(expected, abs=1e-6)
    for ours, theirs in zip(masks, final_masks, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for index in kernels:  # 50% of each kernel, not one entry more
        assert np.count_nonzero(~masks[index]) == masks[index].size // 2


def test_a_threshold_above_the_distance_keeps_the_mask(setting):
    masks, distance = _client_round(setting, learning_rate=0.5, threshold=0.99)

    assert 0.0 < distance <= 0.99
    assert all(m.all() for m in masks)
