import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tffprune.pruning import masks as reference
from tffprune.pruning.tf_masks import weight_mask

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
