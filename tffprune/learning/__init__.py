"""tffprune's rounds as TFF processes you compose in your own TFF code.

The builders (`build_fedavg`, `build_sub_fedavg`, `build_fedpm`) are shaped like
``tff.learning.algorithms``; `compose_round` and the role builders are the
pieces they are made of, for a variant that swaps one role. This package is
the orchestration layer: with `tffprune.fl.process` and
`tffprune.fl.runtime`, the only code that imports TFF.
"""

from tffprune.fl.messages import ClientInput, ClientOutput, Download, PruningStep
from tffprune.learning.aggregators import (
    MaskedMeanFactory,
    WeightedMeanFactory,
    build_round_aggregator,
)
from tffprune.learning.algorithms import (
    build_fedavg,
    build_round,
    build_sub_fedavg,
    client_input_type,
)
from tffprune.learning.client_data import (
    CLIENT_FILE,
    client_file_dataset,
    with_client_files,
)
from tffprune.learning.client_states import ClientStates
from tffprune.learning.client_works import (
    build_client_work,
    build_pruning_client_work,
)
from tffprune.learning.composers import RoundOutput, compose_round
from tffprune.learning.distributors import build_download_distributor
from tffprune.learning.fedpm import FedPMProcess, build_fedpm
from tffprune.learning.finalizers import build_masked_optimizer_finalizer
from tffprune.learning.optimizers import build_optimizer

__all__ = [
    "CLIENT_FILE",
    "ClientInput",
    "ClientOutput",
    "ClientStates",
    "Download",
    "FedPMProcess",
    "MaskedMeanFactory",
    "PruningStep",
    "RoundOutput",
    "WeightedMeanFactory",
    "build_client_work",
    "build_download_distributor",
    "build_fedavg",
    "build_fedpm",
    "build_masked_optimizer_finalizer",
    "build_optimizer",
    "build_pruning_client_work",
    "build_round",
    "build_round_aggregator",
    "build_sub_fedavg",
    "client_file_dataset",
    "client_input_type",
    "compose_round",
    "with_client_files",
]
