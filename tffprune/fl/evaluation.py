"""Evaluation of a federated run's state: central and personalized accuracy.

* The central model (`central_weights`): the server weights pruned with the
  run's method to the run's sparsity; for Sub-FedAvg the entries in no
  client's subnetwork go first. A pruning run promises a sparse model, but
  the server's weights are the union of what clients kept (and keep stale
  values where no client ever kept an entry).
* Personalized accuracy: the mean over all clients of the client's
  subnetwork (global weights times its mask) on its own test split.
* Personal accuracy: the mean over all clients of the client's own model
  (`ClientState.personal_model`, the global model for a client never
  sampled), the Sub-FedAvg reference code's figure.
* The fine-tuning baseline: each client first trains, for a few more epochs
  on its own data and under its own mask, the model the protocol evaluates
  (the global model or its subnetwork; its own model): FedAvg + fine-tuning
  and Sub-FedAvg + the same fine-tuning, measured alike.

Plain TensorFlow: one compiled Keras model evaluates every weight list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tffprune.data.partition import FederatedData
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.algorithm import ClientState, PruningPlan
from tffprune.fl.client import build_client_train_fn, build_loader
from tffprune.fl.optimizer_steps import Optimizer
from tffprune.models.outputs import classification_loss
from tffprune.pruning.packed_masks import pack_all, unpack_tf
from tffprune.pruning.policy import apply_masks, sparsity_report
from tffprune.pruning.schedules import IterativeSchedule


class _TracedOnce:
    """A ``tf.function`` of ``function`` traced once, for any leading dimension.

    Its signature is the first call's arguments with their first axis (the
    examples', the clients') of any length: the calls that follow, with
    other numbers of examples or clients, reuse the one graph. (With
    ``reduce_retracing`` a second shape traces again, and the evaluators of
    a sweep's runs add up to TensorFlow's warning about frequent tracing.)
    """

    def __init__(self, function: Callable[..., tf.Tensor]) -> None:
        self._function = function
        self._traced = None

    def __call__(self, *arguments):
        if self._traced is None:
            signature = tf.nest.map_structure(
                lambda t: tf.TensorSpec(
                    [None, *t.shape[1:]] if t.shape.rank else [], t.dtype
                ),
                list(arguments),
            )
            self._traced = tf.function(self._function, input_signature=signature)
        return self._traced(*arguments)

    def tracing_count(self) -> int:
        """How many times the function was traced (0 or 1)."""
        return (
            0 if self._traced is None else self._traced.experimental_get_tracing_count()
        )


class Evaluator:
    """Evaluates weight lists with one compiled Keras model (plain TF).

    The forward pass, the argmax and the loss run in one ``tf.function`` per
    batch. Every client's subnetwork (weights times its mask) is evaluated
    in one ``tf.function`` call per chunk of clients (`client_chunk`): the
    subnetwork is loaded and its examples scored inside the graph, so a
    round's evaluation makes no Python call and no NumPy pass per client.
    Clients without a mask share one network: their examples are pooled in
    full batches and the hits summed per client.

    Args:
        model_fn: Builds the model.
        batch_size: Examples per forward pass.
        client_chunk: Subnetworks per call, bounding the masks held at once
            (a call also holds at most 16 batches of examples).
    """

    def __init__(
        self,
        model_fn: Callable[[], tf.keras.Model],
        batch_size: int = 2048,
        client_chunk: int = 16,
    ) -> None:
        self.model = model = model_fn()
        self.batch_size, self.client_chunk = batch_size, client_chunk
        loss = classification_loss(model)
        load = build_loader(model)
        num_trainable = len(model.trainable_weights)
        shapes = [w.shape.as_list() for w in model.trainable_weights]

        def hits(inputs, labels):
            outputs = model(inputs, training=False)
            predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
            return tf.math.count_nonzero(tf.equal(predicted, labels)), outputs

        @_TracedOnce
        def scores(inputs, labels):
            correct, outputs = hits(inputs, labels)
            return correct, loss(labels, outputs)

        @_TracedOnce
        def client_hits(weights, masks, inputs, labels, starts):
            clients = tf.size(starts) - 1
            correct = tf.TensorArray(tf.int64, size=clients)
            for client in tf.range(clients):
                load(
                    weights[:num_trainable],
                    weights[num_trainable:],
                    [
                        tf.cast(unpack_tf(m[client], shape), tf.float32)
                        for m, shape in zip(masks, shapes, strict=True)
                    ],
                )
                count = tf.constant(0, tf.int64)
                end = starts[client + 1]
                for start in tf.range(starts[client], end, batch_size):
                    stop = tf.minimum(start + batch_size, end)
                    count += hits(inputs[start:stop], labels[start:stop])[0]
                correct = correct.write(client, count)
            return correct.stack()

        @_TracedOnce
        def pooled_hits(weights, inputs, labels, segments, clients):
            load(weights[:num_trainable], weights[num_trainable:])
            correct = tf.zeros([clients], tf.int64)
            size = tf.size(labels)
            for start in tf.range(0, size, batch_size):
                stop = tf.minimum(start + batch_size, size)
                outputs = model(inputs[start:stop], training=False)
                predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
                right = tf.cast(tf.equal(predicted, labels[start:stop]), tf.int64)
                correct += tf.math.unsorted_segment_sum(
                    right, segments[start:stop], clients
                )
            return correct

        self._scores = scores
        self._client_hits = client_hits
        self._pooled_hits = pooled_hits
        # Reused between calls: a fresh stack of a chunk's masks would be
        # new pages to fault in every evaluation (fc: 38 MB a chunk).
        self._mask_buffers: list[np.ndarray] = []

    def tracing_counts(self) -> dict[str, int]:
        """How many times each evaluation function was traced (0 or 1 each)."""
        return {
            "scores": self._scores.tracing_count(),
            "client_hits": self._client_hits.tracing_count(),
            "pooled_hits": self._pooled_hits.tracing_count(),
        }

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Loads trainable then non-trainable weights."""
        variables = self.model.trainable_weights + self.model.non_trainable_weights
        for variable, value in zip(variables, weights, strict=True):
            variable.assign(value)

    def evaluate(self, inputs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Accuracy and mean loss of the loaded weights on the examples."""
        if labels.size == 0:
            return float("nan"), float("nan")
        correct, loss_sum, size = 0, 0.0, self.batch_size
        for start in range(0, labels.size, size):
            truth = labels[start : start + size]
            hits, mean_loss = self._scores(
                tf.constant(inputs[start : start + size]),
                tf.constant(truth, tf.int64),
            )
            correct += int(hits)
            loss_sum += float(mean_loss) * truth.size
        return correct / labels.size, loss_sum / labels.size

    def subnetwork_accuracies(
        self,
        weights: Sequence[np.ndarray],
        masks: Sequence[Sequence[np.ndarray] | None],
        tests: Sequence[tuple[np.ndarray, np.ndarray]],
    ) -> list[float]:
        """Accuracy of each subnetwork of ``weights`` on its own examples.

        A subnetwork's examples are scored in batches of their own; those of
        the clients without a mask, which share the whole network, in
        batches across clients. An example's answer does not depend on the
        batch it is in, so the figures are those of evaluating each
        subnetwork by itself (`evaluate`).

        Args:
            weights: Trainable then non-trainable weights.
            masks: Per subnetwork, one boolean mask per trainable weight
                (None: every entry kept).
            tests: Per subnetwork, its ``(inputs, labels)``; one without
                examples is skipped.

        Returns:
            The accuracies of the subnetworks with examples, in order.
        """
        tensors = [tf.constant(w) for w in weights]
        present = [i for i, (_, labels) in enumerate(tests) if labels.size]
        sizes = {i: tests[i][1].size for i in present}
        accuracies = {}
        whole = [i for i in present if masks[i] is None]
        pruned = [i for i in present if masks[i] is not None]
        for chunk in self._chunks(whole, [sizes[i] for i in whole], len(whole)):
            correct = self._pooled_hits(
                tensors,
                *self._examples(chunk, tests),
                tf.constant(
                    np.repeat(np.arange(len(chunk)), [sizes[i] for i in chunk]),
                    tf.int32,
                ),
                tf.constant(len(chunk), tf.int32),
            )
            for client, hits in zip(chunk, correct.numpy(), strict=True):
                accuracies[client] = int(hits) / sizes[client]
        for chunk in self._chunks(
            pruned, [sizes[i] for i in pruned], self.client_chunk
        ):
            counts = [sizes[i] for i in chunk]
            correct = self._client_hits(
                tensors,
                self._stacked_masks([masks[i] for i in chunk]),
                *self._examples(chunk, tests),
                tf.constant(np.cumsum([0, *counts]), tf.int32),
            )
            for client, hits, size in zip(chunk, correct.numpy(), counts, strict=True):
                accuracies[client] = int(hits) / size
        return [accuracies[i] for i in present]

    @staticmethod
    def _examples(
        chunk: list[int], tests: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The chunk's clients' examples, one after another."""
        return (
            tf.constant(np.concatenate([tests[i][0] for i in chunk])),
            tf.constant(np.concatenate([tests[i][1] for i in chunk]), tf.int64),
        )

    def _stacked_masks(self, masks: list[Sequence[np.ndarray]]) -> list[tf.Tensor]:
        """Per trainable weight, the packed masks of a chunk's clients stacked.

        A client's `PackedMasks` go as their bytes (no pass over the
        entries); the graph unpacks each subnetwork's as it loads it.
        """
        packed = [pack_all(m) for m in masks]
        if not self._mask_buffers:
            self._mask_buffers = [
                np.empty((self.client_chunk, p.size), np.uint8) for p in packed[0]
            ]
        stacked = []
        for index, buffer in enumerate(self._mask_buffers):
            view = buffer[: len(masks)]
            np.stack([p[index] for p in packed], out=view)
            stacked.append(tf.constant(view))
        return stacked

    def _chunks(
        self, clients: list[int], sizes: list[int], limit: int
    ) -> list[list[int]]:
        """Consecutive clients, at most ``limit`` and 16 batches a call."""
        chunks, current, examples = [], [], 0
        for client, size in zip(clients, sizes, strict=True):
            full = len(current) == limit
            if current and (full or examples + size > 16 * self.batch_size):
                chunks.append(current)
                current, examples = [], 0
            current.append(client)
            examples += size
        return chunks + [current] if current else chunks


def central_sparsity(
    plan: PruningPlan, clients: Sequence[ClientState], rounds_done: int
) -> float:
    """The sparsity the central model is pruned to after ``rounds_done`` rounds.

    The schedule's value at the last round played (for ``iterative``
    Sub-FedAvg, where each client has its own, the mean over the clients that
    have pruned); 0 without pruning.
    """
    if plan.method == "none" or rounds_done == 0:
        return 0.0
    if isinstance(plan.schedule, IterativeSchedule) and plan.personal:
        pruned = [c.sparsity for c in clients if c.mask is not None]
        return float(np.mean(pruned)) if pruned else 0.0
    return float(plan.schedule(rounds_done - 1))


def central_weights(
    weights: Sequence[np.ndarray],
    plan: PruningPlan,
    clients: Sequence[ClientState],
    rounds_done: int,
) -> list[np.ndarray]:
    """The central model: the server weights pruned to `central_sparsity`."""
    target = central_sparsity(plan, clients, rounds_done)
    if target == 0.0:
        return list(weights)
    num_trainable = len(plan.shapes)
    masks = plan.subnetwork(weights, clients, target)
    return apply_masks(weights[:num_trainable], masks) + list(weights[num_trainable:])


def personal_weights(
    weights: Sequence[np.ndarray], plan: PruningPlan, client: ClientState
) -> list[np.ndarray]:
    """A client's subnetwork: global weights times its mask."""
    num_trainable = len(plan.shapes)
    trainable = list(weights[:num_trainable])
    if plan.personal and client.mask is not None:
        trainable = apply_masks(trainable, client.mask)
    return trainable + list(weights[num_trainable:])


class RunEvaluator:
    """Evaluates a run's state on the central and the clients' test data.

    Args:
        model_fn: Builds the model.
        data: The clients' data and the central test set.
        plan: The run's pruning plan.
        optimizer: The local optimizer (for the fine-tuning baseline).
        batch_size: Batch size of the fine-tuning baseline.
        seed: Seed of the fine-tuning baseline's shuffles.
        personal_models: Also report ``personal_accuracy``: each client's
            own model (`ClientState.personal_model`) on its own test split,
            the global model for a client without one.
        finetune_epochs: Epochs of the fine-tuning baseline.
        client_test: A client's test data: ``own`` (its held-out split) or
            ``labels`` (every central test example of the labels it holds,
            as the Sub-FedAvg reference code evaluates).
    """

    def __init__(
        self,
        model_fn: Callable[[], tf.keras.Model],
        data: FederatedData,
        plan: PruningPlan,
        optimizer: Optimizer,
        batch_size: int,
        seed: int,
        personal_models: bool = False,
        client_test: str = "own",
        finetune_epochs: int = 1,
    ) -> None:
        self.model_fn = model_fn
        self.data = data
        self.plan = plan
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.seed = seed
        self.personal_models = personal_models
        self.finetune_epochs = finetune_epochs
        self.client_test = (
            data.client_test_of_labels if client_test == "labels" else data.client_test
        )
        self.evaluator = Evaluator(model_fn)
        self._finetune_fn = None

    def evaluate(
        self,
        weights: Sequence[np.ndarray],
        clients: Sequence[ClientState],
        rounds_done: int,
        finetune: bool = False,
        unpruned: bool = True,
    ) -> dict[str, float]:
        """Central and personalized accuracy of a state.

        ``central_*`` measure the central model (`central_weights`), and
        ``central_accuracy_unpruned`` the server's weights as they are: a
        second pass over the central test set when the central model is
        pruned, left out (no such key) with ``unpruned`` False.
        """
        dataset = self.data.dataset
        num_trainable = len(self.plan.shapes)
        central = central_weights(weights, self.plan, clients, rounds_done)
        self.evaluator.set_weights(central)
        central_accuracy, central_loss = self.evaluator.evaluate(
            dataset.x_test, dataset.y_test
        )
        unpruned_accuracy = central_accuracy
        pruned = central_sparsity(self.plan, clients, rounds_done) > 0.0
        if pruned and unpruned:
            unpruned_accuracy = self.unpruned_accuracy(weights)
        accuracies = self.evaluator.subnetwork_accuracies(
            weights,
            [c.mask if self.plan.personal else None for c in clients],
            [self.client_test(index) for index in range(len(clients))],
        )
        result = {
            "central_accuracy": central_accuracy,
            "central_loss": central_loss,
            "central_sparsity": sparsity_report(
                central[:num_trainable], self.plan.targets
            ).prunable_sparsity,
            # NaN when no client holds test examples (client_test_fraction 0).
            "personalized_accuracy": float(np.mean(accuracies))
            if accuracies
            else float("nan"),
        }
        if unpruned or not pruned:
            result["central_accuracy_unpruned"] = unpruned_accuracy
        if self.personal_models:
            result.update(self.personal_accuracy(weights, clients))
        if finetune:
            result["finetuned_personalized_accuracy"] = self.finetuned_accuracy(
                weights, clients
            )
            if self.personal_models:
                result["finetuned_personal_accuracy"] = self.finetuned_accuracy(
                    weights, clients, own_models=True
                )
        return result

    def unpruned_accuracy(self, weights: Sequence[np.ndarray]) -> float:
        """The server's weights as they are, on the central test set."""
        self.evaluator.set_weights(weights)
        dataset = self.data.dataset
        return self.evaluator.evaluate(dataset.x_test, dataset.y_test)[0]

    def personal_accuracy(
        self, weights: Sequence[np.ndarray], clients: Sequence[ClientState]
    ) -> dict[str, float]:
        """Mean accuracy of each client's own model on its own test split.

        The Sub-FedAvg reference code's figure: a client's model from the
        last round it took part in, after its local training and pruning. A
        client that never took part is evaluated with the global weights and
        counted in ``clients_without_personal_model``.
        """
        shapes = [w.shape for w in weights]
        accuracies, without = [], 0
        for index, client in enumerate(clients):
            inputs, labels = self.client_test(index)
            if labels.size == 0:
                continue
            if client.personal_model is None:
                without += 1
                self.evaluator.set_weights(weights)
            else:
                self.evaluator.set_weights(client.personal_model.expand(shapes))
            accuracies.append(self.evaluator.evaluate(inputs, labels)[0])
        return {
            "personal_accuracy": float(np.mean(accuracies)),
            "clients_without_personal_model": without,
        }

    def finetuned_accuracy(
        self,
        weights: Sequence[np.ndarray],
        clients: Sequence[ClientState],
        own_models: bool = False,
    ) -> float:
        """Mean accuracy over clients after local fine-tuning.

        Each client trains, for ``finetune_epochs`` on its own training data
        under its own mask, the global model (its subnetwork with Sub-FedAvg),
        or with ``own_models`` its own model (the global model if it has
        none), and is evaluated on its own test data.
        """
        if self._finetune_fn is None:
            self._finetune_fn = build_client_train_fn(self.model_fn, self.optimizer)
        num_trainable = len(self.plan.shapes)
        accuracies = []
        for index, client in enumerate(clients):
            inputs, labels = self.client_test(index)
            if labels.size == 0:
                continue
            if own_models and client.personal_model is not None:
                start = client.personal_model.expand([w.shape for w in weights])
            else:
                start = personal_weights(weights, self.plan, client)
            mask = (
                client.mask
                if self.plan.personal and client.mask is not None
                else [np.ones(s, bool) for s in self.plan.shapes]
            )
            train_inputs, train_labels = self.data.client_train(index)
            dataset = batched_dataset(
                train_inputs,
                train_labels,
                self.batch_size,
                shuffle_seed=self.seed + index,
                epochs=self.finetune_epochs,
            )
            trainable, non_trainable, _, _ = self._finetune_fn(
                [tf.constant(w) for w in start[:num_trainable]],
                [tf.constant(w) for w in start[num_trainable:]],
                [tf.constant(m, tf.float32) for m in mask],
                dataset,
            )
            self.evaluator.set_weights(
                [w.numpy() for w in trainable] + [w.numpy() for w in non_trainable]
            )
            accuracies.append(self.evaluator.evaluate(inputs, labels)[0])
        return float(np.mean(accuracies))
