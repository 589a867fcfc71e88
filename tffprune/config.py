"""Experiment configuration: one frozen dataclass, TOML in, CLI overrides.

Resolution order: the defaults below, then a TOML file (``--config``), then the
options given on the command line. Keys are the option names with ``_`` or
``-``; unknown keys and invalid values are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from tffprune.compression.wire import POSITION_CODINGS, VALUE_FORMATS
from tffprune.data.partition import PARTITION_NAMES
from tffprune.models.builders import MODEL_NAMES
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


AGGREGATIONS = ("fedavg", "subfedavg")
CLIENT_WEIGHTINGS = ("num_examples", "uniform")


class ConfigError(ValueError):
    """An invalid configuration value or file."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a federated training run.

    Attributes:
        dataset: Data set name, or the path of an ``.npz`` with ``x_train,
            y_train, x_test, y_test``.
        data_dir: Directory to read a named data set from.
        model: Built-in model name, ``file.py:function`` or
            ``package.module:function`` (called as ``function(input_shape,
            num_classes)``), or a saved ``.keras`` file.
        width_multiplier: Scales the widths of ``resnet12`` (1.0: 64..512
            filters; smaller for runs on small machines). Other models ignore
            it.
        method: Client pruning method (``none`` for dense training).
        sparsity: Target sparsity of the prunable kernels, in [0, 1).
        schedule: ``constant``, ``polynomial`` or ``iterative``.
        aggregation: ``fedavg`` (weighted mean of rebuilt dense tensors) or
            ``subfedavg`` (masked mean, personal masks kept across rounds).
        partition: ``iid``, ``shards`` or ``dirichlet``.
        shards_per_client: Shards per client for ``shards``.
        alpha: Dirichlet concentration for ``dirichlet``.
        num_clients: Number of clients.
        clients_per_round: Clients sampled each round.
        rounds: Number of rounds.
        local_epochs: Local epochs per round.
        batch_size: Local batch size.
        client_learning_rate: Client SGD learning rate.
        client_momentum: Client SGD momentum.
        client_weighting: ``num_examples`` or ``uniform`` (None: FedAvg uses
            example counts, Sub-FedAvg is unweighted as in its paper).
        structured_share: For ``hybrid``: share of the sparsity reached by
            whole units/filters.
        step_fraction: For ``iterative``: share of surviving weights pruned per
            accepted step (Sub-FedAvg: 0.1).
        accuracy_threshold: Sub-FedAvg's guard: a client keeps a new mask only
            if its pruned model's accuracy on its own training data is at least
            this (0 disables).
        prune_logits: Whether the logits layer is prunable.
        upload_values: How uploaded values are sent: ``float32``, ``float16``
            or ``int8`` (per-tensor affine); the server aggregates the decoded
            values, so quantization error is part of training.
        positions: How kept positions are sent: ``auto`` (smaller per
            tensor), ``bitmap`` or ``gaps`` (Golomb-Rice).
        dropout_rate: Probability that a sampled client vanishes mid-round
            (after training, before its upload arrives); simulates unreliable
            devices.
        verify_uploads: Check every round against the reference: each
            upload is encoded and decoded with the real codec (checksum and
            all) and the decoded uploads are aggregated in NumPy; a byte
            count or a weight that differs stops the run. Slower (the trained
            values leave the TFF computation); training is the same.
        max_examples: Partition only a random subset of this many training
            examples (quick runs).
        eval_every: Evaluate every this many rounds (and always the last).
        finetune_baseline: Also report FedAvg + one epoch of local fine-tuning
            (personalized baseline) at each evaluation.
        checkpoint_every: Write a checkpoint every this many rounds.
        seed: Seed for data split, sampling, initialization and shuffling.
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    model: str = "fc"
    width_multiplier: float = 1.0
    method: str = "weight"
    sparsity: float = 0.5
    schedule: str = "constant"
    aggregation: str = "subfedavg"
    partition: str = "iid"
    shards_per_client: int = 2
    alpha: float = 0.5
    num_clients: int = 100
    clients_per_round: int = 10
    rounds: int = 10
    local_epochs: int = 1
    batch_size: int = 32
    client_learning_rate: float = 0.05
    client_momentum: float = 0.5
    client_weighting: str | None = None
    structured_share: float = 0.5
    step_fraction: float = 0.1
    accuracy_threshold: float = 0.0
    prune_logits: bool = False
    upload_values: str = "float32"
    positions: str = "auto"
    dropout_rate: float = 0.0
    verify_uploads: bool = False
    max_examples: int | None = None
    eval_every: int = 1
    finetune_baseline: bool = False
    checkpoint_every: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset must be a name or a path, got {self.dataset!r}")
        if not is_model_reference(self.model):
            raise ConfigError(
                f"unknown model {self.model!r}; expected one of "
                f"{', '.join(MODEL_NAMES)}, file.py:function, "
                "package.module:function or a .keras file"
            )
        _choice("method", self.method, METHODS)
        _choice("schedule", self.schedule, tuple(SCHEDULES))
        _choice("aggregation", self.aggregation, AGGREGATIONS)
        _choice("partition", self.partition, PARTITION_NAMES)
        _choice("upload_values", self.upload_values, VALUE_FORMATS)
        _choice("positions", self.positions, POSITION_CODINGS)
        if self.client_weighting is not None:
            _choice("client_weighting", self.client_weighting, CLIENT_WEIGHTINGS)
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
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.clients_per_round > self.num_clients:
            raise ConfigError(
                f"clients_per_round ({self.clients_per_round}) cannot exceed "
                f"num_clients ({self.num_clients})"
            )
        if not self.client_learning_rate > 0:
            raise ConfigError(
                f"client_learning_rate must be > 0, got {self.client_learning_rate}"
            )
        if not 0.0 <= self.client_momentum < 1.0:
            raise ConfigError(
                f"client_momentum must be in [0, 1), got {self.client_momentum}"
            )
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.structured_share <= 1.0:
            raise ConfigError(
                f"structured_share must be in [0, 1], got {self.structured_share}"
            )
        if not 0.0 < self.step_fraction <= 1.0:
            raise ConfigError(
                f"step_fraction must be in (0, 1], got {self.step_fraction}"
            )
        if not self.width_multiplier > 0:
            raise ConfigError(
                f"width_multiplier must be > 0, got {self.width_multiplier}"
            )
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(
                f"dropout_rate must be in [0, 1), got {self.dropout_rate}"
            )
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            raise ConfigError(
                f"accuracy_threshold must be in [0, 1], got {self.accuracy_threshold}"
            )
        if self.max_examples is not None and self.max_examples < self.num_clients * 2:
            raise ConfigError(
                f"max_examples ({self.max_examples}) must give every one of "
                f"{self.num_clients} clients at least 2 examples"
            )

    @property
    def resolved_client_weighting(self) -> str:
        """The weighting in effect (FedAvg: example counts; Sub-FedAvg: uniform)."""
        _choice("upload_values", self.upload_values, VALUE_FORMATS)
        _choice("positions", self.positions, POSITION_CODINGS)
        if self.client_weighting is not None:
            return self.client_weighting
        return "num_examples" if self.aggregation == "fedavg" else "uniform"

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (JSON/TOML-ready; ``None`` values dropped for TOML)."""
        return dataclasses.asdict(self)

    @property
    def model_options(self) -> dict[str, float]:
        """Builder options for `tffprune.models.build_model`."""
        if self.model == "resnet12":
            return {"width_multiplier": self.width_multiplier}
        return {}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"unknown {name} {value!r}; expected one of {', '.join(choices)}"
        )


_FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    kind = type(default) if default is not None else None
    if value is None:
        return None
    if name in ("data_dir", "client_weighting"):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if name == "max_examples" or kind is int:
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
            raise ConfigError(f"{source}: {error}") from None
    try:
        return dataclasses.replace(base or TrainConfig(), **changes)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


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
    if "train" in data and isinstance(data["train"], dict):
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
