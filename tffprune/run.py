"""A whole training run: inputs checked, output directory, rounds, files.

The application around the federated algorithm (`tffprune.fl`), as
`tffprune.sweep` is around many runs: it loads and checks the data and the
model before writing anything, drives a `tffprune.fl.training.Trainer` round
by round with a progress bar, checkpoints (`tffprune.checkpoint`) and writes
the files below.

Output directory contract (relied on by the experiments and users):

* ``metrics.csv``: one row per round (`tffprune.fl.training.METRIC_COLUMNS`),
  rewritten atomically after every round;
* ``summary.json``: the resolved configuration and the final figures;
* ``config.toml``: the configuration, rerunnable with ``--config``;
* ``global_model.keras``: the final global model (no pruning wrappers, zeros
  in place);
* ``accuracy.png``, ``bytes.png``: plots per round;
* ``clients.csv``: the partition (examples and labels per client);
* ``rejections.csv``: every rejected client update (round, client, reason);
* ``checkpoint.npz``: the state for ``--resume``;
* ``residuals/``: with error feedback, each client's residual file (the ones
  the last two checkpoints name; `tffprune.fl.residual_store`);
* ``worker.log``: the TFF worker's output;
* ``tensorboard/``: event files, each round's metrics as scalars
  (``tensorboard --logdir``);
* ``.tffprune.lock``: present while a run writes the directory
  (`tffprune.reporting.lock`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tffprune.checkpoint import (
    CHECKPOINT_NAME,
    RESIDUAL_DIRECTORY,
    load_checkpoint,
    save_checkpoint,
)
from tffprune.config import TrainConfig, to_toml
from tffprune.data import build_federated_data, load_dataset, saved_split
from tffprune.data.datasets import is_dataset_file
from tffprune.data.partition import FederatedData
from tffprune.fl.runtime import LocalRuntime
from tffprune.fl.training import METRIC_COLUMNS, Trainer
from tffprune.models.names import MODEL_NAMES
from tffprune.models.source import (
    ResolvedModel,
    check_user_model_fn,
    model_fingerprint,
    resolve_model,
)
from tffprune.pruning import probabilistic
from tffprune.reporting.files import (
    TEMPORARY_MARK,
    atomic_path,
    check_output_dir,
    prepare_output_dir,
    remove_stale_temporaries,
    save_keras_model_atomic,
    write_json_atomic,
    write_text_atomic,
)
from tffprune.reporting.lock import LOCK_NAME, DirectoryLock
from tffprune.reporting.metrics import write_metrics_csv
from tffprune.reporting.plots import plot_run
from tffprune.reporting.tensorboard import DIRECTORY as TENSORBOARD_DIRECTORY
from tffprune.reporting.tensorboard import EventWriter
from tffprune.stopping import StopAfterRound, resume_hint


class TrainingFailedError(RuntimeError):
    """A run ended without a usable model: nothing was aggregated, or NaN/Inf.

    Its metrics, rejections and summary (``"status": "failed"``) are written
    first; the message is one line.
    """


def _failure(trainer: Trainer) -> str | None:
    """Why a finished run has no usable model, or None."""
    metrics = trainer.state.metrics
    if metrics and not any(r["clients_participating"] for r in metrics):
        rejected = sum(int(r["clients_rejected"]) for r in metrics)
        dropped = sum(int(r["clients_dropped"]) for r in metrics)
        reasons = Counter(reason for _, _, reason in trainer.rejections)
        why = f" ({reasons.most_common(1)[0][0]})" if reasons else ""
        return (
            f"no client update was aggregated in {len(metrics)} rounds: "
            f"{rejected} rejected{why}, {dropped} dropped; nothing was trained"
        )
    if not all(np.all(np.isfinite(w)) for w in trainer.state.server_weights):
        return "the global model holds NaN or Inf values"
    return None


def _participation(trainer: Trainer) -> dict:
    """Participation, client sparsity, bytes per client and residual files."""
    taking_part = [c for c in trainer.state.clients if c.rounds_participated]
    sparsities = [c.sparsity for c in taking_part] or [0.0]
    return {
        "final_client_sparsity": {
            "mean": float(np.mean(sparsities)),
            "min": float(min(sparsities)),
            "max": float(max(sparsities)),
            "clients": len(taking_part),
        },
        "clients_never_aggregated": len(trainer.state.clients) - len(taking_part),
        "bytes_per_client": {
            direction: _spread(
                [getattr(c, f"{direction}_bytes") for c in trainer.state.clients]
            )
            for direction in ("upload", "download")
        },
        "residual_bytes": trainer.residuals.nbytes(trainer.residual_names()),
        "personal_model_bytes": _personal_model_bytes(trainer),
    }


def _personal_model_bytes(trainer: Trainer) -> dict | None:
    """What the clients' own models hold in memory (and in a checkpoint).

    Per client with one: its kept values (float32) and one bit per entry,
    beside the bytes of a dense float32 copy of the model.
    """
    held = [
        c.personal_model.nbytes
        for c in trainer.state.clients
        if c.personal_model is not None
    ]
    if not held:
        return None
    dense = 4 * sum(int(np.prod(s)) for s in trainer.shapes)
    return {
        "clients": len(held),
        "total": int(sum(held)),
        "per_client": _spread(held),
        "dense_float32_per_client": dense,
    }


def _median(values) -> float | None:
    """The median of the finite values (None without any)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else None


def _spread(values: list[int]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "min": int(min(values)),
        "max": int(max(values)),
    }


def _checkpoint_config(
    config: TrainConfig, data: FederatedData, fingerprint: str
) -> dict:
    """What a checkpoint must match to be resumed (``rounds`` may differ).

    The data directory is where the files are, not what they are: the data's
    fingerprint (`FederatedData.fingerprint`: examples, labels and split)
    stands for them. The clients' ids are part of the identity (per-client
    state is theirs).
    """
    identity = {k: v for k, v in config.to_dict().items() if k != "data_dir"}
    # The optimizer in effect, given or by default (a run made before the
    # default depended on the aggregation resumes).
    identity["client_optimizer"] = config.resolved_client_optimizer
    identity["client_learning_rate"] = config.resolved_client_learning_rate
    identity["client_ids"] = [data.client_id(c) for c in range(data.num_clients)]
    identity["data_fingerprint"] = fingerprint
    identity["model_fingerprint"] = model_fingerprint(config.model)
    return identity


def load_federated_data(config: TrainConfig) -> FederatedData:
    """``config.dataset`` split over clients as ``config`` says.

    The same configuration gives the same split (`FederatedData.fingerprint`);
    partition ``given`` reads the split saved with the data
    (`tffprune.data.saved_split`).
    """
    if config.partition == saved_split.GIVEN:
        data = saved_split.load_split(config.dataset)
        if data.num_clients != config.num_clients:
            raise ValueError(
                f"num_clients is {config.num_clients}, {config.dataset} holds "
                f"{data.num_clients} clients"
            )
        return data
    return build_federated_data(
        load_dataset(config.dataset, config.data_dir, scale_inputs=config.scale_inputs),
        config.num_clients,
        config.partition,
        seed=config.seed,
        shards_per_client=config.shards_per_client,
        alpha=config.alpha,
        max_examples=config.max_examples,
    )


def prepare_inputs(
    config: TrainConfig,
    data: FederatedData | None = None,
    model_fn: Callable[[], tf.keras.Model] | None = None,
) -> tuple[TrainConfig, FederatedData, ResolvedModel]:
    """Loads and checks a run's data and model before anything is written.

    Returns:
        The configuration as recorded (model and data file paths absolute),
        the data and the model.

    Raises:
        ValueError: One line naming what is wrong with the data or the model.
    """
    if data is None:
        data = load_federated_data(config)
        if is_dataset_file(config.dataset):
            config = config.replace(dataset=data.dataset.source)
    elif data.num_clients != config.num_clients:
        raise ValueError(
            f"num_clients is {config.num_clients}, the data has "
            f"{data.num_clients} clients"
        )
    input_shape = data.dataset.input_shape
    num_classes = data.dataset.num_classes
    if model_fn is None:
        model = resolve_model(
            config.model, input_shape, num_classes, config.model_options
        )
        config = config.replace(model=model.source)
    else:
        check_user_model_fn(model_fn, input_shape, num_classes)
        model = ResolvedModel(model_fn, None, config.model)
    if config.aggregation == "fedpm":
        probabilistic.check_model(model.model_fn())
    return config, _with_range_note(config, data), model


def _size(num_bytes: float) -> str:
    """Bytes as a person reads them: ``1.9 MB``, ``42.3 kB``, ``512 B``."""
    if num_bytes >= 100_000:
        return f"{num_bytes / 1e6:.1f} MB"
    if num_bytes >= 1_000:
        return f"{num_bytes / 1e3:.1f} kB"
    return f"{int(num_bytes)} B"


def _against_dense(dense: float, total: float) -> str:
    """What a run sent against dense float32 FedAvg, both ways, in words."""
    ratio = dense / max(total, 1)
    if ratio >= 1.05:
        return f"{ratio:.1f}x less than dense both ways"
    if ratio <= 1 / 1.05:
        return f"{1 / ratio:.1f}x more than dense both ways"
    return "as much as dense both ways, within 5%"


def final_line(summary: dict, output_dir: str | Path) -> str:
    """The one line a finished run ends with (the CLI's and the API's)."""
    final = summary["final"]
    dense = summary["total_upload_bytes_dense"] + summary["total_download_bytes_dense"]
    clients = summary["final_client_sparsity"]
    never = summary["clients_never_aggregated"]
    return (
        f"round {summary['rounds_completed']}: central accuracy "
        f"{final.get('central_accuracy', float('nan')):.4f}, personalized "
        f"{final.get('personalized_accuracy', float('nan')):.4f}, client sparsity "
        f"{clients['mean']:.3f} over the {clients['clients']} clients that took "
        f"part ({never} never did), upload {_size(summary['total_upload_bytes'])}, "
        f"download {_size(summary['total_download_bytes'])} "
        f"({_against_dense(dense, summary['total_bytes'])}); "
        f"results in {output_dir}"
    )


def _copy_python_data(
    config: TrainConfig, data: FederatedData, output_dir: Path, resume: bool
) -> None:
    """Writes data made in Python into the run, where ``config.toml`` says.

    `tffprune.api.train` points ``dataset`` at ``RUN/data.npz`` (partition
    ``given``) when the data fit `saved_split.COPY_LIMIT_BYTES`; a resumed
    run's copy holds the same data (its checkpoint's fingerprint says so).
    """
    copy = (output_dir / saved_split.SAVED_DATA_NAME).resolve()
    if config.partition != saved_split.GIVEN or Path(config.dataset) != copy:
        return
    if resume and copy.is_file():
        return
    with atomic_path(copy) as path, path.open("wb") as handle:
        saved_split.save_split(data, handle)


def _with_range_note(config: TrainConfig, data: FederatedData) -> FederatedData:
    """``data`` with a note if a built-in model gets inputs beyond [0, 1].

    The built-in models take [0, 1] inputs (the named sets' range); your
    ``.npz`` is used as given unless ``--scale-inputs``.
    """
    if config.model not in MODEL_NAMES or data.dataset.inputs_scaled:
        return data
    largest = float(np.max(np.abs(data.dataset.x_train)))
    if largest <= 1.0:
        return data
    note = (
        f"the built-in model {config.model} takes inputs in [0, 1] and x_train "
        f"ranges up to {largest:g}: pass --scale-inputs (integer inputs) or "
        "scale the arrays"
    )
    dataset = dataclasses.replace(data.dataset, notes=(*data.dataset.notes, note))
    return dataclasses.replace(data, dataset=dataset)


def run_training(
    config: TrainConfig,
    output_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    workers: tuple[str, ...] = (),
    worker_timeout: float = 30.0,
    stop_at: tuple[str, float] | None = None,
    data: FederatedData | None = None,
    model_fn: Callable[[], tf.keras.Model] | None = None,
    announce: Callable[[str], None] | None = None,
) -> dict:
    """Trains, writing every output file; returns the summary.

    Args:
        config: The configuration.
        output_dir: Results directory (see the module docstring).
        resume: Continue from the directory's checkpoint.
        overwrite: Replace results in an existing directory.
        progress: Show a progress bar.
        workers: Remote TFF worker addresses (empty: one local worker).
        worker_timeout: Seconds to wait for each remote worker to answer.
        stop_at: ``(metric, value)``, e.g. ``("central_accuracy", 0.8)``: stop
            after the first evaluated round where the metric reaches the value
            (the summary's ``stopped_at_target`` says whether it did).
        data: The clients' data (default: ``config.dataset`` split by
            ``config.partition``).
        model_fn: Builds a new model (default: ``config.model``).
        announce: Receives one-line notes for the user (data scaling, layers
            left unpruned).

    Returns:
        The summary written to ``summary.json``.

    Raises:
        ValueError: For invalid input (data, directory, checkpoint), or if
            another run is writing ``output_dir`` (`DirectoryLockedError`).
        TrainingFailedError: If nothing was trained (see its docstring).
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    lock = DirectoryLock(output_dir)
    fresh = not output_dir.exists()
    try:
        lock.acquire(create=False)  # another run writing it: refused first
        leftovers = [] if resume or overwrite else unfinished_start(output_dir)
        check_output_dir(
            output_dir, resume=resume, overwrite=overwrite or bool(leftovers)
        )
        # Everything that can be wrong with the input is checked before the
        # directory is created or anything is written into it.
        config, data, model = prepare_inputs(config, data, model_fn)
        lock.acquire()
        if leftovers:
            _remove(output_dir, leftovers)
            if announce is not None:
                announce(
                    f"{output_dir} held only what a start that saved no checkpoint "
                    f"writes ({', '.join(leftovers)}): removed, starting afresh"
                )
        return _run(
            config,
            data,
            model,
            output_dir,
            resume,
            overwrite,
            progress,
            workers,
            worker_timeout,
            stop_at,
            announce,
            started,
        )
    except BaseException:
        # A start that fails leaves a new directory as it found it: absent.
        if fresh and lock.held and not (output_dir / "metrics.csv").exists():
            lock.release()
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


START_FILES = (
    "clients.csv",
    "config.toml",
    "worker.log",
    RESIDUAL_DIRECTORY,
    TENSORBOARD_DIRECTORY,
)
"""What a run writes before its first checkpoint (and its first metrics)."""


def unfinished_start(output_dir: Path) -> list[str]:
    """The files of a start that never got to a checkpoint, if that is all.

    A run killed between writing ``clients.csv`` and its first checkpoint
    leaves a directory that holds no results: a plain rerun starts it afresh.
    Anything else in it (a checkpoint, metrics, a file of the user's) and this
    is ``[]``: the directory holds results. The start's ``clients.csv`` is
    what marks the directory as a run's.
    """
    if not output_dir.is_dir():
        return []
    names = sorted(
        p.name
        for p in output_dir.iterdir()
        if p.name != LOCK_NAME and TEMPORARY_MARK not in p.name
    )
    if "clients.csv" not in names or not set(names) <= set(START_FILES):
        return []
    # Ours, as `FederatedData.write_summary` writes it, not a file of the user's.
    with (output_dir / "clients.csv").open() as handle:
        if not handle.readline().startswith("client,train_examples,"):
            return []
    return names


def _remove(output_dir: Path, names: list[str]) -> None:
    remove_stale_temporaries(output_dir)  # what the killed start was writing
    for name in names:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _run(
    config: TrainConfig,
    data: FederatedData,
    model: ResolvedModel,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    progress: bool,
    workers: tuple[str, ...],
    worker_timeout: float,
    stop_at: tuple[str, float] | None,
    announce: Callable[[str], None] | None,
    started: float,
) -> dict:
    """`run_training` once its inputs are checked and its directory locked."""
    identity = _checkpoint_config(config, data, data.fingerprint())
    state = None
    if resume:
        state = load_checkpoint(output_dir / CHECKPOINT_NAME, identity, announce)
    if announce is not None:
        for note in (*data.dataset.notes, *config.unused_settings):
            announce(note)
    output_dir = prepare_output_dir(output_dir, resume=resume, overwrite=overwrite)
    _copy_python_data(config, data, output_dir, resume)
    with atomic_path(output_dir / "clients.csv") as path:  # whole or absent
        data.write_summary(path)
    write_text_atomic(output_dir / "config.toml", to_toml(config))
    with LocalRuntime(
        workers, log_path=output_dir / "worker.log", connect_timeout=worker_timeout
    ):
        trainer = Trainer(
            config,
            data,
            state,
            model_fn=model.model_fn,
            initial_weights=model.initial_weights,
            residual_dir=output_dir / RESIDUAL_DIRECTORY,
            # Remote workers may not see this machine's files: ship datasets.
            client_files=not workers,
        )
        if announce is not None and trainer.unpruned_layers:
            announce(f"not pruned: {', '.join(trainer.unpruned_layers)}")
        if announce is not None and trainer.channel_note:
            announce(trainer.channel_note)
        if announce is not None and trainer.optimizer_note:
            announce(trainer.optimizer_note)
        startup_seconds = time.perf_counter() - started
        bar = tqdm(
            total=config.rounds,
            initial=trainer.state.round,
            desc="rounds",
            unit="round",
            disable=not progress,
            dynamic_ncols=True,
        )
        first_round_seconds = None
        # A run resumed after it stopped at its target (then interrupted while
        # writing its results) trains no further round.
        done = trainer.state.metrics
        reached = bool(done) and _reached(done[-1], stop_at)
        events = EventWriter(output_dir / TENSORBOARD_DIRECTORY)

        def checkpoint() -> None:
            trainer.checkpoint_saving()
            save_checkpoint(
                output_dir / CHECKPOINT_NAME, trainer.state, identity, trainer.shapes
            )
            trainer.checkpoint_saved()

        # One Ctrl-C anywhere in a round, its files or its checkpoint: the
        # round finishes, is checkpointed, and the run stops (`StopAfterRound`).
        with bar, contextlib.closing(events), StopAfterRound() as stop:
            while not reached and trainer.state.round < config.rounds:
                row = trainer.run_round()
                if first_round_seconds is None:
                    first_round_seconds = time.perf_counter() - started
                write_metrics_csv(
                    output_dir / "metrics.csv", trainer.state.metrics, METRIC_COLUMNS
                )
                events.write(row)
                reached = _reached(row, stop_at)
                saved = False
                if (
                    trainer.state.round % config.checkpoint_every == 0
                    or trainer.state.round == config.rounds
                    or stop.requested
                    or reached
                ):
                    checkpoint()
                    saved = True
                postfix = {
                    "sparsity": f"{row['sparsity']:.2f}",
                    "upload": f"{row['upload_bytes'] / 1e6:.2f}MB",
                }
                if "central_accuracy" in row:
                    postfix["acc"] = f"{row['central_accuracy']:.3f}"
                    postfix["pers"] = f"{row['personalized_accuracy']:.3f}"
                bar.set_postfix(postfix)
                bar.update(1)
                if stop.requested:
                    if not saved:  # the Ctrl-C came after the check above
                        checkpoint()
                    raise stop.stop(
                        f"stopped after round {trainer.state.round}; continue with "
                        "--resume"
                    )
                if reached:
                    break
        # A Ctrl-C while the results are written: the last round is
        # checkpointed, so --resume writes them.
        with resume_hint("stopped while writing the results; continue with --resume"):
            return _finish_run(
                output_dir,
                config,
                trainer,
                data,
                dict(
                    stopped_at_target=reached,
                    startup_seconds=startup_seconds,
                    first_round_end_seconds=first_round_seconds,
                ),
                started,
            )


def _reached(row: dict, stop_at: tuple[str, float] | None) -> bool:
    """Whether a metrics row reaches ``stop_at``'s ``(metric, value)``."""
    if stop_at is None:
        return False
    value = row.get(stop_at[0])
    return value is not None and value >= stop_at[1]


def _finish_run(
    output_dir: Path,
    config: TrainConfig,
    trainer: Trainer,
    data,
    timing: dict,
    started: float,
) -> dict:
    """Writes a trained run's results; ``summary.json`` last (it marks the end).

    Args:
        output_dir: The run's directory.
        config: Its configuration.
        trainer: The trainer after its last round.
        data: Its federated data.
        timing: ``stopped_at_target`` and the start-up and first-round
            seconds, as the summary records them.
        started: ``time.perf_counter()`` when the run started.

    Returns:
        The summary.

    Raises:
        TrainingFailedError: If the run failed (its summary is written first).
    """
    metrics = trainer.state.metrics
    failure = _failure(trainer)
    last = metrics[-1] if metrics else {}
    if failure is None and "central_accuracy_unpruned" not in last and metrics:
        # A run that stopped early ends evaluated, the unpruned weights too.
        if "central_accuracy" in last:
            last["central_accuracy_unpruned"] = trainer.unpruned_accuracy()
        else:
            last.update(trainer.evaluate())
        write_metrics_csv(output_dir / "metrics.csv", metrics, METRIC_COLUMNS)
    write_metrics_csv(
        output_dir / "rejections.csv",
        [
            dict(round=r, client=data.client_id(c), reason=why)
            for r, c, why in trainer.rejections
        ],
        ("round", "client", "reason"),
    )
    if failure is None:
        save_keras_model_atomic(
            trainer.global_model(), output_dir / "global_model.keras"
        )
        plot_run(
            metrics,
            output_dir,
            f"{config.algorithm_description}\n{config.model} {config.dataset} "
            f"{config.partition}",
        )
    summary = {
        "status": "ok" if failure is None else "failed",
        "failure": failure,
        "config": config.to_dict(),
        "client_weighting": config.resolved_client_weighting,
        "rounds_completed": trainer.state.round,
        "final": metrics[-1] if metrics else {},
        "total_upload_bytes": sum(r["upload_bytes"] for r in metrics),
        "total_upload_bytes_dense": sum(r["upload_bytes_dense"] for r in metrics),
        "total_download_bytes": sum(r["download_bytes"] for r in metrics),
        "total_download_bytes_dense": sum(r["download_bytes_dense"] for r in metrics),
        "total_bytes": sum(r["total_bytes"] for r in metrics),
        "median_bound_ratio": {
            direction: _median(r[f"{direction}_bound_ratio"] for r in metrics)
            for direction in ("upload", "download")
        },
        **_participation(trainer),
        **timing,
        "total_seconds": time.perf_counter() - started,
        "data_source": data.dataset.source,
        "data_notes": list(data.dataset.notes),
        "not_pruned": trainer.unpruned_layers,
        "channel_note": trainer.channel_note,
    }
    write_json_atomic(output_dir / "summary.json", summary)
    if failure is not None:
        raise TrainingFailedError(f"training failed: {failure}; see {output_dir}")
    return summary
