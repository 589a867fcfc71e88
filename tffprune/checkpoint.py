"""Checkpoints of a federated run: one atomic ``.npz`` file.

Holds the server weights, every client's mask (bit-packed) and sparsity, the
sampler's random state, the metrics so far and the configuration, so that a
resumed run continues exactly where the checkpoint was taken. The file is
written to a temporary name and renamed, so a crash never leaves a torn
checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tffprune.fl.algorithm import ClientState, ServerState
from tffprune.fl.training import TrainerState
from tffprune.reporting.files import atomic_path

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or from another configuration."""


def save_checkpoint(
    path: str | Path, state: TrainerState, config: dict, shapes: list[tuple]
) -> None:
    """Writes ``state`` atomically to ``path``."""
    import tensorflow as tf

    arrays: dict[str, np.ndarray] = {}
    for index, weight in enumerate(state.server_weights):
        arrays[f"server_{index}"] = weight
    aggregator = tf.nest.flatten(state.server.aggregator)
    for index, value in enumerate(aggregator):
        arrays[f"aggregator_{index}"] = np.asarray(value)
    num_trainable = None
    for client, client_state in enumerate(state.clients):
        if client_state.mask is None:
            continue
        num_trainable = len(client_state.mask)
        flat = np.concatenate([m.ravel() for m in client_state.mask])
        arrays[f"mask_{client}"] = np.packbits(flat)
    meta = {
        "format_version": FORMAT_VERSION,
        "round": state.round,
        "config": config,
        "shapes": [list(s) for s in shapes],
        "num_trainable": num_trainable,
        "aggregator_leaves": len(aggregator),
        "sparsity": [c.sparsity for c in state.clients],
        "rounds_participated": [c.rounds_participated for c in state.clients],
        "sampler_state": state.sampler_state,
        "metrics": state.metrics,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez(handle, **arrays)


def load_checkpoint(path: str | Path, config: dict) -> TrainerState:
    """Reads a checkpoint and checks it belongs to ``config``.

    Args:
        path: The checkpoint file.
        config: The run's configuration (as `TrainConfig.to_dict`).

    Returns:
        The state; its aggregator state is the list of its leaves (`Trainer`
        packs them into the aggregator's structure).

    Raises:
        CheckpointError: If the file is missing or unreadable, or was written
            with a different configuration (only ``rounds`` may differ, so a
            finished run can be extended).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes())
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} is unreadable: {error}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has an unknown format version")
    saved = {k: v for k, v in meta["config"].items() if k != "rounds"}
    wanted = {k: v for k, v in config.items() if k != "rounds"}
    if saved != wanted:
        differences = sorted(k for k in wanted if saved.get(k) != wanted[k])
        raise CheckpointError(
            f"checkpoint {path} was written with a different configuration "
            f"(differs in: {', '.join(differences)})"
        )
    shapes = [tuple(s) for s in meta["shapes"]]
    server = [arrays[f"server_{i}"] for i in range(len(shapes))]
    clients = []
    num_trainable = meta["num_trainable"]
    for client, sparsity in enumerate(meta["sparsity"]):
        mask = None
        if f"mask_{client}" in arrays:
            sizes = [int(np.prod(s)) for s in shapes[:num_trainable]]
            flat = np.unpackbits(arrays[f"mask_{client}"], count=sum(sizes)).astype(
                bool
            )
            parts = np.split(flat, np.cumsum(sizes)[:-1])
            mask = [
                p.reshape(s) for p, s in zip(parts, shapes[:num_trainable], strict=True)
            ]
        clients.append(
            ClientState(
                mask=mask,
                sparsity=sparsity,
                rounds_participated=meta["rounds_participated"][client],
            )
        )
    leaves = [arrays[f"aggregator_{i}"] for i in range(meta["aggregator_leaves"])]
    return TrainerState(
        round=meta["round"],
        server=ServerState(server, leaves),
        clients=clients,
        sampler_state=meta["sampler_state"],
        metrics=meta["metrics"],
    )
