"""Experiment configuration: one frozen dataclass, TOML in, CLI overrides.

Resolution order: the defaults below, then a TOML file (``--config``), then the
options given on the command line. Keys are the option names with ``_`` or
``-``; unknown keys and invalid values are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from tffprune.compression.wire import (
    DOWNLOAD_VALUE_FORMATS,
    POSITION_CODINGS,
    PROBABILITY_BITS,
    VALUE_FORMATS,
)
from tffprune.data.partition import PARTITION_NAMES
from tffprune.models.names import MODEL_NAMES
from tffprune.pruning.policy import METHODS
from tffprune.pruning.schedules import SCHEDULES

MODEL_FILE_SUFFIXES = (".keras", ".h5")


def is_model_reference(text: object) -> bool:
    """Whether ``text`` has the form of a model source (checked when loaded)."""
    return isinstance(text, str) and (
        text in MODEL_NAMES
        or text.endswith(MODEL_FILE_SUFFIXES)
        or (":" in text and all(text.rpartition(":")[::2]))
    )


AGGREGATIONS = ("fedavg", "subfedavg", "fedpm")
# ``tff.learning.optimizers`` by name (`tffprune.learning.optimizers`).
CLIENT_OPTIMIZERS = ("sgd", "sgdm", "adam")
SERVER_OPTIMIZERS = ("sgd", "sgdm", "adam", "yogi")
CLIENT_WEIGHTINGS = ("num_examples", "uniform")
NEW_CLIENTS = ("dense", "subnetwork")
CLIENT_TESTS = ("own", "labels")


class ConfigError(ValueError):
    """An invalid configuration value or file."""


GROUPS = {
    "data": "Data",
    "model": "Model",
    "pruning": "Pruning",
    "federated": "Federated training",
    "communication": "Communication",
    "run": "Run",
}


def option(
    default: Any,
    group: str,
    help: str,  # noqa: A002 - the click word for it
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
) -> Any:
    """A `TrainConfig` field with its one declaration for every front end.

    Args:
        default: The default value.
        group: The concern it belongs to (a key of `GROUPS`).
        help: One sentence for ``--help`` and the docs.
        choices: The allowed values of a string option (validated here and
            offered by the CLI).
        flag: The command-line form of a boolean (``--x/--no-x``).
    """
    return dataclasses.field(
        default=default,
        metadata={"group": group, "help": help, "choices": choices, "flag": flag},
    )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a federated training run.

    Each field declares its default, its concern (`GROUPS`), its help and its
    choices once (`option`); the CLI options, ``--help`` sections, TOML keys
    and validation come from there. ``tffprune train --help`` lists them.
    """

    dataset: str = option(
        "fashion_mnist",
        "data",
        "fashion_mnist, mnist, cifar10, digits, or your .npz with x_train, "
        "y_train, x_test, y_test (any input shape; inputs used as given "
        "unless --scale-inputs).",
    )
    scale_inputs: bool = option(
        False,
        "data",
        "Divide an .npz's integer inputs by their dtype's maximum (uint8 to "
        "[0, 1]); by default they are used as given, for a model that reads "
        "them itself (Embedding, Rescaling). The named data sets are always "
        "in [0, 1].",
        flag="--scale-inputs/--no-scale-inputs",
    )
    data_dir: str | None = option(
        None, "data", "Directory to read the named data set from."
    )
    partition: str = option(
        "iid",
        "data",
        "How examples are split over clients (given: the split saved in a "
        "tffprune.train run's data.npz).",
        (*PARTITION_NAMES, "given"),
    )
    shards_per_client: int = option(2, "data", "For --partition shards.")
    alpha: float = option(
        0.5, "data", "Dirichlet concentration (--partition dirichlet)."
    )
    num_clients: int = option(100, "data", "Number of clients.")
    max_examples: int | None = option(
        None, "data", "Use a random subset of this many training examples."
    )
    model: str = option(
        "fc",
        "model",
        f"{', '.join(MODEL_NAMES)}; or your model: "
        "FILE.py:FUNCTION or MODULE:FUNCTION called as FUNCTION(input_shape, "
        "num_classes) returning a Keras model, or a saved .keras file (its "
        "weights start the run).",
    )
    width_multiplier: float = option(
        1.0,
        "model",
        "resnet12 and jeurkar_resnet12: scales their widths (1.0: 64..512 filters).",
    )
    method: str = option("weight", "pruning", "How clients prune.", METHODS)
    sparsity: float = option(
        0.5, "pruning", "Target sparsity of the pruned kernels, in [0, 1)."
    )
    schedule: str = option(
        "constant",
        "pruning",
        "How the sparsity grows over rounds.",
        tuple(SCHEDULES),
    )
    structured_share: float = option(
        0.5, "pruning", "hybrid: share of the sparsity from whole units/filters."
    )
    step_fraction: float = option(
        0.1,
        "pruning",
        "iterative: share of surviving weights pruned per step (Sub-FedAvg: 0.1).",
    )
    accuracy_threshold: float = option(
        0.0,
        "pruning",
        "subfedavg: keep a new mask only if the client's pruned model is at "
        "least this accurate on its training data (0: off).",
    )
    mask_distance_threshold: float | None = option(
        None,
        "pruning",
        "subfedavg: Sub-FedAvg's reference rule: draw a candidate mask after "
        "the first local epoch and one after the last, and prune only if their "
        "mean Hamming distance exceeds this (reference: 0.0001; needs "
        "local_epochs >= 2).",
    )
    prune_logits: bool = option(
        False,
        "pruning",
        "Prune the logits layer too.",
        flag="--prune-logits/--keep-logits",
    )
    prune_biases: bool = option(
        False,
        "pruning",
        "Prune the biases of the pruned layers too, entry by entry with the "
        "kernels (weight, global-weight, hybrid's weight step), as PyTorch's "
        "global_unstructured over all parameters does.",
        flag="--prune-biases/--keep-biases",
    )
    aggregation: str = option(
        "subfedavg",
        "federated",
        "fedavg: weighted mean, pruned entries as 0; subfedavg: each entry "
        "averaged over the clients that kept it, personal masks; fedpm: the "
        "weights frozen at a seeded random network, clients train which to "
        "keep and upload one sampled mask (the pruning options do not apply).",
        AGGREGATIONS,
    )
    clients_per_round: int = option(10, "federated", "Clients sampled each round.")
    rounds: int = option(10, "federated", "Number of rounds.")
    local_epochs: int = option(1, "federated", "Local epochs per round.")
    batch_size: int = option(32, "federated", "Local batch size.")
    client_optimizer: str | None = option(
        None,
        "federated",
        "The clients' local optimizer (default: sgdm; adam for fedpm's mask "
        "scores, as its code). A model's compiled optimizer is not used.",
        CLIENT_OPTIMIZERS,
    )
    client_learning_rate: float | None = option(
        None,
        "federated",
        "Client learning rate (default: 0.05; adam 0.001, Keras's; 0.1 for fedpm).",
    )
    client_momentum: float = option(
        0.5, "federated", "Client momentum (--client-optimizer sgdm)."
    )
    server_optimizer: str = option(
        "sgd",
        "federated",
        "The server's step on the clients' mean update: sgd at learning rate 1 "
        "is FedAvg / Sub-FedAvg, sgdm FedAvgM, adam FedAdam, yogi FedYogi.",
        SERVER_OPTIMIZERS,
    )
    server_learning_rate: float = option(1.0, "federated", "Server learning rate.")
    server_momentum: float = option(
        0.9, "federated", "Server momentum (--server-optimizer sgdm)."
    )
    server_epsilon: float | None = option(
        None,
        "federated",
        "adam / yogi: the constant added to the denominator (Reddi et al.'s "
        "tau, who tune it from 1e-3; default TFF's: 1e-7 adam, 1e-3 yogi).",
    )
    client_weighting: str | None = option(
        None,
        "federated",
        "Aggregation weights (default: example counts for fedavg, uniform "
        "for subfedavg).",
        CLIENT_WEIGHTINGS,
    )
    new_clients: str = option(
        "dense",
        "federated",
        "subfedavg: what a client seen for the first time starts from: the "
        "whole model (dense, the reference code's way) or the server's "
        "subnetwork at the round's target sparsity (subnetwork: its positions "
        "and values, a fraction of the download).",
        NEW_CLIENTS,
    )
    dropout_rate: float = option(
        0.0,
        "federated",
        "Probability that a sampled client vanishes before its upload arrives.",
    )
    upload_values: str = option(
        "float32",
        "communication",
        "How a client's update (trained minus received) is encoded: int8/4/2 "
        "per-tensor affine, int1 sign and mean magnitude; the server adds what "
        "it decodes to its float32 copy of what it sent.",
        VALUE_FORMATS,
    )
    error_feedback: bool = option(
        True,
        "communication",
        "Each client keeps what its lossy upload dropped and adds it to its "
        "next update (float16 and int formats; float32 drops nothing).",
        flag="--error-feedback/--no-error-feedback",
    )
    download_values: str = option(
        "float32",
        "communication",
        "How the server's values are sent down: a Sub-FedAvg client gets only "
        "its own subnetwork's values (it holds the positions), a FedAvg client "
        "the model's nonzeros (int8/int4 per-tensor affine); decoded on the "
        "client, so the error is part of training, never of the server's "
        "float32 weights.",
        DOWNLOAD_VALUE_FORMATS,
    )
    probability_bits: int = option(
        32,
        "communication",
        "fedpm: the bits of each probability sent down (32: float32; fewer: "
        "the midpoint of its bin, which the upload is then coded under).",
    )
    prior_reset: int = option(
        1,
        "communication",
        "fedpm: the server's Beta posterior restarts every this many rounds "
        "(1: every round, FedPM's code's; 0: never).",
    )
    positions: str = option(
        "auto",
        "communication",
        "How the positions of kept entries are encoded (auto: the smaller).",
        POSITION_CODINGS,
    )
    verify_uploads: bool = option(
        False,
        "communication",
        "Check every round: encode and decode every upload with the real "
        "codec and aggregate them in NumPy (slower; training is the same).",
        flag="--verify-uploads/--no-verify-uploads",
    )
    eval_every: int = option(1, "run", "Evaluate every N rounds (and the last).")
    unpruned_every: int = option(
        10,
        "run",
        "When the central model is pruned, also score the server's weights "
        "as they are (central_accuracy_unpruned, one more pass over the test "
        "set) in the evaluated rounds that are multiples of N, and the last.",
    )
    finetune_baseline: bool = option(
        False,
        "run",
        "Also report each client's model after local fine-tuning on its own "
        "data: the global model (fedavg) or its subnetwork (subfedavg), and "
        "with --personal-models its own model, so FedAvg + fine-tuning and "
        "Sub-FedAvg + the same fine-tuning are measured alike.",
        flag="--finetune-baseline/--no-finetune-baseline",
    )
    finetune_epochs: int = option(1, "run", "Local epochs of the fine-tuning baseline.")
    personal_models: bool = option(
        False,
        "run",
        "Keep each client's own model after its last local training and "
        "pruning (its nonzeros) and report personal_accuracy, as the Sub-FedAvg "
        "reference code does (costs one more copy of each sampled client's "
        "weights out of the round); fedpm: the seed's weights at the mask the "
        "client uploaded.",
        flag="--personal-models/--no-personal-models",
    )
    client_test: str = option(
        "own",
        "run",
        "A client's test data for personalized and personal accuracy: its "
        "own held-out split, or every central test example of the labels it "
        "holds (labels: the Sub-FedAvg reference code's).",
        CLIENT_TESTS,
    )
    checkpoint_every: int = option(1, "run", "Checkpoint every N rounds.")
    seed: int = option(
        0, "run", "Seed of the data split, sampling, initialization, shuffling."
    )

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset must be a name or a path, got {self.dataset!r}")
        if not is_model_reference(self.model):
            raise ConfigError(
                f"unknown model {self.model!r}; expected one of "
                f"{', '.join(MODEL_NAMES)}, file.py:function, "
                "package.module:function or a .keras file"
            )
        for field in dataclasses.fields(self):
            choices = field.metadata["choices"]
            value = getattr(self, field.name)
            if choices is not None and value is not None:
                _choice(field.name, value, choices)
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity}")
        for name in (
            "num_clients",
            "clients_per_round",
            "rounds",
            "local_epochs",
            "batch_size",
            "shards_per_client",
            "eval_every",
            "unpruned_every",
            "checkpoint_every",
            "finetune_epochs",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**32
        ):
            raise ConfigError(
                f"seed must be a whole number in [0, {2**32 - 1}], got {self.seed!r}"
            )
        if self.new_clients == "subnetwork" and self.aggregation != "subfedavg":
            raise ConfigError(
                "new_clients 'subnetwork' needs aggregation 'subfedavg' (FedAvg "
                "clients have no subnetwork of their own)"
            )
        if self.clients_per_round > self.num_clients:
            raise ConfigError(
                f"clients_per_round ({self.clients_per_round}) cannot exceed "
                f"num_clients ({self.num_clients})"
            )
        if self.probability_bits not in PROBABILITY_BITS:
            allowed = ", ".join(map(str, PROBABILITY_BITS))
            raise ConfigError(
                f"probability_bits must be one of {allowed}, got "
                f"{self.probability_bits!r}"
            )
        if (
            isinstance(self.prior_reset, bool)
            or not isinstance(self.prior_reset, int)
            or self.prior_reset < 0
        ):
            raise ConfigError(
                f"prior_reset must be a whole number >= 0, got {self.prior_reset!r}"
            )
        rates = {
            "client": self.resolved_client_learning_rate,
            "server": self.server_learning_rate,
        }
        for side, rate in rates.items():
            momentum = getattr(self, f"{side}_momentum")
            if not 0 < rate < float("inf"):
                raise ConfigError(
                    f"{side}_learning_rate must be > 0 and finite, got {rate}"
                )
            if not 0.0 <= momentum < 1.0:
                raise ConfigError(f"{side}_momentum must be in [0, 1), got {momentum}")
        if self.server_epsilon is not None and not 0 < self.server_epsilon < 1:
            raise ConfigError(
                f"server_epsilon must be in (0, 1), got {self.server_epsilon}"
            )
        if not 0 < self.alpha < float("inf"):
            raise ConfigError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.structured_share <= 1.0:
            raise ConfigError(
                f"structured_share must be in [0, 1], got {self.structured_share}"
            )
        if not 0.0 < self.step_fraction <= 1.0:
            raise ConfigError(
                f"step_fraction must be in (0, 1], got {self.step_fraction}"
            )
        if not 0 < self.width_multiplier <= 16:
            raise ConfigError(
                f"width_multiplier must be in (0, 16], got {self.width_multiplier}"
            )
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(
                f"dropout_rate must be in [0, 1), got {self.dropout_rate}"
            )
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ConfigError(
                f"accuracy_threshold must be in [0, 1], got {self.accuracy_threshold}"
            )
        if self.mask_distance_threshold is not None:
            if not 0.0 <= self.mask_distance_threshold < 1.0:
                raise ConfigError(
                    "mask_distance_threshold must be in [0, 1), got "
                    f"{self.mask_distance_threshold}"
                )
            if self.aggregation != "subfedavg":
                raise ConfigError(
                    "mask_distance_threshold needs aggregation 'subfedavg' (the "
                    "rule decides when a client's own mask takes a step)"
                )
            if self.local_epochs < 2:
                raise ConfigError(
                    "mask_distance_threshold needs local_epochs >= 2 (it compares "
                    "the masks after the first and the last local epoch)"
                )
        if self.max_examples is not None and self.max_examples < self.num_clients * 2:
            raise ConfigError(
                f"max_examples ({self.max_examples}) must give every one of "
                f"{self.num_clients} clients at least 2 examples"
            )

    @property
    def resolved_client_weighting(self) -> str:
        """The weighting in effect (FedAvg: example counts; Sub-FedAvg: uniform)."""
        if self.client_weighting is not None:
            return self.client_weighting
        return "num_examples" if self.aggregation == "fedavg" else "uniform"

    @property
    def algorithm_description(self) -> str:
        """The algorithm in a few words, for a run's first line and plots."""
        if self.aggregation == "fedpm":
            return (
                f"fedpm (masks over a network frozen at seed {self.seed}, "
                f"probabilities down at {self.probability_bits} bits)"
            )
        return (
            f"{self.aggregation} / {self.method} to sparsity {self.sparsity} "
            f"({self.schedule})"
        )

    @property
    def resolved_client_optimizer(self) -> str:
        """The clients' optimizer in effect (sgdm; adam for fedpm)."""
        if self.client_optimizer is not None:
            return self.client_optimizer
        return "adam" if self.aggregation == "fedpm" else "sgdm"

    @property
    def resolved_client_learning_rate(self) -> float:
        """The clients' learning rate in effect.

        0.05; with ``adam`` 0.001, Keras's default (Adam at 0.05 throws fc's
        weights off at the first step); 0.1 for fedpm's mask scores (its
        code's).
        """
        if self.client_learning_rate is not None:
            return self.client_learning_rate
        if self.aggregation == "fedpm":
            return 0.1
        return 0.001 if self.resolved_client_optimizer == "adam" else 0.05

    @property
    def unused_settings(self) -> list[str]:
        """Settings moved from their defaults that this run does not use.

        One line each, for the run to say (an option given is never dropped
        in silence): the pruning and value-format options under fedpm, its
        probability options elsewhere, a momentum without its optimizer.
        """
        unused = {
            name: reason
            for names, reason, applies in _SETTING_SCOPES
            if not applies(self)
            for name in names
        }
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return [
            f"--{name.replace('_', '-')} {getattr(self, name)} is not used: {reason}"
            for name, reason in unused.items()
            if getattr(self, name) not in (defaults[name], _NO_PRUNING.get(name))
        ]

    @property
    def uses_error_feedback(self) -> bool:
        """Whether clients keep residuals (a lossy upload format asked for it)."""
        return self.error_feedback and self.upload_values != "float32"

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON/TOML-ready; ``None`` values dropped for TOML)."""
        return dataclasses.asdict(self)

    @property
    def model_options(self) -> dict[str, float]:
        """Builder options for `tffprune.models.build_model`."""
        if self.model in ("resnet12", "jeurkar_resnet12"):
            return {"width_multiplier": self.width_multiplier}
        return {}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


# What says "no pruning" as well as the default does (a sweep's fedpm point).
_NO_PRUNING = {"method": "none", "sparsity": 0.0}

_SETTING_SCOPES = (
    # (settings, why a run may not use them, whether this run does)
    (
        (
            "method",
            "sparsity",
            "schedule",
            "structured_share",
            "step_fraction",
            "accuracy_threshold",
            "prune_logits",
            "prune_biases",
            "upload_values",
            "download_values",
            "positions",
            "error_feedback",
            "client_weighting",
        ),
        "fedpm's clients learn which weights to keep and upload masks",
        lambda config: config.aggregation != "fedpm",
    ),
    (
        ("server_optimizer", "server_learning_rate"),
        "fedpm's server keeps a Beta posterior, not an optimizer",
        lambda config: config.aggregation != "fedpm",
    ),
    (
        ("probability_bits", "prior_reset"),
        "only --aggregation fedpm sends probabilities",
        lambda config: config.aggregation == "fedpm",
    ),
    (
        ("client_momentum",),
        "only --client-optimizer sgdm has a momentum",
        lambda config: config.resolved_client_optimizer == "sgdm",
    ),
    (
        ("server_momentum",),
        "only --server-optimizer sgdm has a momentum",
        lambda config: (
            config.aggregation != "fedpm" and config.server_optimizer == "sgdm"
        ),
    ),
    (
        ("server_epsilon",),
        "only --server-optimizer adam and yogi have an epsilon",
        lambda config: (
            config.aggregation != "fedpm"
            and config.server_optimizer in ("adam", "yogi")
        ),
    ),
)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"unknown {name} {value!r}; expected one of {', '.join(choices)}"
        )


_FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
OPTIONAL_NUMBERS = {
    "max_examples": int,
    "mask_distance_threshold": float,
    "client_learning_rate": float,
    "server_epsilon": float,
}
"""The type of the number options whose default is ``None`` (off)."""
COMMAND_LINE = "command line"
"""The ``source`` of `config_from_mapping` whose errors name ``--options``."""


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    kind = type(default) if default is not None else OPTIONAL_NUMBERS.get(name)
    if value is None:
        return None
    if name in ("data_dir", "client_weighting"):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def config_from_mapping(
    values: dict[str, Any], base: TrainConfig | None = None, source: str = "config"
) -> TrainConfig:
    """Applies ``values`` (keys with ``_`` or ``-``) on top of ``base``.

    Raises:
        ConfigError: On an unknown key or an invalid value.
    """
    changes = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigError(
                f"{source}: unknown key {key!r}; valid keys: "
                f"{', '.join(sorted(_FIELDS))}"
            )
        try:
            changes[name] = _coerce(name, value)
        except ConfigError as error:
            raise ConfigError(_located(source, error)) from None
    try:
        return dataclasses.replace(base or TrainConfig(), **changes)
    except ConfigError as error:
        raise ConfigError(_located(source, error)) from None


_FIELD_WORDS = re.compile(
    r"\b(" + "|".join(sorted(_FIELDS, key=len, reverse=True)) + r")\b"
)


def _located(source: str, error: ConfigError) -> str:
    """The error prefixed by its source; on the command line, options by flag."""
    if source != COMMAND_LINE:
        return f"{source}: {error}"
    return _FIELD_WORDS.sub(lambda m: "--" + m.group(1).replace("_", "-"), str(error))


def load_toml(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Reads a TOML file of `TrainConfig` keys (a ``[train]`` table or top level).

    Raises:
        ConfigError: If the file is missing, not valid TOML, or has unknown keys
            or invalid values.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    if isinstance(data.get("train"), dict):
        outside = sorted(key for key in data if key != "train")
        if outside:
            raise ConfigError(
                f"{path}: keys {', '.join(outside)} are outside the [train] table; "
                "put every key in [train] or none"
            )
        data = data["train"]
    return config_from_mapping(data, base, source=str(path))


def to_toml(config: TrainConfig) -> str:
    """Writes a config as TOML (a ``[train]`` table; unset optional keys left out)."""
    lines = ["[train]"]
    for name, value in config.to_dict().items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            text = repr(value)
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"
