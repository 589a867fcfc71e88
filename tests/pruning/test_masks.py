import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tffprune.pruning import (
    apply_mask,
    bias_mask_for,
    channel_mask,
    global_weight_masks,
    group_structured_mask,
    hybrid_mask,
    mask_distance,
    mask_sparsity,
    structured_mask,
    unit_mask,
    weight_mask,
)


def test_weight_mask_linspace_oracle():
    weights = np.linspace(1, 100, 100)

    mask = weight_mask(weights, 0.5)

    # 1..50 pruned, 51..100 kept.
    np.testing.assert_array_equal(weights[mask], np.arange(51, 101))


def test_weight_mask_uses_magnitude_not_sign():
    weights = np.array([-5.0, 0.1, 3.0, -0.2])

    np.testing.assert_array_equal(weight_mask(weights, 0.5), [True, False, True, False])


def test_weight_mask_exact_counts_at_edges():
    weights = np.random.default_rng(0).normal(size=(7, 13))  # 91 entries

    assert np.count_nonzero(~weight_mask(weights, 0.0)) == 0
    assert np.count_nonzero(~weight_mask(weights, 0.01)) == 1  # round(0.91)
    assert np.count_nonzero(~weight_mask(weights, 0.99)) == 90  # round(90.09)


def test_weight_mask_ties_prune_lower_index_first():
    mask = weight_mask(np.ones(6), 0.5)

    np.testing.assert_array_equal(mask, [False, False, False, True, True, True])


def test_weight_mask_respects_existing_mask():
    weights = np.array([10.0, 1.0, 2.0, 3.0])
    existing = np.array([False, True, True, True])  # the largest is already gone

    mask = weight_mask(weights, 0.5, existing)

    np.testing.assert_array_equal(mask, [False, False, True, True])


def test_global_weight_masks_one_threshold():
    first = np.array([1.0, 2.0, 3.0])
    second = np.array([[10.0, 0.5], [20.0, 30.0]])

    masks = global_weight_masks([first, second], 3 / 7)

    # The three smallest overall are 0.5, 1, 2: one tensor loses 2, the other 1.
    np.testing.assert_array_equal(masks[0], [False, False, True])
    np.testing.assert_array_equal(masks[1], [[True, False], [True, True]])


def test_unit_mask_drops_lowest_norm_columns_and_their_bias():
    kernel = np.array(
        [
            [3.0, 0.1, 1.0, 0.0],
            [4.0, 0.1, 1.0, 0.2],
        ]
    )  # column norms 5, 0.14, 1.41, 0.2

    mask = unit_mask(kernel, 0.5)

    np.testing.assert_array_equal(mask.all(axis=0), [True, False, True, False])
    np.testing.assert_array_equal(mask.any(axis=0), mask.all(axis=0))  # whole columns
    np.testing.assert_array_equal(bias_mask_for(mask), [True, False, True, False])


def test_channel_mask_zeroes_whole_filters():
    kernel = np.ones((3, 3, 2, 4))
    kernel[..., 1] *= 0.1
    kernel[..., 3] *= 0.2

    mask = channel_mask(kernel, 0.5)

    np.testing.assert_array_equal(bias_mask_for(mask), [True, False, True, False])
    assert mask[..., 0].all() and not mask[..., 1].any()


def test_channel_mask_l1_and_l2_can_disagree():
    kernel = np.zeros((1, 1, 4, 2))
    kernel[0, 0, :, 0] = [1.0, 1.0, 1.0, 1.0]  # L1 4, L2 2
    kernel[0, 0, :, 1] = [3.0, 0.0, 0.0, 0.0]  # L1 3, L2 3

    assert bias_mask_for(channel_mask(kernel, 0.5, norm=1)).tolist() == [True, False]
    assert bias_mask_for(channel_mask(kernel, 0.5, norm=2)).tolist() == [False, True]


def test_hybrid_mask_structured_then_weights():
    kernel = np.random.default_rng(1).normal(size=(10, 8))

    mask = hybrid_mask(kernel, 0.5, structured_share=0.5)

    # round(0.25 * 8) = 2 whole units, then 40 of 80 entries pruned in total.
    assert np.count_nonzero(~mask.any(axis=0)) == 2
    assert np.count_nonzero(~mask) == 40


def test_hybrid_share_zero_is_weight_pruning():
    kernel = np.random.default_rng(2).normal(size=(6, 5))

    np.testing.assert_array_equal(
        hybrid_mask(kernel, 0.6, structured_share=0.0), weight_mask(kernel, 0.6)
    )


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.2, float("nan")])
def test_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        weight_mask(np.ones(4), sparsity)


def test_non_finite_weights():
    with pytest.raises(ValueError, match="must be finite, got 2 NaN or infinite"):
        weight_mask(np.array([1.0, np.nan, np.inf]), 0.5)


def test_unit_mask_needs_2d_and_channel_mask_needs_4d():
    with pytest.raises(ValueError, match=r"2-D Dense kernel .* got shape \(5,\)"):
        unit_mask(np.ones(5), 0.5)
    with pytest.raises(ValueError, match=r"4-D Conv2D kernel .* got shape \(3, 3\)"):
        channel_mask(np.ones((3, 3)), 0.5)


def test_apply_mask_and_sparsity():
    weights = np.array([1.0, -2.0, 3.0, -4.0], np.float32)
    mask = np.array([True, False, True, False])

    applied = apply_mask(weights, mask)

    np.testing.assert_array_equal(applied, [1.0, 0.0, 3.0, 0.0])
    assert applied.dtype == np.float32
    assert mask_sparsity(mask) == 0.5
    np.testing.assert_array_equal(apply_mask(applied, mask), applied)


shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)
finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@given(
    weights=hnp.arrays(np.float32, shapes, elements=finite),
    sparsity=st.floats(0.0, 0.999),
)
@settings(max_examples=100, deadline=None)
def test_property_exact_count(weights, sparsity):
    mask = weight_mask(weights, sparsity)

    assert mask.shape == weights.shape
    assert np.count_nonzero(~mask) == round(sparsity * weights.size)


@given(
    weights=hnp.arrays(np.float32, shapes, elements=finite),
    low=st.floats(0.0, 0.999),
    high=st.floats(0.0, 0.999),
)
@settings(max_examples=100, deadline=None)
def test_property_masks_nest(weights, low, high):
    low, high = sorted((low, high))

    kept_at_high = weight_mask(weights, high)
    kept_at_low = weight_mask(weights, low)

    assert not np.any(kept_at_high & ~kept_at_low)  # high-sparsity mask is a subset


@given(
    kernel=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=finite,
    ),
    sparsity=st.floats(0.0, 0.999),
)
@settings(max_examples=100, deadline=None)
def test_property_units_whole_and_counted(kernel, sparsity):
    mask = unit_mask(kernel, sparsity)
    dropped = ~mask.any(axis=0)

    assert np.count_nonzero(dropped) == round(sparsity * kernel.shape[1])
    np.testing.assert_array_equal(mask.all(axis=0), ~dropped)


@given(
    weights=hnp.arrays(np.float32, shapes, elements=finite),
    sparsity=st.floats(0.0, 0.999),
)
@settings(max_examples=50, deadline=None)
def test_property_apply_twice_changes_nothing(weights, sparsity):
    mask = weight_mask(weights, sparsity)
    once = apply_mask(weights, mask)

    np.testing.assert_array_equal(apply_mask(once, mask), once)


def test_mask_distance_is_the_mean_over_tensors_of_the_hamming_share():
    first = [np.array([1, 1, 0, 0], bool), np.array([[1, 1], [1, 1]], bool)]
    second = [np.array([1, 0, 0, 1], bool), np.array([[1, 1], [1, 0]], bool)]

    # 2 of 4 differ, then 1 of 4: (0.5 + 0.25) / 2.
    assert mask_distance(first, second) == 0.375
    assert mask_distance(first, first) == 0.0


def test_mask_distance_rejects_mismatched_masks():
    with pytest.raises(ValueError, match="shapes differ"):
        mask_distance([np.ones(3, bool)], [np.ones(4, bool)])
    with pytest.raises(ValueError, match="1 masks against 2"):
        mask_distance([np.ones(3, bool)], [np.ones(3, bool)] * 2)


def test_group_structured_mask_ranks_the_summed_channels_together():
    # Alone, the first kernel drops channel 0 (norm 1), the second drops
    # channel 1 (norm 0.5). Together the channel norms are sqrt(1 + 9) = 3.16,
    # sqrt(4 + 0.25) = 2.06 and sqrt(9 + 4) = 3.61: both drop channel 1.
    first = np.array([[1.0, 2.0, 3.0]])
    second = np.array([[3.0, 0.5, 2.0]])
    assert structured_mask(first, 1 / 3).tolist() == [[False, True, True]]
    assert structured_mask(second, 1 / 3).tolist() == [[True, False, True]]

    together = group_structured_mask([first, second], 1 / 3)

    assert [m.tolist() for m in together] == [[[True, False, True]]] * 2


def test_group_structured_mask_counts_a_channel_dead_only_when_dead_in_all():
    first, second = np.ones((2, 3)), np.ones((1, 3)) * 5
    dead_in_first = np.array([[False, True, True]] * 2)

    # Channel 0 is alive in the second kernel: not dead, so 1/3 prunes the
    # lowest norm among all three: channel 0 (norm sqrt(25) = 5 against
    # sqrt(2 + 25)), and both kernels lose it.
    together = group_structured_mask(
        [first, second], 1 / 3, masks=[dead_in_first, None]
    )
    assert together[0].tolist() == [[False, True, True]] * 2
    assert together[1].tolist() == [[False, True, True]]


def test_group_structured_mask_refuses_different_channel_counts():
    with pytest.raises(ValueError, match="same number of outputs, got \\[2, 3\\]"):
        group_structured_mask([np.ones((2, 2)), np.ones((2, 3))], 0.5)
