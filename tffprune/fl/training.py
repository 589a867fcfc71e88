"""The federated training driver: sampling, the round, metrics.

A `Trainer` holds what persists between rounds (`TrainerState`: the
algorithm's server and client states, the sampler's random state and the
metrics so far). Each round it samples clients, names their data (a
reference to a file of each client's examples the workers read,
`tffprune.data.client_files`, or with ``client_files=False`` their datasets),
simulates lost uploads, lets the algorithm (`tffprune.fl.algorithm`) run the
round's single TFF computation, and writes a metrics row; every
``eval_every`` rounds it evaluates (`tffprune.fl.evaluation`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tffprune.config import TrainConfig
from tffprune.data.client_files import ClientFiles
from tffprune.data.partition import FederatedData
from tffprune.data.pipeline import batched_dataset
from tffprune.fl import evaluation
from tffprune.fl.algorithm import (
    ClientResult,
    ClientState,
    FederatedAlgorithm,
    PruningPlan,
    ServerState,
)
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.fl.fedpm import FedPMAlgorithm
from tffprune.fl.process import RoundParts, RoundProcess
from tffprune.fl.residual_store import ResidualStore
from tffprune.learning.client_data import with_client_files
from tffprune.learning.fedpm import build_fedpm
from tffprune.learning.optimizers import build_optimizer, in_place
from tffprune.models.source import resolve_model
from tffprune.pruning.policy import PruningPolicy, sparsity_report
from tffprune.pruning.schedules import IterativeSchedule, build_schedule

METRIC_COLUMNS = (
    "round",
    "central_accuracy",
    "central_loss",
    "central_sparsity",
    "central_accuracy_unpruned",
    "personalized_accuracy",
    "personal_accuracy",
    "clients_without_personal_model",
    "finetuned_personalized_accuracy",
    "finetuned_personal_accuracy",
    "sparsity",
    "global_sparsity",
    "covered_fraction",
    "upload_bytes",
    "upload_bytes_dense",
    "upload_bytes_csr",
    "upload_bytes_tff_8bit",
    "upload_bound_ratio",
    "mask_distance",
    "clients_held_back",
    "download_bytes",
    "download_bytes_dense",
    "download_bytes_csr",
    "download_bound_ratio",
    "total_bytes",
    "total_bytes_cumulative",
    "train_loss",
    "clients_participating",
    "clients_rejected",
    "clients_dropped",
    "round_skipped",
    "round_seconds",
)


@dataclasses.dataclass
class TrainerState:
    """Everything a checkpoint holds."""

    round: int
    server: ServerState
    clients: list[ClientState]
    sampler_state: dict
    metrics: list[dict[str, float]]
    schedule_rounds: int | None = None  # the rounds the schedule spans, fixed at start

    @property
    def server_weights(self) -> list[np.ndarray]:
        """The server's weights (trainable then non-trainable)."""
        return self.server.weights


def _compiled_optimizer_note(model: tf.keras.Model, config: TrainConfig) -> str:
    """One line saying a compiled model's optimizer is replaced ("" if none).

    A round's clients train with ``config.resolved_client_optimizer`` (a
    ``tff.learning.optimizers`` optimizer, started afresh each round, as
    TFF's builders do); what ``model.compile`` was given is not used.
    """
    compiled = getattr(model, "optimizer", None)
    if compiled is None:
        return ""
    return (
        f"your model's compiled optimizer ({type(compiled).__name__}) is not used: "
        f"clients train with --client-optimizer {config.resolved_client_optimizer} at "
        f"--client-learning-rate {config.resolved_client_learning_rate:g}"
    )


def _named_model(config: TrainConfig, data: FederatedData, initial_weights):
    """``config.model``'s builder and the weights to start from."""
    model = resolve_model(
        config.model,
        tuple(data.dataset.input_shape),
        data.dataset.num_classes,
        config.model_options,
    )
    return model.model_fn, initial_weights or model.initial_weights


def _pruning_plan(
    config: TrainConfig,
    work: ClientWorkConfig,
    trainable_shapes: list[tuple[int, ...]],
    schedule_rounds: int,
) -> PruningPlan:
    """The clients' pruning schedule for a run (decided on the driver)."""
    schedule = build_schedule(config.schedule, config.sparsity, schedule_rounds)
    if isinstance(schedule, IterativeSchedule):
        schedule = IterativeSchedule(config.sparsity, config.step_fraction)
    return PruningPlan(
        work=work,
        schedule=schedule,
        shapes=tuple(trainable_shapes),
        structured_share=config.structured_share,
        new_clients=config.new_clients,
    )


def _client_work(config: TrainConfig, targets: tuple) -> ClientWorkConfig:
    """A run's client work settings: the one record of them."""
    personal = config.aggregation == "subfedavg"
    return ClientWorkConfig.from_options(
        config.method,
        targets,
        value_format=config.upload_values,
        masked_upload=personal,
        weight_by_examples=config.resolved_client_weighting == "num_examples",
        accuracy_threshold=config.accuracy_threshold if personal else 0.0,
        mask_distance_threshold=config.mask_distance_threshold,
        error_feedback=config.uses_error_feedback,
        personal_models=config.personal_models,
        return_values=config.verify_uploads,
    )


def _element_spec(input_shape: tuple[int, ...]) -> tuple[tf.TensorSpec, ...]:
    """The clients' batches: float32 inputs, int32 labels."""
    return (
        tf.TensorSpec([None, *input_shape], tf.float32),
        tf.TensorSpec([None], tf.int32),
    )


def _round_parts(
    config: TrainConfig,
    model_fn: Callable[[], tf.keras.Model],
    input_shape: tuple[int, ...],
    work: ClientWorkConfig,
    client_optimizer,
    client_files: bool,
) -> RoundParts:
    """The round's parts for a run: its client work and both optimizers."""
    return RoundParts(
        model_fn,
        _element_spec(input_shape),
        client_optimizer,
        work,
        server_optimizer=build_optimizer(
            config.server_optimizer,
            config.server_learning_rate,
            config.server_momentum,
            epsilon=config.server_epsilon,
        ),
        download_values=config.download_values,
        batch_size=config.batch_size if client_files else None,
    )


def _algorithm(
    config: TrainConfig,
    plan: PruningPlan,
    shapes: list[tuple[int, ...]],
    parts: RoundParts,
    residuals: ResidualStore,
):
    """The run's algorithm: `FederatedAlgorithm`, or `FedPMAlgorithm`."""
    if config.aggregation == "fedpm":
        process = build_fedpm(
            parts.model_fn,
            parts.element_spec,
            seed=config.seed,
            client_optimizer_fn=parts.client_optimizer,
            download_bits=config.probability_bits,
            reset_every=config.prior_reset,
        )
        if parts.batch_size is not None:
            process = with_client_files(process, parts.element_spec, parts.batch_size)
        return FedPMAlgorithm(process, residuals, config.personal_models)
    return FederatedAlgorithm(
        RoundProcess(parts),
        plan,
        shapes,
        config.positions,
        config.download_values,
        residuals,
    )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


class Trainer:
    """Runs federated training rounds for one configuration.

    Args:
        config: The run's configuration.
        data: The clients' data and the central test set.
        state: A checkpointed state to continue from (else a fresh start).
        model_fn: Builds a new model (default: ``config.model``'s).
        initial_weights: Weights to start from (default: ``model_fn()``'s
            after seeding TensorFlow with ``config.seed``).
        residual_dir: Where clients keep their error-feedback residuals
            (`tffprune.fl.residual_store`; default: a temporary directory).
            A checkpointed state's residual files must be there.
        client_files: Send each sampled client a reference to a file of its
            examples, written once (`tffprune.data.client_files`, in a
            temporary directory the workers must see, as local workers do),
            instead of its dataset every round.

    Raises:
        ValueError: If ``state`` names residual files ``residual_dir`` lacks.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: FederatedData,
        state: TrainerState | None = None,
        model_fn: Callable[[], tf.keras.Model] | None = None,
        initial_weights: list[np.ndarray] | None = None,
        residual_dir: str | Path | None = None,
        client_files: bool = True,
    ) -> None:
        self.config = config
        self.data = data
        input_shape = tuple(data.dataset.input_shape)
        if model_fn is None:
            model_fn, initial_weights = _named_model(config, data, initial_weights)
        self.model_fn = model_fn
        tf.keras.utils.set_random_seed(config.seed)
        initial = model_fn()
        # The model the run's notes name (its layer names): the one saved.
        self._model = initial
        self.policy = PruningPolicy(config.prune_logits, config.prune_biases)
        self.targets = tuple(self.policy.select(initial))
        # FedPM masks every weight, by its clients' training, not by a method.
        fedpm = config.aggregation == "fedpm"
        self.unpruned_layers = [] if fedpm else self.policy.unpruned_layers(initial)
        self.channel_note = (
            "" if fedpm else self.policy.channel_note(initial, config.method)
        )
        self.optimizer_note = _compiled_optimizer_note(initial, config)
        variables = initial.trainable_weights + initial.non_trainable_weights
        self.num_trainable = len(initial.trainable_weights)
        self.shapes = [tuple(w.shape) for w in variables]
        self._dense_bytes = 4 * sum(int(np.prod(s)) for s in self.shapes)
        optimizer = build_optimizer(
            config.resolved_client_optimizer,
            config.resolved_client_learning_rate,
            config.client_momentum,
        )
        # The schedule spans the rounds the run started with: resuming with more
        # --rounds extends the run, not the schedule.
        schedule_rounds = (state and state.schedule_rounds) or config.rounds
        # FedPM's clients learn which weights to keep: no pruning plan.
        pruning = (
            dataclasses.replace(config, method="none", sparsity=0.0)
            if config.aggregation == "fedpm"
            else config
        )
        work = _client_work(pruning, self.targets)
        self.plan = _pruning_plan(
            pruning, work, self.shapes[: self.num_trainable], schedule_rounds
        )
        parts = _round_parts(
            config, model_fn, input_shape, work, optimizer, client_files
        )
        self.algorithm = _algorithm(
            config, self.plan, self.shapes, parts, ResidualStore(residual_dir)
        )
        self.residuals = self.algorithm.residuals
        self.files = (
            ClientFiles(data.client_train, parts.element_spec) if client_files else None
        )
        self.evaluator = evaluation.RunEvaluator(
            model_fn,
            data,
            self.plan,
            in_place(optimizer),
            config.batch_size,
            config.seed,
            personal_models=config.personal_models,
            client_test=config.client_test,
            finetune_epochs=config.finetune_epochs,
        )
        self.rejections: list[tuple[int, int, str]] = []
        if state is None:
            weights = initial_weights or [w.numpy() for w in variables]
            self._start(self._fresh_state(weights))
        else:
            self._restore_roles(state, schedule_rounds)
            self._start(state, resumed=True)

    def _start(self, state: TrainerState, resumed: bool = False) -> None:
        """Takes ``state`` as the run's, its residual files checked."""
        missing = self.residuals.missing(c.residual for c in state.clients)
        if missing:
            raise ValueError(
                f"the checkpoint names {len(missing)} residual file(s) missing "
                f"from {self.residuals.directory} (first: {missing[0]})"
            )
        self.state = state
        # Residual files a checkpoint names are kept until a later checkpoint
        # replaces it (`checkpoint_saved`); a resumed run keeps every file
        # until its first checkpoint (the previous one may name others).
        self._pinned: set[str] | None = None if resumed else set()
        self._checkpointed = self.residual_names() if resumed else set()
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.sampler_state

    def _fresh_state(self, weights: list[np.ndarray]) -> TrainerState:
        """The state of a run's start from these server weights."""
        return TrainerState(
            round=0,
            server=self.algorithm.init(weights),
            clients=[ClientState() for _ in range(self.data.num_clients)],
            sampler_state=np.random.default_rng(self.config.seed).bit_generator.state,
            metrics=[],
            schedule_rounds=self.config.rounds,
        )

    def _restore_roles(self, state: TrainerState, schedule_rounds: int) -> None:
        """Packs a checkpoint's role-state leaves into the roles' structure.

        A checkpoint of format 3 or older holds none: the roles start afresh.
        """
        state.schedule_rounds = schedule_rounds
        initial_roles = self.algorithm.initialize_roles()
        state.server.roles = (
            initial_roles
            if state.server.roles is None
            else tf.nest.pack_sequence_as(initial_roles, state.server.roles)
        )

    def _shuffle_seed(self, client: int, round_number: int) -> int:
        return int(
            np.random.SeedSequence(
                [self.config.seed, round_number, client]
            ).generate_state(1)[0]
        )

    def client_dataset(self, client: int, round_number: int) -> tf.data.Dataset:
        """The client's batched training data in a round, as the round reads it."""
        inputs, labels = self.data.client_train(client)
        return batched_dataset(
            inputs,
            labels,
            self.config.batch_size,
            shuffle_seed=self._shuffle_seed(client, round_number),
            epochs=self.config.local_epochs,
        )

    def client_data(self, client: int, round_number: int):
        """What a round sends as the client's data.

        Its file reference (`tffprune.data.client_files.ClientFiles.reference`),
        or without client files its `client_dataset`.
        """
        if self.files is None:
            return self.client_dataset(client, round_number)
        seed = self._shuffle_seed(client, round_number)
        return self.files.reference(client, seed, self.config.local_epochs)

    def run_round(self) -> dict[str, float]:
        """Runs one round and returns its metrics row."""
        config = self.config
        round_number = self.state.round
        started = time.perf_counter()
        sampled = np.sort(
            self.rng.choice(config.num_clients, config.clients_per_round, replace=False)
        )
        datasets = [self.client_data(int(c), round_number) for c in sampled]
        delivered = ~(self.rng.random(len(sampled)) < config.dropout_rate)
        server, clients, results, measurements = self.algorithm.apply(
            self.state.server,
            self.state.clients,
            [int(c) for c in sampled],
            round_number,
            datasets,
            delivered,
            epoch_examples=[
                len(self.data.clients[int(c)].train_indices) for c in sampled
            ],
        )
        self.state.server, self.state.clients = server, clients
        self._collect_residuals()
        self.state.round += 1
        self.state.sampler_state = self.rng.bit_generator.state
        row = self._round_row(results, measurements)
        before = (
            self.state.metrics[-1]["total_bytes_cumulative"]
            if self.state.metrics
            else 0
        )
        row["total_bytes_cumulative"] = before + row["total_bytes"]
        is_last = self.state.round == config.rounds
        if self.state.round % config.eval_every == 0 or is_last:
            row.update(
                self.evaluate(
                    unpruned=is_last or self.state.round % config.unpruned_every == 0
                )
            )
        row["round_seconds"] = time.perf_counter() - started
        self.state.metrics.append(row)
        return row

    def residual_names(self) -> set[str]:
        """The residual files the clients' states name."""
        return {c.residual for c in self.state.clients if c.residual}

    def checkpoint_saving(self) -> None:
        """Flushes the residual files the state names (call before saving it)."""
        self.residuals.sync(self.residual_names())

    def checkpoint_saved(self) -> None:
        """Marks the state as checkpointed.

        Its residual files, and those of the checkpoint before it (the
        fallback), are kept until later checkpoints replace them.
        """
        names = self.residual_names()
        self._pinned = names | self._checkpointed
        self._checkpointed = names
        self._collect_residuals()

    def _collect_residuals(self) -> None:
        """Deletes the residual files neither the state nor a kept checkpoint names."""
        if self._pinned is not None:
            self.residuals.collect(self.residual_names() | self._pinned)

    def _round_row(
        self, results: list[ClientResult], measurements: dict
    ) -> dict[str, float]:
        aggregated = [r for r in results if r.status == "aggregated"]
        rejected = [r for r in results if r.status == "rejected"]
        for result in rejected:
            self.rejections.append((self.state.round, result.client, result.reason))
        return {
            "round": self.state.round,
            "sparsity": _mean([r.sparsity for r in aggregated]),
            "global_sparsity": sparsity_report(
                self.model_weights()[: self.num_trainable], self.targets
            ).prunable_sparsity,
            "covered_fraction": measurements["aggregator"]["covered_fraction"],
            **self.algorithm.upload_costs(aggregated),
            "download_bytes": sum(r.download_bytes for r in results),
            "download_bytes_dense": len(results) * self._dense_bytes,
            "download_bytes_csr": sum(r.download_bytes_csr for r in results),
            "download_bound_ratio": _mean(
                [
                    8 * r.download_bytes / r.download_bound_bits
                    for r in results
                    if r.download_bound_bits
                ]
            ),
            "total_bytes": sum(r.upload_bytes + r.download_bytes for r in results),
            "train_loss": _mean([r.mean_loss for r in aggregated]),
            "clients_participating": len(aggregated),
            "clients_rejected": len(rejected),
            "clients_dropped": sum(r.status == "dropped" for r in results),
            "round_skipped": int(not aggregated),
            **self._distance_rule(aggregated),
        }

    def _distance_rule(self, aggregated: list[ClientResult]) -> dict[str, float]:
        """The mask-distance rule's round: mean distance, clients held back."""
        threshold = self.config.mask_distance_threshold
        distances = [r.mask_distance for r in aggregated if r.mask_distance is not None]
        if threshold is None:
            return {}
        return {
            "mask_distance": _mean(distances),
            "clients_held_back": sum(d <= threshold for d in distances),
        }

    def model_weights(self) -> list[np.ndarray]:
        """The model the server's state stands for (FedPM: its likeliest network)."""
        return self.algorithm.model_weights(self.state.server_weights)

    def evaluate(self, unpruned: bool = True) -> dict[str, float]:
        """Central and personalized accuracy of the current state.

        Args:
            unpruned: Also score the server's weights unpruned
                (`evaluation.RunEvaluator.evaluate`).
        """
        return self.evaluator.evaluate(
            self.model_weights(),
            self.state.clients,
            self.state.round,
            finetune=self.config.finetune_baseline,
            unpruned=unpruned,
        )

    def unpruned_accuracy(self) -> float:
        """``central_accuracy_unpruned`` of the current state alone."""
        return self.evaluator.unpruned_accuracy(self.model_weights())

    def central_sparsity(self) -> float:
        """The sparsity of the central model at the current round."""
        return evaluation.central_sparsity(
            self.plan, self.state.clients, self.state.round
        )

    def central_weights(self) -> list[np.ndarray]:
        """The central model's weights (`evaluation.central_weights`)."""
        return evaluation.central_weights(
            self.model_weights(), self.plan, self.state.clients, self.state.round
        )

    def global_model(self) -> tf.keras.Model:
        """The central model as a Keras model, zeros in place.

        The run's first ``model_fn()`` model, so its layers have the names
        the run's notes use (Keras numbers a layer by the models built
        before it: ``dense_1`` in one call is ``dense_4`` in the next).
        """
        model = self._model
        variables = model.trainable_weights + model.non_trainable_weights
        for variable, value in zip(variables, self.central_weights(), strict=True):
            variable.assign(value)
        return model
