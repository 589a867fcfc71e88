"""One client's model out of a ``tffprune train`` run, for ``export --client``.

Sub-FedAvg's point is a personalized subnetwork per client. A run's final
``checkpoint.npz`` holds, per client, what makes its model:

* ``own model``: with ``--personal-models``, the client's own weights after
  its last aggregated round (`tffprune.fl.algorithm.ClientState.personal_model`);
* ``subnetwork``: the server's weights at the client's mask (the model the
  run's personalized accuracy evaluates, `tffprune.fl.evaluation.personal_weights`);
* ``global model``: a client with neither (a FedAvg run, or a client never
  sampled) runs the server's model, as the run's evaluation does.

Its data are rebuilt from the run's configuration and checked against the
checkpoint's data fingerprint: its training split calibrates int8, its own
test split (``--client-test``'s choice) measures accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from tffprune.checkpoint import CheckpointError, read_state
from tffprune.config import ConfigError, load_toml
from tffprune.data.datasets import PYTHON_DATA_NAMES, Dataset
from tffprune.data.formats import DataError
from tffprune.pruning.policy import apply_masks


@dataclasses.dataclass(frozen=True)
class ClientModel:
    """What ``export --client`` converts.

    Attributes:
        client: The client's id (as ``clients.csv`` names it).
        index: Its position among the run's clients.
        kind: ``own model``, ``subnetwork`` or ``global model``.
        weights: Every weight (trainable then non-trainable), or None for the
            global model (the saved model's own weights).
        rounds_participated: Rounds whose upload the server aggregated.
        sparsity: Sparsity of its prunable kernels in its last upload.
    """

    client: str
    index: int
    kind: str
    weights: list[np.ndarray] | None
    rounds_participated: int
    sparsity: float


def _run_parts(run_dir: Path):
    """The run's configuration, final state and checkpoint identity."""
    if not (run_dir / "config.toml").is_file():
        raise ValueError(
            f"--client needs a tffprune train run directory; {run_dir} has no "
            "config.toml"
        )
    try:
        config = load_toml(run_dir / "config.toml")
        state, identity = read_state(run_dir / "checkpoint.npz")
    except (ConfigError, CheckpointError) as error:
        raise ValueError(f"--client: {error}") from None
    return config, state, identity


def read_client_model(run_dir: str | Path, client: str) -> tuple[ClientModel, object]:
    """One client's model and the run's configuration.

    Raises:
        ValueError: If ``run_dir`` is not a finished ``tffprune train`` run
            or has no client ``client`` (the message lists some ids).
    """
    run_dir = Path(run_dir)
    config, state, identity = _run_parts(run_dir)
    ids = [str(i) for i in identity.get("client_ids") or range(len(state.clients))]
    if str(client) not in ids:
        shown = ", ".join(ids[:5]) + (
            f", ... ({len(ids)} clients)" if len(ids) > 5 else ""
        )
        raise ValueError(
            f"--client: the run has no client {client!r} (clients: {shown})"
        )
    index = ids.index(str(client))
    held = state.clients[index]
    server = state.server_weights
    if held.personal_model is not None:
        shapes = [tuple(w.shape) for w in server]
        kind, weights = "own model", held.personal_model.expand(shapes)
    elif held.mask is not None:
        count = len(held.mask)
        kind = "subnetwork"
        weights = apply_masks(server[:count], held.mask) + list(server[count:])
    else:
        kind, weights = "global model", None
    model = ClientModel(
        str(client),
        index,
        kind,
        weights,
        held.rounds_participated,
        float(held.sparsity),
    )
    return model, (config, identity)


def set_weights(model: tf.keras.Model, weights: list[np.ndarray]) -> None:
    """Assigns ``weights`` (trainable then non-trainable) to ``model``.

    Raises:
        ValueError: If they do not fit the model (another architecture).
    """
    variables = model.trainable_weights + model.non_trainable_weights
    shapes = [tuple(v.shape) for v in variables]
    given = [tuple(w.shape) for w in weights]
    if shapes != given:
        raise ValueError(
            "--client: the checkpoint's weights do not fit the saved model "
            f"({len(given)} weights against {len(shapes)}); was the model replaced?"
        )
    for variable, value in zip(variables, weights, strict=True):
        variable.assign(value)


def client_dataset(config, identity: dict, index: int, client: str) -> Dataset:
    """The client's own data: training split as ``x_train``, test as ``x_test``.

    Raises:
        ValueError: If the run's data cannot be rebuilt (arrays passed in
            Python) or are not the data the run trained on.
    """
    from tffprune.run import load_federated_data

    if config.dataset in PYTHON_DATA_NAMES:
        raise ValueError(
            "--client: the run trained on arrays passed in Python, which export "
            "cannot split again; pass that client's arrays as --representative-data"
        )
    try:
        data = load_federated_data(config)
    except DataError as error:
        raise ValueError(f"--client: {error}") from None
    expected = identity.get("data_fingerprint")
    if expected is not None and data.fingerprint() != expected:
        raise ValueError(
            f"--client: {config.dataset} is not the data the run trained on (its "
            "examples or split differ); pass the client's arrays as "
            "--representative-data"
        )
    x_train, y_train = data.client_train(index)
    if config.client_test == "labels":
        x_test, y_test = data.client_test_of_labels(index)
    else:
        x_test, y_test = data.client_test(index)
    return Dataset(
        name=f"client {client} of {data.dataset.name}",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=data.dataset.num_classes,
        source=data.dataset.source,
        notes=data.dataset.notes,
        inputs_scaled=data.dataset.inputs_scaled,
    )
