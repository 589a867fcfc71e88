"""Keras models of the papers, built by name; where a run's model comes from.

Imported lazily (PEP 562), so that ``tffprune.models.names`` needs no
TensorFlow.
"""

import importlib

from tffprune.models.names import MODEL_NAMES

_BUILDERS = (
    "FC_HIDDEN_UNITS",
    "build_fc",
    "build_fedavg_cnn",
    "build_jeurkar_resnet12",
    "build_lenet5",
    "build_model",
    "build_resnet12",
    "build_simple_cnn",
    "build_tfmot_cnn",
)

__all__ = ["MODEL_NAMES", *_BUILDERS]


def __getattr__(name: str):
    if name in _BUILDERS:
        return getattr(importlib.import_module("tffprune.models.builders"), name)
    raise AttributeError(f"module 'tffprune.models' has no attribute {name!r}")
