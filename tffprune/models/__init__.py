"""Keras models of the papers, built by name."""

from tffprune.models.builders import (
    FC_HIDDEN_UNITS,
    MODEL_NAMES,
    build_fc,
    build_lenet5,
    build_model,
    build_resnet12,
    build_simple_cnn,
    build_tfmot_cnn,
)

__all__ = [
    "FC_HIDDEN_UNITS",
    "MODEL_NAMES",
    "build_fc",
    "build_lenet5",
    "build_model",
    "build_resnet12",
    "build_simple_cnn",
    "build_tfmot_cnn",
]
