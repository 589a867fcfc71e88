"""tffprune: communication-efficient federated learning with pruned models.

The Python API (imported on first use, so ``import tffprune`` stays fast):

* `tffprune.train`: federated training of your Keras model on your data;
* `tffprune.data`: ``from_arrays``, ``from_client_arrays``,
  ``from_client_data``, ``load_dataset``;
* `tffprune.pruning`: NumPy masks, `PruningPolicy`, schedules, tfmot interop;
* `tffprune.learning`: the rounds as TFF processes for your own TFF code
  (``build_fedavg``, ``build_sub_fedavg``, ``compose_round`` and its roles);
* `tffprune.TrainConfig`: every option of a run.
"""

import importlib
import os
import sys
import warnings

# TensorFlow's C++ start-up and graph-optimizer chatter (CUDA probes, "Starting
# new session" per compiled computation), kept off the terminal as the CLI
# does. TensorFlow reads this once, when it is imported: import tffprune first,
# or set TF_CPP_MIN_LOG_LEVEL yourself (0 shows everything).
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# google.rpc (imported by TFF) imports pkg_resources, which setuptools warns
# about on every start; the setuptools pin that keeps tensorboard working
# (pyproject.toml) is ours, so the warning is noise to our users.
warnings.filterwarnings(
    "ignore", message="pkg_resources is deprecated", category=UserWarning
)

__version__ = "0.1.0"

__all__ = [
    "TrainConfig",
    "data",
    "export",
    "learning",
    "models",
    "pruning",
    "train",
]

_SUBMODULES = {"data", "export", "learning", "models", "pruning"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tffprune.{name}")
    if name == "train":
        from tffprune.api import train

        return train
    if name == "TrainConfig":
        from tffprune.config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'tffprune' has no attribute {name!r}")
