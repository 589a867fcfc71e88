"""The federated training driver: rounds, personal masks, evaluation, metrics.

A `Trainer` owns everything that persists between rounds: the server weights,
each client's personal mask and sparsity (for every client, sampled or not),
the sampler's random state and the metrics so far. Each round it samples
clients, runs the TFF computations of `tffprune.fl.process`, performs each
sampled client's pruning and upload encoding, aggregates, and evaluates.

Algorithms (``config.aggregation`` x ``config.method``):

* ``fedavg`` + ``none``: dense FedAvg (equals TFF's ``build_weighted_fed_avg``).
* ``fedavg`` + a pruning method (Jeurkar et al., 2024): each client trains the
  dense global model, prunes it to the schedule's sparsity, uploads the
  survivors; the server rebuilds dense tensors (zeros where pruned) and takes
  the weighted mean.
* ``subfedavg`` (Vahidian et al., 2021; Singh & Raj, 2023): each client starts
  from the global weights times its own mask, trains with pruned weights held
  at zero, prunes further by its schedule (optionally guarded by its accuracy),
  and uploads values and mask; the server averages each entry over the clients
  that kept it.

Personalized accuracy is the mean over all clients of the accuracy of the
client's subnetwork (global weights times its mask) on its own test split.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tffprune.compression import baselines, wire
from tffprune.config import TrainConfig
from tffprune.data.partition import FederatedData
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.client import (
    ClientOptimizerConfig,
    build_client_train_fn,
    classification_loss,
)
from tffprune.fl.process import ClientUpload, FederatedProcess, FusedRoundSettings
from tffprune.models import build_model
from tffprune.pruning.masks import num_to_prune
from tffprune.pruning.policy import (
    PruningPolicy,
    apply_masks,
    build_masks,
    sparsity_report,
)
from tffprune.pruning.schedules import IterativeSchedule, build_schedule

METRIC_COLUMNS = (
    "round",
    "central_accuracy",
    "central_loss",
    "central_sparsity",
    "central_accuracy_unpruned",
    "personalized_accuracy",
    "finetuned_personalized_accuracy",
    "sparsity",
    "global_sparsity",
    "upload_bytes",
    "upload_bytes_dense",
    "upload_bytes_csr",
    "upload_bytes_tff_8bit",
    "upload_bound_ratio",
    "download_bytes",
    "train_loss",
    "clients_participating",
    "clients_rejected",
    "clients_dropped",
    "round_skipped",
    "round_seconds",
)


@dataclasses.dataclass
class ClientState:
    """What a client keeps between rounds (Sub-FedAvg's personal state).

    Attributes:
        mask: One boolean mask per trainable weight; ``None`` until the client
            first prunes (all kept).
        sparsity: Sparsity of its prunable kernels in its last upload.
        rounds_participated: Rounds it was sampled in.
    """

    mask: list[np.ndarray] | None = None
    sparsity: float = 0.0
    rounds_participated: int = 0


@dataclasses.dataclass
class TrainerState:
    """Everything a checkpoint holds."""

    round: int
    server_weights: list[np.ndarray]
    clients: list[ClientState]
    sampler_state: dict
    metrics: list[dict[str, float]]


class Evaluator:
    """Evaluates weight lists with one compiled Keras model (plain TF)."""

    def __init__(self, model_fn: Callable[[], tf.keras.Model]) -> None:
        self.model = model = model_fn()
        self._loss = classification_loss()

        @tf.function(reduce_retracing=True)
        def logits(images):
            return model(images, training=False)

        self._logits = logits

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Loads trainable then non-trainable weights."""
        variables = self.model.trainable_weights + self.model.non_trainable_weights
        for variable, value in zip(variables, weights, strict=True):
            variable.assign(value)

    def evaluate(
        self, images: np.ndarray, labels: np.ndarray, batch_size: int = 2048
    ) -> tuple[float, float]:
        """Accuracy and mean loss of the loaded weights on the examples."""
        if labels.size == 0:
            return float("nan"), float("nan")
        correct, loss_sum = 0, 0.0
        for start in range(0, labels.size, batch_size):
            batch = images[start : start + batch_size]
            truth = labels[start : start + batch_size]
            logits = self._logits(tf.constant(batch))
            correct += int(np.sum(np.argmax(logits.numpy(), axis=1) == truth))
            loss_sum += float(self._loss(truth, logits)) * truth.size
        return correct / labels.size, loss_sum / labels.size


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


@dataclasses.dataclass
class _RoundTally:
    """What a round's clients sent, for its metrics row."""

    upload_bytes: int = 0
    csr_bytes: int = 0
    bound_ratios: list[float] = dataclasses.field(default_factory=list)
    sparsities: list[float] = dataclasses.field(default_factory=list)
    losses: list[float] = dataclasses.field(default_factory=list)
    rejections: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)
    dropped: int = 0

    @property
    def participating(self) -> int:
        return len(self.sparsities)

    def reject(self, round_number: int, client: int, reason: str) -> None:
        self.rejections.append((round_number + 1, client, reason))

    def add(
        self,
        payload_bytes: int,
        masks: list[np.ndarray],
        value_format: str,
        sparsity: float,
        loss: float,
    ) -> None:
        self.upload_bytes += payload_bytes
        self.csr_bytes += baselines.csr_bytes(masks)
        bound = baselines.information_bound_bits(masks, value_format)
        self.bound_ratios.append(8 * payload_bytes / bound if bound else float("nan"))
        self.sparsities.append(sparsity)
        self.losses.append(loss)


class Trainer:
    """Runs federated training rounds for one configuration.

    Args:
        config: The run's configuration.
        data: The clients' data and the central test set.
        state: A checkpointed state to continue from (else a fresh start).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: FederatedData,
        state: TrainerState | None = None,
    ) -> None:
        self.config = config
        self.data = data
        input_shape = data.dataset.input_shape
        num_classes = data.dataset.num_classes

        def model_fn() -> tf.keras.Model:
            return build_model(
                config.model, input_shape, num_classes, **config.model_options
            )

        self.model_fn = model_fn
        initial = build_model(
            config.model,
            input_shape,
            num_classes,
            seed=config.seed,
            **config.model_options,
        )
        self.policy = PruningPolicy(prune_logits=config.prune_logits)
        self.targets = self.policy.select(initial)
        self.weight_names = [
            w.name for w in initial.trainable_weights + initial.non_trainable_weights
        ]
        self.num_trainable = len(initial.trainable_weights)
        self.shapes = [
            tuple(w.shape)
            for w in initial.trainable_weights + initial.non_trainable_weights
        ]
        self.optimizer = ClientOptimizerConfig(
            config.client_learning_rate, config.client_momentum
        )
        element_spec = (
            tf.TensorSpec([None, *input_shape], tf.float32),
            tf.TensorSpec([None], tf.int32),
        )
        self.process = FederatedProcess(
            model_fn,
            element_spec,
            self.optimizer,
            FusedRoundSettings(
                config.upload_values,
                config.aggregation,
                config.resolved_client_weighting == "num_examples",
            ),
        )
        self.evaluator = Evaluator(model_fn)
        self.schedule = build_schedule(config.schedule, config.sparsity, config.rounds)
        if isinstance(self.schedule, IterativeSchedule):
            self.schedule = IterativeSchedule(config.sparsity, config.step_fraction)
        self._finetune_fn = None
        self.rejections: list[tuple[int, int, str]] = []
        if state is None:
            state = TrainerState(
                round=0,
                server_weights=[
                    w.numpy()
                    for w in initial.trainable_weights + initial.non_trainable_weights
                ],
                clients=[ClientState() for _ in range(data.num_clients)],
                sampler_state=np.random.default_rng(config.seed).bit_generator.state,
                metrics=[],
            )
        self.state = state
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.sampler_state

    # ----------------------------------------------------------------- helpers

    def _transmit(
        self, values: list[np.ndarray], masks: list[np.ndarray]
    ) -> tuple[bytes, list[np.ndarray], list[np.ndarray]] | str:
        """Encodes a client's upload and decodes it as the server does.

        Returns:
            ``(payload, values, masks)`` as decoded, or the reason the server
            rejected the update (non-finite values, undecodable payload).
        """
        try:
            payload = wire.encode(
                values, masks, self.config.upload_values, self.config.positions
            )
        except ValueError as error:
            return f"client could not encode its update: {error}"
        payload = self.corrupt_payload(payload)
        try:
            decoded_values, decoded_masks = wire.decode(payload, self.shapes)
        except wire.PayloadError as error:
            return f"payload rejected: {error}"
        if not all(np.all(np.isfinite(v)) for v in decoded_values):
            return "payload rejected: non-finite values"
        return payload, decoded_values, decoded_masks

    def corrupt_payload(self, payload: bytes) -> bytes:
        """Hook between client and server (identity; tests inject faults here)."""
        return payload

    @property
    def model_bytes_dense(self) -> int:
        """Bytes of the whole model as float32."""
        return 4 * sum(int(np.prod(s)) for s in self.shapes)

    def _all_kept(self) -> list[np.ndarray]:
        return [np.ones(s, bool) for s in self.shapes[: self.num_trainable]]

    def _client_mask(self, client: int) -> list[np.ndarray]:
        mask = self.state.clients[client].mask
        return mask if mask is not None else self._all_kept()

    def _round_sparsity(self, round_number: int, client: ClientState) -> float:
        if self.config.method == "none":
            return 0.0
        if isinstance(self.schedule, IterativeSchedule):
            if self.config.aggregation == "subfedavg":
                return self.schedule.next_sparsity(client.sparsity)
            return self.schedule(round_number)
        return self.schedule(round_number)

    def _prunable_sparsity(self, masks: list[np.ndarray]) -> float:
        return sparsity_report(masks, self.targets).prunable_sparsity

    def _client_dataset(self, client: int, round_number: int) -> tf.data.Dataset:
        images, labels = self.data.client_train(client)
        seed = int(
            np.random.SeedSequence(
                [self.config.seed, round_number, client]
            ).generate_state(1)[0]
        )
        return batched_dataset(
            images,
            labels,
            self.config.batch_size,
            shuffle_seed=seed,
            epochs=self.config.local_epochs,
        )

    # ------------------------------------------------------------------ round

    def _prune_client(
        self,
        client: int,
        trainable: list[np.ndarray],
        current_mask: list[np.ndarray],
        round_number: int,
    ) -> tuple[list[np.ndarray], float]:
        """The client's pruning step: returns its new mask and sparsity."""
        config = self.config
        state = self.state.clients[client]
        target = self._round_sparsity(round_number, state)
        if config.method == "none" or target == 0.0:
            return current_mask, self._prunable_sparsity(current_mask)
        previous = current_mask if config.aggregation == "subfedavg" else None
        if previous is not None and target <= state.sparsity:
            return current_mask, state.sparsity
        candidate = build_masks(
            trainable,
            self.targets,
            config.method,
            target,
            masks=previous,
            structured_share=config.structured_share,
        )
        if config.aggregation == "subfedavg" and config.accuracy_threshold > 0:
            pruned = apply_masks(trainable, candidate)
            images, labels = self.data.client_train(client)
            self.evaluator.set_weights(pruned + self._non_trainable_placeholder())
            accuracy, _ = self.evaluator.evaluate(images, labels)
            if accuracy < config.accuracy_threshold:
                return current_mask, state.sparsity
        return candidate, self._prunable_sparsity(candidate)

    def _non_trainable_placeholder(self) -> list[np.ndarray]:
        return self.state.server_weights[self.num_trainable :]

    @property
    def fused(self) -> bool:
        """Whether rounds run as one TFF computation (see `FederatedProcess`)."""
        config = self.config
        return (
            config.method in ("none", "weight")
            and config.accuracy_threshold == 0
            and not config.verify_uploads
        )

    def _num_pruned(
        self, round_number: int, client: int, mask: list[np.ndarray]
    ) -> list[int]:
        """Per trainable weight, how many entries the client's new mask prunes.

        The fused round's form of `_prune_client` for weight pruning: 0 for
        every weight leaves the mask unchanged.
        """
        config = self.config
        state = self.state.clients[client]
        counts = [0] * self.num_trainable
        target = self._round_sparsity(round_number, state)
        if config.method == "none" or target == 0.0:
            return counts
        if config.aggregation == "subfedavg" and target <= state.sparsity:
            return counts
        for prunable in self.targets:
            counts[prunable.index] = num_to_prune(target, mask[prunable.index].size)
        return counts

    def _fused_clients(
        self,
        round_number: int,
        sampled: np.ndarray,
        start_masks: list[list[np.ndarray]],
        datasets: list[tf.data.Dataset],
        tally: _RoundTally,
    ) -> None:
        """One TFF call: train, prune, aggregate; then the clients' accounting."""
        config = self.config
        vanished = self.rng.random(len(sampled)) < config.dropout_rate
        tally.dropped = int(np.count_nonzero(vanished))
        counts = [
            self._num_pruned(round_number, int(c), m)
            for c, m in zip(sampled, start_masks, strict=True)
        ]
        new_weights, reports = self.process.run_round(
            self.state.server_weights, start_masks, counts, ~vanished, datasets
        )
        for client, report, gone in zip(sampled, reports, vanished, strict=True):
            client = int(client)
            if gone:
                continue
            if not report.finite:
                tally.reject(round_number, client, "update rejected: NaN or Inf values")
                continue
            state = self.state.clients[client]
            state.rounds_participated += 1
            masks = report.masks + [
                np.ones(s, bool) for s in self.shapes[self.num_trainable :]
            ]
            size = wire.encoded_size(
                masks, config.upload_values, config.positions, report.zero_kept
            )
            sparsity = self._prunable_sparsity(report.masks)
            tally.add(size, masks, config.upload_values, sparsity, report.mean_loss)
            state.sparsity = sparsity
            if config.aggregation == "subfedavg":
                state.mask = report.masks
        self.state.server_weights = new_weights

    def _driver_clients(
        self,
        round_number: int,
        sampled: np.ndarray,
        start_masks: list[list[np.ndarray]],
        datasets: list[tf.data.Dataset],
        tally: _RoundTally,
    ) -> None:
        """Two TFF calls with pruning and real encode/decode between them."""
        config = self.config
        outputs = self.process.client_work(
            self.state.server_weights, start_masks, datasets
        )
        uploads: list[ClientUpload] = []
        vanished = self.rng.random(len(sampled)) < config.dropout_rate
        tally.dropped = int(np.count_nonzero(vanished))
        for client, mask, output, gone in zip(
            sampled, start_masks, outputs, vanished, strict=True
        ):
            client = int(client)
            if gone:
                continue  # the device vanished before its upload arrived
            if not all(
                np.all(np.isfinite(w)) for w in output.trainable + output.non_trainable
            ):
                tally.reject(round_number, client, "update rejected: NaN or Inf values")
                continue
            new_mask, sparsity = self._prune_client(
                client, output.trainable, mask, round_number
            )
            values = apply_masks(output.trainable, new_mask) + output.non_trainable
            masks = new_mask + [
                np.ones(s, bool) for s in self.shapes[self.num_trainable :]
            ]
            upload = self._transmit(values, masks)
            state = self.state.clients[client]
            state.rounds_participated += 1
            if isinstance(upload, str):
                tally.reject(round_number, client, upload)
                continue
            payload, decoded_values, decoded_masks = upload
            tally.add(
                len(payload), masks, config.upload_values, sparsity, output.mean_loss
            )
            weight = (
                float(output.num_examples)
                if config.resolved_client_weighting == "num_examples"
                else 1.0
            )
            if config.aggregation == "fedavg":
                # The server rebuilds dense tensors: pruned entries count as 0.
                decoded_masks = [np.ones(s, bool) for s in self.shapes]
            uploads.append(ClientUpload(decoded_values, decoded_masks, weight))
            state.sparsity = sparsity  # of its last upload
            if config.aggregation == "subfedavg":
                state.mask = new_mask
        if uploads:
            self.state.server_weights = self.process.aggregate(
                self.state.server_weights, uploads
            )

    def run_round(self) -> dict[str, float]:
        """Runs one round and returns its metrics row."""
        config = self.config
        round_number = self.state.round
        started = time.perf_counter()
        sampled = np.sort(
            self.rng.choice(config.num_clients, config.clients_per_round, replace=False)
        )
        start_masks = [
            self._client_mask(c)
            if config.aggregation == "subfedavg"
            else self._all_kept()
            for c in sampled
        ]
        datasets = [self._client_dataset(int(c), round_number) for c in sampled]
        download = len(
            wire.encode(
                self.state.server_weights,
                [w != 0 for w in self.state.server_weights],
                "float32",
                config.positions,
            )
        )
        tally = _RoundTally()
        clients = self._fused_clients if self.fused else self._driver_clients
        clients(round_number, sampled, start_masks, datasets, tally)
        self.rejections.extend(tally.rejections)
        self.state.round += 1
        self.state.sampler_state = self.rng.bit_generator.state
        participating = tally.participating
        row: dict[str, float] = {
            "round": self.state.round,
            "sparsity": _mean(tally.sparsities),
            "global_sparsity": sparsity_report(
                self.state.server_weights[: self.num_trainable], self.targets
            ).prunable_sparsity,
            "upload_bytes": tally.upload_bytes,
            "upload_bytes_dense": self.model_bytes_dense * participating,
            "upload_bytes_csr": tally.csr_bytes,
            "upload_bytes_tff_8bit": baselines.tff_8bit_bytes(self.shapes)
            * participating,
            "upload_bound_ratio": _mean(tally.bound_ratios),
            "download_bytes": download * len(sampled),
            "train_loss": _mean(tally.losses),
            "clients_participating": participating,
            "clients_rejected": len(tally.rejections),
            "clients_dropped": tally.dropped,
            "round_skipped": int(participating == 0),
        }
        is_last = self.state.round == config.rounds
        if self.state.round % config.eval_every == 0 or is_last:
            row.update(self.evaluate())
        row["round_seconds"] = time.perf_counter() - started
        self.state.metrics.append(row)
        return row

    # ------------------------------------------------------------- evaluation

    def personal_weights(self, client: int) -> list[np.ndarray]:
        """Client's subnetwork: global weights times its mask."""
        trainable = self.state.server_weights[: self.num_trainable]
        if self.config.aggregation == "subfedavg":
            trainable = apply_masks(trainable, self._client_mask(client))
        return list(trainable) + self._non_trainable_placeholder()

    def central_sparsity(self) -> float:
        """The sparsity the central model is pruned to at the current round.

        The schedule's value at the last round played (for ``iterative``
        Sub-FedAvg, where each client has its own, the mean over the clients
        that have pruned); 0 without pruning.
        """
        if self.config.method == "none" or self.state.round == 0:
            return 0.0
        if (
            isinstance(self.schedule, IterativeSchedule)
            and self.config.aggregation == "subfedavg"
        ):
            pruned = [c.sparsity for c in self.state.clients if c.mask is not None]
            return float(np.mean(pruned)) if pruned else 0.0
        return float(self.schedule(self.state.round - 1))

    def central_weights(self) -> list[np.ndarray]:
        """The central model: the server weights pruned to `central_sparsity`.

        A pruning run promises a sparse model, but the server's weights are
        the union of what clients kept (and, for Sub-FedAvg, keep stale values
        where no client ever kept an entry). The central model prunes them
        with the run's method at the run's sparsity, for Sub-FedAvg the
        entries in none of the pruned clients' subnetworks first, so the
        global model that is evaluated and exported is the sparse model the
        run was asked for.
        """
        weights = self.state.server_weights
        target = self.central_sparsity()
        if target == 0.0:
            return list(weights)
        trainable = weights[: self.num_trainable]
        union = None
        if self.config.aggregation == "subfedavg":
            for client in self.state.clients:
                if client.mask is None:
                    continue
                if union is None:
                    union = [m.copy() for m in client.mask]
                    continue
                for kept, mask in zip(union, client.mask, strict=True):
                    np.logical_or(kept, mask, out=kept)
        masks = build_masks(
            trainable,
            self.targets,
            self.config.method,
            target,
            masks=union,
            structured_share=self.config.structured_share,
        )
        return apply_masks(trainable, masks) + list(weights[self.num_trainable :])

    def evaluate(self) -> dict[str, float]:
        """Central and personalized accuracy of the current state.

        ``central_*`` measure the central model (`central_weights`), and
        ``central_accuracy_unpruned`` the server's weights as they are.
        """
        dataset = self.data.dataset
        central = self.central_weights()
        self.evaluator.set_weights(central)
        central_accuracy, central_loss = self.evaluator.evaluate(
            dataset.x_test, dataset.y_test
        )
        unpruned_accuracy = central_accuracy
        if self.central_sparsity() > 0.0:  # else central is the server model
            self.evaluator.set_weights(self.state.server_weights)
            unpruned_accuracy, _ = self.evaluator.evaluate(
                dataset.x_test, dataset.y_test
            )
        accuracies = []
        for client in range(self.data.num_clients):
            images, labels = self.data.client_test(client)
            if labels.size == 0:
                continue
            self.evaluator.set_weights(self.personal_weights(client))
            accuracies.append(self.evaluator.evaluate(images, labels)[0])
        result = {
            "central_accuracy": central_accuracy,
            "central_loss": central_loss,
            "central_sparsity": sparsity_report(
                central[: self.num_trainable], self.targets
            ).prunable_sparsity,
            "central_accuracy_unpruned": unpruned_accuracy,
            "personalized_accuracy": float(np.mean(accuracies)),
        }
        if self.config.finetune_baseline:
            result["finetuned_personalized_accuracy"] = self.finetuned_accuracy()
        return result

    def finetuned_accuracy(self, epochs: int = 1) -> float:
        """Personalized accuracy after local fine-tuning.

        Each client trains the global model (or its subnetwork) for ``epochs``
        on its own data and is evaluated on its own test split; returns the
        mean over clients.
        """
        if self._finetune_fn is None:
            self._finetune_fn = build_client_train_fn(self.model_fn, self.optimizer)
        accuracies = []
        for client in range(self.data.num_clients):
            images, labels = self.data.client_test(client)
            if labels.size == 0:
                continue
            weights = self.personal_weights(client)
            mask = (
                self._client_mask(client)
                if self.config.aggregation == "subfedavg"
                else self._all_kept()
            )
            train_images, train_labels = self.data.client_train(client)
            dataset = batched_dataset(
                train_images,
                train_labels,
                self.config.batch_size,
                shuffle_seed=self.config.seed + client,
                epochs=epochs,
            )
            trainable, non_trainable, _, _ = self._finetune_fn(
                [tf.constant(w) for w in weights[: self.num_trainable]],
                [tf.constant(w) for w in weights[self.num_trainable :]],
                [tf.constant(m, tf.float32) for m in mask],
                dataset,
            )
            self.evaluator.set_weights(
                [w.numpy() for w in trainable] + [w.numpy() for w in non_trainable]
            )
            accuracies.append(self.evaluator.evaluate(images, labels)[0])
        return float(np.mean(accuracies))

    def global_model(self) -> tf.keras.Model:
        """The central model (`central_weights`) as a Keras model, zeros in place."""
        model = build_model(
            self.config.model,
            self.data.dataset.input_shape,
            self.data.dataset.num_classes,
            **self.config.model_options,
        )
        variables = model.trainable_weights + model.non_trainable_weights
        for variable, value in zip(variables, self.central_weights(), strict=True):
            variable.assign(value)
        return model
