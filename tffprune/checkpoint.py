"""Checkpoints of a federated run: atomic ``.npz`` files, the last two kept.

Holds the server weights, every client's mask (bit-packed), the name of its
error-feedback residual's file (the files themselves are in the run's
``residuals/`` directory, written by the clients' work:
`tffprune.fl.residual_store`), its personal model (the values at its
positions, exact), sparsity and bytes, the sampler's random state, the
metrics so far, the rounds the schedule spans, FedPM's downloads that clients
still hold (each round's value table, and per client the round it holds) and
the configuration, so that a resumed run continues exactly where the
checkpoint was taken. The file is
written to a temporary name and renamed, so a crash never leaves a torn
checkpoint; the one it replaces is kept as ``checkpoint.previous.npz``. A
checkpoint damaged later (truncated, corrupt, empty, deleted) is named as
such, set aside as ``checkpoint.damaged.npz``, and the run resumes from the
previous one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tffprune.compression.compact import CompactTensors
from tffprune.compression.dictionary import ValueTable
from tffprune.config import TrainConfig
from tffprune.fl.algorithm import ClientState, ServerState
from tffprune.fl.residual_store import ResidualStore
from tffprune.fl.training import TrainerState
from tffprune.pruning.packed_masks import PackedMasks, packed_size
from tffprune.reporting.files import TEMPORARY_MARK, atomic_path

CHECKPOINT_NAME = "checkpoint.npz"
RESIDUAL_DIRECTORY = "residuals"
"""The run directory's folder of residual files (`tffprune.fl.residual_store`)."""
# Per-client tensors kept as positions and values (`CompactTensors`).
COMPACT_FIELDS = ("personal_model",)
FORMAT_VERSION = 6
# Version 2 kept residuals in the checkpoint (as positions and values); they
# are moved to residual files when such a checkpoint is read. Versions 2 and 3
# kept the aggregator's state alone; 4 keeps every role's (the server
# optimizer's moments too); 5 the downloads FedPM's clients hold. Up to 5 a
# client's masks were one flat bit array (NumPy's big-endian `packbits`); 6
# keeps each weight's `PackedMasks` bytes, as the client holds them.
READABLE_VERSIONS = (2, 3, 4, 5, 6)
_PER_WEIGHT_MASKS = 6
_OPTION_DEFAULTS = {
    field.name: field.default for field in dataclasses.fields(TrainConfig)
}


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or from another configuration."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint is missing, truncated, corrupt or of an unknown format."""


_IDENTITY_NAMES = {
    "data_fingerprint": "the data (examples, labels or their split over clients)",
    "client_ids": "the client ids",
    "model_fingerprint": "the model's file (edited since)",
}


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def _keep_as_previous(path: Path) -> None:
    """Keeps the current checkpoint under `previous_path`, atomically."""
    if not path.is_file():
        return
    previous = previous_path(path)
    staging = previous.with_name(f".{previous.stem}{TEMPORARY_MARK}{previous.suffix}")
    staging.unlink(missing_ok=True)
    try:
        os.link(path, staging)  # the same bytes under a second name
    except OSError:
        shutil.copyfile(path, staging)
    os.replace(staging, previous)


def save_checkpoint(
    path: str | Path, state: TrainerState, config: dict, shapes: list[tuple]
) -> None:
    """Writes ``state`` atomically to ``path``."""
    import tensorflow as tf

    arrays: dict[str, np.ndarray] = {}
    for index, weight in enumerate(state.server_weights):
        arrays[f"server_{index}"] = weight
    roles = tf.nest.flatten(state.server.roles)
    for index, value in enumerate(roles):
        arrays[f"role_{index}"] = np.asarray(value)
    for round_number, table in state.server.held_downloads.items():
        arrays[f"held_download_values_{round_number}"] = table.values
        arrays[f"held_download_indices_{round_number}"] = table.packed_indices()
    num_trainable = None
    for client, client_state in enumerate(state.clients):
        for name in COMPACT_FIELDS:
            stored = getattr(client_state, name)
            if stored is not None:
                arrays[f"{name}_positions_{client}"] = stored.positions
                arrays[f"{name}_values_{client}"] = stored.values
        if client_state.mask is None:
            continue
        # Its masks as it keeps them: each weight's packed bytes, in turn.
        packed = PackedMasks.of(client_state.mask).packed
        num_trainable = len(packed)
        arrays[f"mask_{client}"] = np.concatenate(packed)
    meta = {
        "format_version": FORMAT_VERSION,
        "round": state.round,
        "config": config,
        "shapes": [list(s) for s in shapes],
        "num_trainable": num_trainable,
        "role_leaves": len(roles),
        "sparsity": [c.sparsity for c in state.clients],
        "rounds_participated": [c.rounds_participated for c in state.clients],
        "upload_bytes": [c.upload_bytes for c in state.clients],
        "download_bytes": [c.download_bytes for c in state.clients],
        "residual_files": [c.residual for c in state.clients],
        "downloaded_round": [c.downloaded_round for c in state.clients],
        "held_download_rounds": sorted(state.server.held_downloads),
        "sampler_state": state.sampler_state,
        "metrics": state.metrics,
        "schedule_rounds": state.schedule_rounds,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = Path(path)
    _keep_as_previous(path)
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez(handle, **arrays)


def load_checkpoint(
    path: str | Path,
    config: dict,
    announce: Callable[[str], None] | None = None,
) -> TrainerState:
    """Reads a run's checkpoint, or the previous one if it is damaged.

    Args:
        path: The checkpoint file.
        config: The run's configuration (as `TrainConfig.to_dict`).
        announce: Receives a one-line note when the previous checkpoint is
            used.

    Returns:
        The state; its role states are the list of their leaves (`Trainer`
        packs them into the roles' structure), None for a version 2 or 3
        checkpoint (the roles start afresh).

    Raises:
        CheckpointError: If neither checkpoint can be read, or one was written
            with a different configuration (only ``rounds`` may differ, so a
            finished run can be extended).
    """
    path = Path(path)
    try:
        return _read_checkpoint(path, config)
    except DamagedCheckpointError as damage:
        previous = previous_path(path)
        if not previous.is_file():
            raise
        state = _read_checkpoint(previous, config)
        if path.exists():  # never let the next save keep it as "previous"
            os.replace(path, path.with_name(f"{path.stem}.damaged{path.suffix}"))
        if announce is not None:
            announce(
                f"{damage}; resuming from the previous checkpoint "
                f"{previous.name} (round {state.round})"
            )
        return state


def _read_archive(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """A checkpoint's arrays and its metadata (``meta``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes())
        version = meta.get("format_version")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DamagedCheckpointError(
            f"checkpoint {path} is damaged ({reason})"
        ) from None
    if version not in READABLE_VERSIONS:
        raise DamagedCheckpointError(f"checkpoint {path} has an unknown format version")
    return arrays, meta


def read_state(path: str | Path) -> tuple[TrainerState, dict]:
    """A finished or stopped run's state, to read (not to resume).

    Returns:
        The state and the identity the checkpoint was written with (the
        configuration, ``client_ids`` and ``data_fingerprint``).

    Raises:
        DamagedCheckpointError: If the file is missing or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise DamagedCheckpointError(f"no checkpoint at {path}")
    arrays, meta = _read_archive(path)
    try:
        return _state(arrays, meta, path.parent / RESIDUAL_DIRECTORY), meta["config"]
    except (KeyError, ValueError, IndexError) as error:
        raise DamagedCheckpointError(
            f"checkpoint {path} is damaged (incomplete: {error})"
        ) from None


def _read_checkpoint(path: Path, config: dict) -> TrainerState:
    if not path.is_file():
        raise DamagedCheckpointError(
            f"no checkpoint to resume from at {path}; start the run afresh: "
            "without --resume (or with --overwrite if it holds other files)"
        )
    arrays, meta = _read_archive(path)
    # An option a checkpoint does not name did not exist when it was written:
    # that run had the option's default behaviour.
    saved = {**_OPTION_DEFAULTS, **meta["config"]}
    saved = {k: v for k, v in saved.items() if k != "rounds" and k in config}
    wanted = {k: v for k, v in config.items() if k != "rounds"}
    if saved != wanted:
        differences = sorted(
            _IDENTITY_NAMES.get(k, k) for k in wanted if saved.get(k) != wanted[k]
        )
        raise CheckpointError(
            f"checkpoint {path} was written with a different configuration "
            f"(differs in: {', '.join(differences)})"
        )
    try:
        return _state(arrays, meta, path.parent / RESIDUAL_DIRECTORY)
    except (KeyError, ValueError, IndexError) as error:
        raise DamagedCheckpointError(
            f"checkpoint {path} is damaged (incomplete: {error})"
        ) from None


def _masks(stored: np.ndarray, shapes: list[tuple], per_weight: bool) -> PackedMasks:
    """A client's masks from its checkpoint array (`FORMAT_VERSION`'s note)."""
    if per_weight:
        sizes = [packed_size(s) for s in shapes]
        if stored.size != sum(sizes):
            raise ValueError(f"{stored.size} mask bytes for {sum(sizes)}")
        return PackedMasks(np.split(stored, np.cumsum(sizes)[:-1]), shapes)
    sizes = [int(np.prod(s)) for s in shapes]
    flat = np.unpackbits(stored, count=sum(sizes)).astype(bool)
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return PackedMasks.of([p.reshape(s) for p, s in zip(parts, shapes, strict=True)])


def _state(
    arrays: dict[str, np.ndarray], meta: dict, residual_dir: Path
) -> TrainerState:
    shapes = [tuple(s) for s in meta["shapes"]]
    residual_files = meta.get("residual_files") or [None] * len(meta["sparsity"])
    downloaded = meta.get("downloaded_round") or [None] * len(meta["sparsity"])
    residuals = ResidualStore(residual_dir)
    server = [arrays[f"server_{i}"] for i in range(len(shapes))]
    clients = []
    num_trainable = meta["num_trainable"]
    for client, sparsity in enumerate(meta["sparsity"]):
        mask = None
        if f"mask_{client}" in arrays:
            mask = _masks(
                arrays[f"mask_{client}"],
                shapes[:num_trainable],
                meta["format_version"] >= _PER_WEIGHT_MASKS,
            )
        stored = {}
        for name in COMPACT_FIELDS:
            if f"{name}_values_{client}" in arrays:
                # Checkpoints before positions were named: "_nonzero_".
                positions = f"{name}_positions_{client}"
                if positions not in arrays:
                    positions = f"{name}_nonzero_{client}"
                stored[name] = CompactTensors(
                    arrays[positions], arrays[f"{name}_values_{client}"]
                )
                stored[name].expand(shapes)  # damaged: fails here, not later
        residual = residual_files[client]
        if f"residual_values_{client}" in arrays:  # format version 2
            residual = ResidualStore.name(client, meta["round"] - 1)
            residuals.write(
                residual,
                CompactTensors(
                    arrays[f"residual_positions_{client}"],
                    arrays[f"residual_values_{client}"],
                ).expand(shapes),
            )
        clients.append(
            ClientState(
                mask=mask,
                sparsity=sparsity,
                rounds_participated=meta["rounds_participated"][client],
                residual=residual,
                **stored,
                upload_bytes=meta["upload_bytes"][client],
                download_bytes=meta["download_bytes"][client],
                downloaded_round=downloaded[client],
            )
        )
    # Format 3 held the aggregator's state alone (no leaves for the round's
    # own means): its rounds had no other role state, and the roles start
    # from their initial states (None).
    leaves = (
        [arrays[f"role_{i}"] for i in range(meta["role_leaves"])]
        if "role_leaves" in meta
        else None
    )
    entries = sum(int(np.prod(s)) for s in shapes)
    held_downloads = {
        round_number: ValueTable.from_packed(
            arrays[f"held_download_values_{round_number}"],
            arrays[f"held_download_indices_{round_number}"],
            entries,
        )
        for round_number in meta.get("held_download_rounds", [])
    }
    return TrainerState(
        round=meta["round"],
        server=ServerState(server, leaves, held_downloads),
        clients=clients,
        sampler_state=meta["sampler_state"],
        metrics=meta["metrics"],
        schedule_rounds=meta.get("schedule_rounds"),
    )
