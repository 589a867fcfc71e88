import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tffprune.pruning import masks as reference
from tffprune.pruning.tf_masks import mask_distance, weight_mask

_compiled = tf.function(weight_mask)


def _tf_mask(weights, alive, num_pruned):
    return _compiled(
        tf.constant(weights, tf.float32),
        tf.constant(alive, tf.bool),
        tf.constant(num_pruned, tf.int32),
    ).numpy()


def test_hand_worked_case_with_ties_and_a_previous_mask():
    weights = np.array([0.5, -0.1, 0.3, 0.1, 0.0, 2.0], np.float32)
    alive = np.array([True, True, True, True, False, True])

    # 3 pruned: the dead entry 4 first, then |w| = 0.1 twice (index 1, then 3).
    assert _tf_mask(weights, alive, 3).tolist() == [
        True,
        False,
        True,
        False,
        False,
        True,
    ]
    # 2 pruned: the dead entry, then the lower index of the tie.
    assert _tf_mask(weights, alive, 2).tolist() == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    # Fewer than already pruned: the mask comes back unchanged.
    assert _tf_mask(weights, alive, 0).tolist() == alive.tolist()


def test_magnitudes_across_the_whole_float_range():
    # The cut is selected by the high, then the low bits of the float's bit
    # pattern: 1.0 and 1.0000001 share their high 16 bits, 0 and the smallest
    # denormal are the lowest patterns, 3e38 is near the largest.
    weights = np.array([2.0, -3e38, 1.0000001, 0.0, -1.0, 1e-45], np.float32)
    alive = np.ones(6, bool)
    order = [3, 5, 4, 2, 0, 1]  # ascending |w|

    for pruned in range(7):
        expected = np.ones(6, bool)
        expected[order[:pruned]] = False
        assert _tf_mask(weights, alive, pruned).tolist() == expected.tolist()


@given(
    size=st.integers(1, 400),
    sparsity=st.floats(0.0, 0.99),
    previous=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
    ties=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_matches_the_numpy_reference(size, sparsity, previous, seed, ties):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(size,)).astype(np.float32)
    if ties:  # few distinct magnitudes, both signs, exact zeros
        weights = np.round(weights * 2) / 2
    alive = reference.weight_mask(weights, previous)
    weights = np.where(alive, weights, 0.0).astype(np.float32)

    expected = reference.weight_mask(weights, sparsity, mask=alive)

    num_pruned = reference.num_to_prune(sparsity, size)
    np.testing.assert_array_equal(_tf_mask(weights, alive, num_pruned), expected)


@pytest.mark.parametrize("shape", [(784, 200), (3, 3, 8, 16), (10,)])
def test_keeps_shape_and_exact_count(shape):
    weights = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    alive = np.ones(shape, bool)
    num_pruned = reference.num_to_prune(0.9, weights.size)

    mask = _tf_mask(weights, alive, num_pruned)

    assert mask.shape == shape
    assert mask.size - np.count_nonzero(mask) == num_pruned
    np.testing.assert_array_equal(mask, reference.weight_mask(weights, 0.9))


def _layer_zoo():
    """Dense, Conv1D, Conv2D, separable, transposed and BatchNorm layers."""
    images = tf.keras.Input((8, 8, 2))
    x = tf.keras.layers.Conv2D(6, 3, padding="same")(images)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.SeparableConv2D(5, 3, padding="same")(x)
    x = tf.keras.layers.Conv2DTranspose(4, 3, padding="same")(x)
    x = tf.keras.layers.Reshape((64, 4))(x)
    x = tf.keras.layers.Conv1D(3, 3)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(12)(x)
    logits = tf.keras.layers.Dense(10)(x)
    tf.keras.utils.set_random_seed(1)
    return tf.keras.Model(images, logits)


def _residual_zoo():
    """Two residual sums (one with BatchNorm branches), one fixed by the input."""
    layers = tf.keras.layers
    images = tf.keras.Input((6, 6, 3))
    stem = layers.Conv2D(5, 3, padding="same")(images)
    x = layers.Conv2D(5, 3, padding="same", use_bias=False)(stem)
    x = layers.BatchNormalization()(x)
    shortcut = layers.BatchNormalization()(layers.Conv2D(5, 1)(stem))
    x = layers.ReLU()(layers.Add()([x, shortcut]))
    x = x + layers.Conv2D(5, 3, padding="same")(x)  # groups with the first sum
    fixed = layers.Add()([images, layers.Conv2D(3, 1)(images)])
    x = layers.Concatenate()([x, fixed])
    x = layers.Dense(4)(layers.Flatten()(x))
    tf.keras.utils.set_random_seed(2)
    return tf.keras.Model(images, layers.Dense(10)(x))


@pytest.mark.parametrize("zoo", [_layer_zoo, _residual_zoo])
@pytest.mark.parametrize(
    "method", ["weight", "global-weight", "unit", "channel", "layer-channel", "hybrid"]
)
@pytest.mark.parametrize(
    "prune_logits,prune_biases", [(False, False), (True, False), (True, True)]
)
def test_every_method_matches_the_numpy_reference(
    zoo, method, prune_logits, prune_biases
):
    from tffprune.pruning.counts import pruning_counts
    from tffprune.pruning.policy import PruningPolicy, build_masks
    from tffprune.pruning.tf_masks import build_masks as tf_build_masks

    model = zoo()
    policy = PruningPolicy(prune_logits=prune_logits, prune_biases=prune_biases)
    targets = policy.select(model)
    weights = [w.numpy() for w in model.trainable_weights]
    # Keras starts biases at 0 (all tied); give them magnitudes to rank.
    rng = np.random.default_rng(0)
    for target in targets:
        if target.kind == "bias":
            weights[target.index] = rng.normal(size=weights[target.index].shape)
            weights[target.index] = weights[target.index].astype(np.float32)
    shapes = [w.shape for w in weights]
    # A first step at 30%, then a nested step at 60% from that mask.
    first = build_masks(weights, targets, method, 0.3, structured_share=0.5)
    expected = build_masks(weights, targets, method, 0.6, masks=first)

    counts = pruning_counts(shapes, targets, method, 0.6).as_tensors()
    ours = tf.function(lambda w, m, c: tf_build_masks(method, targets, w, m, c))(
        [tf.constant(w) for w in weights],
        [tf.constant(m) for m in first],
        tuple(tf.constant(c) for c in counts),
    )

    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs)
    pruned = sum(np.count_nonzero(~m) for m in expected)
    assert pruned > 0


def test_structured_mask_hand_worked_columns():
    from tffprune.pruning.tf_masks import structured_mask

    # Column L2 norms 5, 1, 3, 1: two pruned are the two 1s (tie: index 1 first).
    kernel = np.array([[3.0, 1.0, 0.0, 0.0], [4.0, 0.0, 3.0, 1.0]], np.float32)
    alive = np.ones_like(kernel, bool)

    mask = structured_mask(tf.constant(kernel), tf.constant(alive), tf.constant(1))
    assert mask.numpy().all(axis=0).tolist() == [True, False, True, True]
    mask = structured_mask(tf.constant(kernel), tf.constant(alive), tf.constant(2))
    assert mask.numpy().all(axis=0).tolist() == [True, False, True, False]


def test_layer_channel_prunes_each_kernel_alone_by_l1_and_keeps_biases():
    from tffprune.pruning.policy import PruningPolicy, build_masks

    # Two branches summed: their channels form one group for channel pruning.
    layers = tf.keras.layers
    inputs = tf.keras.Input((4,))
    left, right = layers.Dense(4, name="left"), layers.Dense(4, name="right")
    summed = layers.Add()([left(inputs), right(inputs)])
    model = tf.keras.Model(inputs, layers.Dense(2, name="logits")(summed))
    # Column L1 norms: left 3, 4, 5, 6 and right 6, 5, 4, 3. Column 0 of
    # left is [3, 0, 0, 0] (L1 3, L2 3), column 1 is [1, 1, 1, 1] (L1 4,
    # L2 2): L1 drops column 0, L2 would drop column 1.
    left_kernel = np.array(
        [[3, 1, 5, 6], [0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], np.float32
    )
    right_kernel = left_kernel[:, ::-1].copy()
    weights = [w.numpy() for w in model.trainable_weights]
    names = [w.name for w in model.trainable_weights]
    weights[names.index("left/kernel:0")] = left_kernel
    weights[names.index("right/kernel:0")] = right_kernel
    targets = PruningPolicy().select(model)

    own = build_masks(weights, targets, "layer-channel", 0.25)
    grouped = build_masks(weights, targets, "channel", 0.25)

    left_keep = own[names.index("left/kernel:0")].all(axis=0)
    right_keep = own[names.index("right/kernel:0")].all(axis=0)
    assert left_keep.tolist() == [False, True, True, True]
    assert right_keep.tolist() == [True, True, True, False]
    assert own[names.index("left/bias:0")].all()  # biases stay whole
    # Channel pruning ranks the summed channels together and drops one for
    # both kernels, with their biases.
    assert (
        grouped[names.index("left/kernel:0")].all(axis=0)
        == grouped[names.index("right/kernel:0")].all(axis=0)
    ).all()
    assert not grouped[names.index("left/bias:0")].all()


def test_mask_distance_matches_the_numpy_reference():
    rng = np.random.default_rng(4)
    first = [rng.random((5, 3)) < 0.5, rng.random(7) < 0.3]
    second = [rng.random((5, 3)) < 0.5, rng.random(7) < 0.3]

    ours = mask_distance(
        [tf.constant(m) for m in first], [tf.constant(m) for m in second]
    )

    np.testing.assert_allclose(
        float(ours), reference.mask_distance(first, second), rtol=1e-6
    )


def test_residual_zoo_has_a_group_of_three_and_a_fixed_kernel():
    from tffprune.pruning.policy import PruningPolicy

    targets = PruningPolicy().select(_residual_zoo())
    groups = [t.group for t in targets if t.group is not None]

    assert len(groups) == 3 and len(set(groups)) == 1
    assert [t.structured for t in targets].count(False) == 1
