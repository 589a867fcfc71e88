import numpy as np

from tffprune.pruning.counts import no_pruning, pruning_counts
from tffprune.pruning.policy import PrunableWeight

# Two kernels (a conv with bias at index 1, a dense without bias) and a bias.
SHAPES = [(3, 3, 2, 10), (10,), (40, 5)]
TARGETS = [
    PrunableWeight(0, "conv", "conv", 1),
    PrunableWeight(2, "dense", "dense", None),
]


def test_weight_counts_are_rounded_entries_per_kernel():
    counts = pruning_counts(SHAPES, TARGETS, "weight", 0.5)

    assert counts.entries.tolist() == [90, 0, 100]  # 0.5 * 180, bias untouched
    assert counts.slices.tolist() == [0, 0, 0] and counts.total == 0


def test_structured_counts_are_output_slices():
    counts = pruning_counts(SHAPES, TARGETS, "unit", 0.3)

    # round(0.3 * 10) = 3 filters, round(0.3 * 5) = round(1.5) = 2 units.
    assert counts.slices.tolist() == [3, 0, 2]
    assert counts.entries.tolist() == [0, 0, 0]


def test_hybrid_counts_slices_at_the_share_then_entries():
    counts = pruning_counts(SHAPES, TARGETS, "hybrid", 0.6, structured_share=0.5)

    # Slices at 0.3: 3 of 10, round(1.5) = 2 of 5; entries at 0.6.
    assert counts.slices.tolist() == [3, 0, 2]
    assert counts.entries.tolist() == [108, 0, 120]


def test_global_counts_one_total_over_all_kernels():
    counts = pruning_counts(SHAPES, TARGETS, "global-weight", 0.25)

    assert counts.total == 95  # round(0.25 * (180 + 200))
    assert not counts.entries.any() and not counts.slices.any()


def test_transposed_kernels_get_no_slices():
    targets = [PrunableWeight(0, "conv", "conv", 1, structured=False)]

    assert pruning_counts(SHAPES[:2], targets, "channel", 0.5).slices.tolist() == [0, 0]
    hybrid = pruning_counts(SHAPES[:2], targets, "hybrid", 0.5)
    assert hybrid.entries.tolist() == [90, 0] and not hybrid.slices.any()


def test_no_pruning_and_zero_sparsity_are_all_zero():
    for counts in (no_pruning(3), pruning_counts(SHAPES, TARGETS, "weight", 0.0)):
        assert not counts.entries.any() and not counts.slices.any()
        assert counts.total == 0
        assert counts.as_tensors()[0].dtype == np.int32
