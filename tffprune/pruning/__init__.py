"""Pruning: pure NumPy masks, model-level lifting, round schedules.

The mask functions need only NumPy; `tffprune.pruning.centralized` (the tfmot
workflows) imports TensorFlow and is not imported here.
"""

from tffprune.pruning.masks import (
    apply_mask,
    bias_mask_for,
    channel_mask,
    check_sparsity,
    global_weight_masks,
    group_structured_mask,
    hybrid_mask,
    mask_distance,
    mask_sparsity,
    num_to_prune,
    structured_mask,
    unit_mask,
    weight_mask,
)
from tffprune.pruning.policy import (
    METHODS,
    LayerSparsity,
    PrunableWeight,
    PruningPolicy,
    SparsityReport,
    apply_masks,
    build_masks,
    check_method,
    model_sparsity,
    prune_model,
    sparsity_report,
)
from tffprune.pruning.schedules import (
    SCHEDULES,
    ConstantSparsity,
    IterativeSchedule,
    PolynomialDecay,
    build_schedule,
    schedule_from_config,
)
from tffprune.pruning.tfmot_interop import masks_from_tfmot, set_tfmot_masks

__all__ = [
    "METHODS",
    "SCHEDULES",
    "ConstantSparsity",
    "IterativeSchedule",
    "LayerSparsity",
    "PolynomialDecay",
    "PrunableWeight",
    "PruningPolicy",
    "SparsityReport",
    "apply_mask",
    "apply_masks",
    "bias_mask_for",
    "build_masks",
    "build_schedule",
    "channel_mask",
    "check_method",
    "check_sparsity",
    "global_weight_masks",
    "group_structured_mask",
    "masks_from_tfmot",
    "set_tfmot_masks",
    "hybrid_mask",
    "mask_distance",
    "mask_sparsity",
    "model_sparsity",
    "num_to_prune",
    "prune_model",
    "schedule_from_config",
    "sparsity_report",
    "structured_mask",
    "unit_mask",
    "weight_mask",
]
