"""What a federated round costs beyond the training and evaluation inside it.

The limit on a machine is a plain TensorFlow loop doing the same work in one
process, without TFF or tffprune's driver. Two such loops:

* dense FedAvg (`PlainLoop`): one Keras model, a ``tf.function`` training
  loop per client (Keras SGD with momentum, reset for each client), the
  NumPy weighted mean, and a run's evaluation of one network (the central
  test set, and every client's own test split);
* a pruned configuration's own work (`PlainPrunedLoop`): the same training
  under each client's mask, the method's TensorFlow pruning at the run's
  counts, FedAvg's mean or Sub-FedAvg's mean over the clients that kept an
  entry, the central model pruned, and each Sub-FedAvg client's own
  subnetwork scored on its split.

This benchmark times, in one run, those loops and tffprune's rounds
(``Trainer.run_round``, evaluation included unless ``--no-evaluate``) for
FedAvg and Sub-FedAvg with every pruning method and upload format, and
prints the median seconds per round after warm-up and tffprune's ratio to
the loop doing the same work (the #32 target), and to dense FedAvg's (what
the method costs on top of training). Each configuration's rounds alternate
with its plain loops' (dense, same work, tffprune, dense, ...), so a
machine's load that comes and goes weighs on all alike.

FedPM (``--aggregations fedpm``) trains other parameters (mask scores over
a frozen network, Adam): it is set beside a plain loop doing FedPM's
training (`PlainFedPMLoop`), its ratio taken against that.

With ``--main-job`` it times the README's main job as a whole instead: the
wall time of ``tffprune train --sparsity 0.5`` (start-up, checkpoints and
plots included) against that of each plain loop run as a program of its own
for the same 10 rounds (this file with ``--plain-job dense|same-work``: it
imports neither TFF nor tffprune's rounds), the three in turns, median of
``--repeats``.

The rounds after warm-up must not retrace any client function: the counts
of traces (`tffprune.fl.client.TRACES`) before and after them are checked.

Usage:
    uv run python experiments/benchmarks/round_overhead.py [--models fc]
        [--aggregations fedavg subfedavg fedpm] [--methods none weight unit]
        [--uploads float32 int8 int4+ef] [--rounds 5] [--warmup 2]
        [--no-evaluate]
    uv run python experiments/benchmarks/round_overhead.py --main-job [--repeats 3]

Targets (#32): every round at most 1.10x the plain loop doing its work,
evaluation included; the main job's wall time at most 1.25x the plain
program's.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tffprune.config import TrainConfig  # noqa: E402
from tffprune.data import build_federated_data, load_dataset  # noqa: E402
from tffprune.data.partition import FederatedData  # noqa: E402
from tffprune.data.pipeline import batched_dataset  # noqa: E402
from tffprune.fl.client import TRACES  # noqa: E402
from tffprune.models.outputs import classification_loss  # noqa: E402
from tffprune.models.source import resolve_model  # noqa: E402
from tffprune.pruning import probabilistic, tf_masks  # noqa: E402
from tffprune.pruning.counts import pruning_counts  # noqa: E402
from tffprune.pruning.methods import method_names  # noqa: E402
from tffprune.pruning.policy import PruningPolicy, build_masks  # noqa: E402

METHODS = method_names()
UPLOADS = {
    "float32": ("float32", False),
    "int8": ("int8", False),
    "int4+ef": ("int4", True),
}


class PlainLoop:
    """Dense FedAvg in plain TensorFlow and NumPy, evaluated like a run.

    Args:
        config: The run's settings (model, clients, batch, learning rate).
        data: The clients' data and the central test set.
    """

    def __init__(self, config: TrainConfig, data: FederatedData) -> None:
        self.config, self.data = config, data
        tf.keras.utils.set_random_seed(config.seed)
        model = resolve_model(
            config.model, tuple(data.dataset.input_shape), data.dataset.num_classes
        ).model_fn()
        self.model = model
        self.variables = model.trainable_weights + model.non_trainable_weights
        self.weights = [v.numpy() for v in self.variables]
        optimizer = tf.keras.optimizers.SGD(
            config.resolved_client_learning_rate, momentum=config.client_momentum
        )
        optimizer.build(model.trainable_weights)
        self.optimizer = optimizer
        loss = classification_loss(model)

        @tf.function
        def train(dataset):
            for inputs, labels in dataset:
                with tf.GradientTape() as tape:
                    value = loss(labels, model(inputs, training=True))
                gradients = tape.gradient(value, model.trainable_weights)
                optimizer.apply_gradients(
                    zip(gradients, model.trainable_weights, strict=True)
                )

        @tf.function(reduce_retracing=True)
        def scores(inputs, labels):
            outputs = model(inputs, training=False)
            predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
            return tf.equal(predicted, labels), loss(labels, outputs)

        self._train, self._scores = train, scores
        tests = [data.client_test(c) for c in range(data.num_clients)]
        self.client_inputs = np.concatenate([inputs for inputs, _ in tests])
        self.client_labels = np.concatenate([labels for _, labels in tests])
        self.client_starts = np.cumsum([0] + [labels.size for _, labels in tests])
        self.rng = np.random.default_rng(config.seed)

    def sampled(self) -> list[int]:
        """The round's clients, drawn as the run draws them (sorted)."""
        config = self.config
        chosen = self.rng.choice(config.num_clients, config.clients_per_round, False)
        return [int(client) for client in np.sort(chosen)]

    def client_dataset(
        self, client: int, round_number: int
    ) -> tuple[tf.data.Dataset, int]:
        """A client's shuffled training batches this round, and its examples."""
        config = self.config
        inputs, labels = self.data.client_train(client)
        seed = np.random.SeedSequence([config.seed, round_number, client])
        dataset = batched_dataset(
            inputs,
            labels,
            config.batch_size,
            shuffle_seed=int(seed.generate_state(1)[0]),
            epochs=config.local_epochs,
        )
        return dataset, labels.size

    def run_round(self, round_number: int, evaluate: bool) -> None:
        """One round: sample, train each client, average; then evaluate."""
        totals = [np.zeros_like(w) for w in self.weights]
        examples = 0
        for client in self.sampled():
            self._load(self.weights)
            for variable in self.optimizer.variables:
                variable.assign(tf.zeros_like(variable))
            dataset, size = self.client_dataset(client, round_number)
            self._train(dataset)
            for total, variable in zip(totals, self.variables, strict=True):
                total += size * variable.numpy()
            examples += size
        self.weights = [total / examples for total in totals]
        if evaluate:
            self.evaluate()

    def evaluate(self) -> tuple[float, float, float]:
        """Central accuracy and loss, and the mean of the clients' accuracies."""
        self._load(self.weights)
        dataset = self.data.dataset
        hits, loss = self._correct(dataset.x_test, dataset.y_test)
        client_hits, _ = self._correct(self.client_inputs, self.client_labels)
        per_client = [
            client_hits[start:end].mean()
            for start, end in itertools.pairwise(self.client_starts)
            if end > start
        ]
        return float(hits.mean()), loss, float(np.mean(per_client))

    def _load(self, values: list[np.ndarray]) -> None:
        """Sets the model's weights (trainable, then non-trainable)."""
        for variable, value in zip(self.variables, values, strict=True):
            variable.assign(value)

    def _correct(
        self, inputs: np.ndarray, labels: np.ndarray, batch_size: int = 2048
    ) -> tuple[np.ndarray, float]:
        """Per example whether the argmax is right, and the mean loss."""
        hits, loss_sum = [], 0.0
        for start in range(0, labels.size, batch_size):
            truth = labels[start : start + batch_size]
            right, mean_loss = self._scores(
                tf.constant(inputs[start : start + batch_size]),
                tf.constant(truth, tf.int64),
            )
            hits.append(right.numpy())
            loss_sum += float(mean_loss) * truth.size
        return np.concatenate(hits), loss_sum / max(labels.size, 1)


class PlainPrunedLoop(PlainLoop):
    """A pruned row's own work in plain TensorFlow and NumPy, evaluated alike.

    What FedAvg or Sub-FedAvg with a pruning method does in a round, without
    TFF or the driver: each client trains under its start mask (Sub-FedAvg:
    the mask it holds, all kept the first time; FedAvg: all kept) with its
    gradients masked, and prunes with the method's TensorFlow masks at the
    run's counts (`tffprune.pruning.tf_masks.build_masks`, what a round's
    client work runs); the server takes the mean of the pruned weights
    weighted by examples (FedAvg) or averages each entry over the clients
    that kept it (Sub-FedAvg, uniform). The evaluation scores the central
    model (the server weights pruned to the sparsity by the method's NumPy
    masks over the union of the clients' masks) on the central test set, and
    each client's own subnetwork (the server weights times its mask, loaded
    in the same ``tf.function`` that scores it; the server weights for a
    client without one, pooled) on its own test split.
    Uploads stay float32 whatever the row's format.
    """

    def __init__(self, config: TrainConfig, data: FederatedData) -> None:
        super().__init__(config, data)
        model, optimizer = self.model, self.optimizer
        loss = classification_loss(model)
        self.targets = tuple(PruningPolicy().select(model))
        shapes = [tuple(v.shape) for v in model.trainable_weights]
        self.shapes = shapes
        self.counts = pruning_counts(
            shapes,
            self.targets,
            config.method,
            config.sparsity,
            config.structured_share,
        ).as_tensors()[:3]
        self.personal = config.aggregation == "subfedavg"
        self.client_masks: dict[int, list[np.ndarray]] = {}
        method, targets = config.method, self.targets

        @tf.function
        def train(dataset, masks):
            kept = [tf.cast(mask, tf.float32) for mask in masks]
            for inputs, labels in dataset:
                with tf.GradientTape() as tape:
                    value = loss(labels, model(inputs, training=True))
                gradients = tape.gradient(value, model.trainable_weights)
                optimizer.apply_gradients(
                    zip(
                        [g * m for g, m in zip(gradients, kept, strict=True)],
                        model.trainable_weights,
                        strict=True,
                    )
                )
            weights = [tf.identity(w) for w in model.trainable_weights]
            return tf_masks.build_masks(method, targets, weights, masks, self.counts)

        # The server's trainable weights, on the TensorFlow side once an
        # evaluation: each client's subnetwork is loaded from them in-graph.
        self.server = [tf.Variable(v) for v in model.trainable_weights]
        server = self.server

        @tf.function(reduce_retracing=True)
        def subnetwork_hits(masks, inputs, labels):
            for variable, weight, mask in zip(
                model.trainable_weights, server, masks, strict=True
            ):
                variable.assign(weight * tf.cast(mask, tf.float32))
            outputs = model(inputs, training=False)
            predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
            return tf.math.count_nonzero(tf.equal(predicted, labels))

        self._train_pruned = train
        self._subnetwork_hits = subnetwork_hits

    def _start(self, client: int) -> list[np.ndarray]:
        held = self.client_masks.get(client) if self.personal else None
        return held or [np.ones(s, bool) for s in self.shapes]

    def run_round(self, round_number: int, evaluate: bool) -> None:
        """One round: sample, train and prune each client, aggregate."""
        num_trainable = len(self.shapes)
        totals = [np.zeros_like(w) for w in self.weights]
        covered = [np.zeros_like(w) for w in self.weights]
        for client in self.sampled():
            start = self._start(client)
            self._assign([w * m for w, m in zip(self.weights, start, strict=False)])
            for variable in self.optimizer.variables:
                variable.assign(tf.zeros_like(variable))
            dataset, size = self.client_dataset(client, round_number)
            kept = [k.numpy() for k in self._train_pruned(dataset, start)]
            if self.personal:
                self.client_masks[client] = kept
            # `tffprune.fl.aggregation.sub_fedavg`'s mean (FedAvg's with all
            # kept), summed in float32 as each client ends: the reference
            # keeps float64 copies, slower than a plain loop would be.
            share = 1.0 if self.personal else float(size)
            for index, variable in enumerate(self.variables):
                value = variable.numpy()
                if index < num_trainable:
                    mask = kept[index].astype(np.float32)
                    totals[index] += share * value * mask
                    covered[index] += share * (mask if self.personal else 1.0)
                else:
                    totals[index] += share * value
                    covered[index] += share
        self.weights = [
            np.where(c > 0, t / np.maximum(c, 1e-30), w).astype(np.float32)
            for t, c, w in zip(totals, covered, self.weights, strict=True)
        ]
        if evaluate:
            self.evaluate()

    def evaluate(self) -> tuple[float, float, float]:
        """Central accuracy (pruned), loss, and the clients' mean accuracy."""
        num_trainable = len(self.shapes)
        trainable = self.weights[:num_trainable]
        held = list(self.client_masks.values())
        union = (
            [np.logical_or.reduce([m[i] for m in held]) for i in range(num_trainable)]
            if held
            else None
        )
        central = build_masks(
            trainable,
            self.targets,
            self.config.method,
            self.config.sparsity,
            masks=union,
            structured_share=self.config.structured_share,
        )
        self._assign([w * m for w, m in zip(trainable, central, strict=True)])
        dataset = self.data.dataset
        hits, loss = self._correct(dataset.x_test, dataset.y_test)
        self._assign(trainable)
        spans = [
            (client, start, end)
            for client, (start, end) in enumerate(
                itertools.pairwise(self.client_starts)
            )
            if end > start
        ]
        pooled = [span for span in spans if span[0] not in self.client_masks]
        rows = np.concatenate(
            [np.arange(start, end) for _, start, end in pooled] or [np.arange(0)]
        )
        right = (
            self._correct(self.client_inputs[rows], self.client_labels[rows])[0]
            if rows.size
            else np.zeros(0, bool)
        )
        per_client, offset = [], 0
        for _, start, end in pooled:
            per_client.append(right[offset : offset + end - start].mean())
            offset += end - start
        for variable, value in zip(self.server, trainable, strict=True):
            variable.assign(value)
        for client, start, end in spans:
            mask = self.client_masks.get(client)
            if mask is None:
                continue
            hits_of_client = self._subnetwork_hits(
                mask,
                tf.constant(self.client_inputs[start:end]),
                tf.constant(self.client_labels[start:end], tf.int64),
            )
            per_client.append(int(hits_of_client) / (end - start))
        return float(hits.mean()), loss, float(np.mean(per_client))

    def _assign(self, trainable: list[np.ndarray]) -> None:
        self._load(trainable + self.weights[len(self.shapes) :])


class PlainFedPMLoop(PlainLoop):
    """FedPM in plain TensorFlow and NumPy: FedPM's training, evaluated alike.

    Each client trains scores over the seed's frozen network (a Bernoulli
    sample of the masks a step, the straight-through gradient, Keras Adam at
    the run's rate, reset for each client) and samples one mask; the
    probabilities are the mean of the round's smoothed masks (the posterior
    reset every round); the evaluated model is their likeliest network. The
    math is `tffprune.pruning.probabilistic`'s, without TFF or the driver.
    """

    def __init__(self, config: TrainConfig, data: FederatedData) -> None:
        super().__init__(config, data)
        variables = self.model.trainable_weights
        shapes = [tuple(v.shape) for v in variables]
        frozen = probabilistic.tf_signed_constants(shapes, config.seed)
        self.frozen = [w.numpy() for w in frozen]
        self.probabilities = [
            p.numpy() for p in probabilistic.tf_initial_probabilities(shapes, 0)
        ]
        self.weights = probabilistic.most_likely(self.frozen, self.probabilities)
        self.scores = [tf.Variable(tf.zeros(s)) for s in shapes]
        self.adam = tf.keras.optimizers.Adam(config.resolved_client_learning_rate)
        self.adam.build(self.scores)
        loss, model, scores, adam = (
            classification_loss(self.model),
            self.model,
            self.scores,
            self.adam,
        )

        def sample(seed):
            return [
                tf.random.stateless_uniform(
                    tf.shape(s), seed=tf.random.experimental.stateless_fold_in(seed, i)
                )
                < tf.sigmoid(s)
                for i, s in enumerate(scores)
            ]

        @tf.function
        def train_masks(dataset, seed):
            step = tf.constant(0, tf.int64)
            for inputs, labels in dataset:
                masks = sample(tf.random.experimental.stateless_fold_in(seed, step))
                for variable, weight, mask in zip(
                    variables, frozen, masks, strict=True
                ):
                    variable.assign(weight * tf.cast(mask, tf.float32))
                with tf.GradientTape() as tape:
                    value = loss(labels, model(inputs, training=True))
                gradients = tape.gradient(value, variables)
                adam.apply_gradients(
                    (probabilistic.tf_straight_through_gradient(g, w, s), s)
                    for g, w, s in zip(gradients, frozen, scores, strict=True)
                )
                step += 1
            return sample(tf.random.experimental.stateless_fold_in(seed, -1))

        self._train_masks = train_masks

    def run_round(self, round_number: int, evaluate: bool) -> None:
        """One round: sample, train each client's scores, average the masks."""
        sampled = self.sampled()
        totals = [np.zeros_like(p) for p in self.probabilities]
        for client in sampled:
            for score, p in zip(self.scores, self.probabilities, strict=True):
                score.assign(probabilistic.scores_from(p).astype(np.float32))
            for variable in self.adam.variables:
                variable.assign(tf.zeros_like(variable))
            dataset, _ = self.client_dataset(client, round_number)
            masks = self._train_masks(
                dataset, tf.constant([round_number, client], tf.int64)
            )
            for total, mask in zip(totals, masks, strict=True):
                total += mask.numpy()
        self.probabilities = [
            (probabilistic.smoothed_sum(total, len(sampled)) / len(sampled)).astype(
                np.float32
            )
            for total in totals
        ]
        self.weights = probabilistic.most_likely(self.frozen, self.probabilities)
        if evaluate:
            self.evaluate()


def paired_round_seconds(
    config: TrainConfig, data: FederatedData, rounds: int, warmup: int, evaluate: bool
) -> tuple[float, float | None, float]:
    """Median seconds of the plain loops' rounds and of a `Trainer`'s.

    They run in turns, a plain round then one of tffprune's, so a load that
    comes and goes on a shared machine falls on all alike; the first
    ``warmup`` rounds of each are not counted. Every configuration is set
    beside dense FedAvg's loop (`PlainLoop`); a pruned one also beside a
    plain loop doing its own pruning and evaluation (`PlainPrunedLoop`), and
    FedPM beside its own (`PlainFedPMLoop`) alone.

    Returns:
        ``(dense, same_work, tffprune)``: medians in seconds; ``same_work``
        None where the dense loop is the configuration's own work.
    """
    from tffprune.fl.training import Trainer

    if config.aggregation == "fedpm":
        loops = [PlainFedPMLoop(config, data)]
    elif config.method == "none":
        loops = [PlainLoop(config, data)]
    else:
        loops = [PlainLoop(config, data), PlainPrunedLoop(config, data)]
    trainer = Trainer(config, data)
    plain: list[list[float]] = [[] for _ in loops]
    ours = []
    for index in range(warmup + rounds):
        if index == warmup:
            traced = sum(TRACES.values())
        for loop, seconds in zip(loops, plain, strict=True):
            started = time.perf_counter()
            loop.run_round(index, evaluate)
            if index >= warmup:
                seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        trainer.run_round()
        if index >= warmup:
            ours.append(time.perf_counter() - started)
    retraced = sum(TRACES.values()) - traced
    if retraced:
        raise SystemExit(f"client functions retraced {retraced} times after warm-up")
    medians = [statistics.median(seconds) for seconds in plain]
    same_work = medians[1] if len(medians) > 1 else None
    return medians[0], same_work, statistics.median(ours)


def measure(arguments: argparse.Namespace, model: str, data: FederatedData) -> None:
    """Prints each configuration's round beside its plain loop's, and the ratio."""
    common = dict(
        model=model,
        num_clients=100,
        clients_per_round=10,
        rounds=10_000,
        eval_every=1 if arguments.evaluate else 10_000,
        batch_size=32,
    )
    evaluation = "with" if arguments.evaluate else "without"
    print(
        f"{model}, 10 clients x 480 examples, 1 epoch, batch 32, {evaluation} "
        f"evaluation each round; medians of {arguments.rounds} rounds after "
        f"{arguments.warmup} warm-up, each configuration's rounds in turns with "
        "its plain loop's",
        flush=True,
    )
    print(
        f"{'configuration':<44} {'dense':>8} {'same work':>9} {'tffprune':>9}"
        "  ratio (to the same work; to dense)",
        flush=True,
    )
    ratios, dense_ratios = [], []
    for name, config in _configurations(arguments, common):
        dense, same_work, seconds = paired_round_seconds(
            config, data, arguments.rounds, arguments.warmup, arguments.evaluate
        )
        own = dense if same_work is None else same_work
        ratios.append(seconds / own)
        dense_ratios.append(seconds / dense)
        work = "" if same_work is None else f"{same_work:7.2f} s"
        print(
            f"{name:<44} {dense:6.2f} s {work:>9} {seconds:7.2f} s  "
            f"{seconds / own:.2f}x; {seconds / dense:.2f}x",
            flush=True,
        )
    for label, values in (("the same work", ratios), ("dense", dense_ratios)):
        if values:
            print(
                f"ratios to {label}: median {statistics.median(values):.2f}x, "
                f"largest {max(values):.2f}x, {sum(r <= 1.10 for r in values)} "
                f"of {len(values)} at most 1.10x",
                flush=True,
            )


def _configurations(arguments: argparse.Namespace, common: dict):
    """Each row's ``(name, TrainConfig)``: FedPM once, the rest by method, upload."""
    for aggregation in arguments.aggregations:
        if aggregation == "fedpm":  # masks over a seeded network: no method
            yield (
                "fedpm (masks up, float32 probabilities down, Adam)",
                TrainConfig(**common, aggregation="fedpm"),
            )
            continue
        for method, upload in itertools.product(arguments.methods, arguments.uploads):
            values, error_feedback = UPLOADS[upload]
            sparsity = "" if method == "none" else " 50%"
            yield (
                f"{aggregation} {method}{sparsity} {upload}",
                TrainConfig(
                    **common,
                    aggregation=aggregation,
                    method=method,
                    sparsity=0.0 if method == "none" else 0.5,
                    upload_values=values,
                    error_feedback=error_feedback,
                ),
            )


def plain_job(loop_kind: str) -> None:
    """The main job's work in a plain loop, as a program of its own.

    Args:
        loop_kind: ``dense`` (`PlainLoop`) or ``same-work`` (`PlainPrunedLoop`
            at the main job's settings: Sub-FedAvg, weight pruning 50%).
    """
    config = TrainConfig()
    data = build_federated_data(
        load_dataset(config.dataset),
        config.num_clients,
        config.partition,
        seed=config.seed,
    )
    loop = (PlainLoop if loop_kind == "dense" else PlainPrunedLoop)(config, data)
    for round_number in range(config.rounds):
        loop.run_round(round_number, evaluate=True)
    accuracy, _, personalized = loop.evaluate()
    print(
        f"plain job ({loop_kind}): central accuracy {accuracy:.4f}, clients "
        f"{personalized:.4f}, "
        f"{time.perf_counter() - STARTED:.1f} s in the process, TFF imported: "
        f"{'tensorflow_federated' in sys.modules}"
    )


def main_job(repeats: int) -> None:
    """Wall time of the README's main job against the plain programs'.

    The plain programs: dense FedAvg, and the main job's own work
    (`PlainPrunedLoop`); the three run in turns, ``repeats`` times.
    """
    tffprune = Path(sys.executable).parent / "tffprune"
    walls: dict[str, list[float]] = {"dense": [], "same-work": [], "tffprune": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as directory:
            commands = {
                "dense": [sys.executable, __file__, "--plain-job", "dense"],
                "same-work": [sys.executable, __file__, "--plain-job", "same-work"],
                "tffprune": [
                    str(tffprune),
                    "train",
                    "--sparsity",
                    "0.5",
                    "--output-dir",
                    str(Path(directory) / "run"),
                ],
            }
            for name, command in commands.items():
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                walls[name].append(time.perf_counter() - started)
                if done.returncode:
                    raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
                last = (done.stdout.strip().splitlines() or [""])[-1]
                print(f"{name}: {walls[name][-1]:.1f} s; {last[:120]}")
    dense, same, ours = (statistics.median(walls[n]) for n in walls)
    print(
        f"main job wall time, median of {repeats}: tffprune train --sparsity 0.5 "
        f"{ours:.1f} s; plain programs: the same work {same:.1f} s "
        f"({ours / same:.2f}x), dense FedAvg {dense:.1f} s ({ours / dense:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fc"])
    parser.add_argument("--aggregations", nargs="+", default=["fedavg", "subfedavg"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--uploads", nargs="+", default=list(UPLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false")
    parser.add_argument("--main-job", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--plain-job", choices=("dense", "same-work"), help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.plain_job:
        plain_job(arguments.plain_job)
        return
    if arguments.main_job:
        main_job(arguments.repeats)
        return
    from tffprune.fl.runtime import LocalRuntime

    data = build_federated_data(load_dataset("fashion_mnist"), 100, "iid", seed=0)
    with LocalRuntime():
        for model in arguments.models:
            measure(arguments, model, data)
    print(f"client function traces in total: {dict(TRACES)}")


if __name__ == "__main__":
    main()
