"""What a federated round costs beyond the training and evaluation inside it.

The limit on a machine is a plain TensorFlow loop doing the same work in one
process: dense FedAvg with one Keras model, a ``tf.function`` training loop
per client (Keras SGD with momentum, reset for each client), the NumPy
weighted mean, and the same evaluation as a run's (the central test set, and
every client's own test split). This benchmark times, in one run, that loop
and tffprune's rounds (``Trainer.run_round``, evaluation included unless
``--no-evaluate``) for FedAvg and Sub-FedAvg with every pruning method and
upload format, and prints the median seconds per round after warm-up and the
ratio to the plain loop. Each configuration's rounds alternate with a plain
loop's of its own (plain, tffprune, plain, ...), so a machine's load that
comes and goes weighs on both alike.

FedPM (``--aggregations fedpm``) trains other parameters (mask scores over
a frozen network, Adam): it is set beside a plain loop doing FedPM's
training (`PlainFedPMLoop`), its ratio taken against that.

With ``--main-job`` it times the README's main job as a whole instead: the
wall time of ``tffprune train --sparsity 0.5`` (start-up, checkpoints and
plots included) against that of the plain loop run as a program of its own
for the same 10 rounds (this file with ``--plain-job``: it imports neither
TFF nor tffprune's rounds), the two interleaved, median of ``--repeats``.

The rounds after warm-up must not retrace any client function: the counts
of traces (`tffprune.fl.client.TRACES`) before and after them are checked.

Usage:
    uv run python experiments/benchmarks/round_overhead.py [--models fc]
        [--aggregations fedavg subfedavg fedpm] [--methods none weight unit]
        [--uploads float32 int8 int4+ef] [--rounds 5] [--warmup 2]
        [--no-evaluate]
    uv run python experiments/benchmarks/round_overhead.py --main-job [--repeats 3]

Targets (#32): every round at most 1.10x the plain loop, evaluation included;
the main job's wall time at most 1.25x the plain program's.
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
from tffprune.pruning import probabilistic  # noqa: E402
from tffprune.pruning.methods import method_names  # noqa: E402

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

    def run_round(self, round_number: int, evaluate: bool) -> None:
        """One round: sample, train each client, average; then evaluate."""
        config = self.config
        sampled = np.sort(
            self.rng.choice(config.num_clients, config.clients_per_round, False)
        )
        totals = [np.zeros_like(w) for w in self.weights]
        examples = 0
        for client in sampled:
            for variable, value in zip(self.variables, self.weights, strict=True):
                variable.assign(value)
            for variable in self.optimizer.variables:
                variable.assign(tf.zeros_like(variable))
            inputs, labels = self.data.client_train(int(client))
            seed = int(
                np.random.SeedSequence(
                    [config.seed, round_number, int(client)]
                ).generate_state(1)[0]
            )
            self._train(
                batched_dataset(
                    inputs,
                    labels,
                    config.batch_size,
                    shuffle_seed=seed,
                    epochs=config.local_epochs,
                )
            )
            for total, variable in zip(totals, self.variables, strict=True):
                total += labels.size * variable.numpy()
            examples += labels.size
        self.weights = [total / examples for total in totals]
        if evaluate:
            self.evaluate()

    def evaluate(self) -> tuple[float, float, float]:
        """Central accuracy and loss, and the mean of the clients' accuracies."""
        for variable, value in zip(self.variables, self.weights, strict=True):
            variable.assign(value)
        dataset = self.data.dataset
        hits, loss = self._correct(dataset.x_test, dataset.y_test)
        client_hits, _ = self._correct(self.client_inputs, self.client_labels)
        per_client = [
            client_hits[start:end].mean()
            for start, end in itertools.pairwise(self.client_starts)
            if end > start
        ]
        return float(hits.mean()), loss, float(np.mean(per_client))

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
        config = self.config
        sampled = np.sort(
            self.rng.choice(config.num_clients, config.clients_per_round, False)
        )
        totals = [np.zeros_like(p) for p in self.probabilities]
        for client in sampled:
            for score, p in zip(self.scores, self.probabilities, strict=True):
                score.assign(probabilistic.scores_from(p).astype(np.float32))
            for variable in self.adam.variables:
                variable.assign(tf.zeros_like(variable))
            inputs, labels = self.data.client_train(int(client))
            seed = [config.seed, round_number, int(client)]
            masks = self._train_masks(
                batched_dataset(
                    inputs,
                    labels,
                    config.batch_size,
                    shuffle_seed=int(np.random.SeedSequence(seed).generate_state(1)[0]),
                    epochs=config.local_epochs,
                ),
                tf.constant(seed[1:], tf.int64),
            )
            for total, mask in zip(totals, masks, strict=True):
                total += mask.numpy()
        self.probabilities = [
            (probabilistic.smoothed_sum(total, sampled.size) / sampled.size).astype(
                np.float32
            )
            for total in totals
        ]
        self.weights = probabilistic.most_likely(self.frozen, self.probabilities)
        if evaluate:
            self.evaluate()


def paired_round_seconds(
    config: TrainConfig, data: FederatedData, rounds: int, warmup: int, evaluate: bool
) -> tuple[float, float]:
    """Median seconds of the plain loop's rounds and of a `Trainer`'s.

    The two run in turns, a plain round then one of tffprune's, so a load
    that comes and goes on a shared machine falls on both alike; the first
    ``warmup`` rounds of each are not counted. FedPM is set beside its own
    plain loop (`PlainFedPMLoop`), every other configuration beside dense
    FedAvg's (`PlainLoop`).
    """
    from tffprune.fl.training import Trainer

    loop = (PlainFedPMLoop if config.aggregation == "fedpm" else PlainLoop)(
        config, data
    )
    trainer = Trainer(config, data)
    plain, ours = [], []
    for index in range(warmup + rounds):
        if index == warmup:
            traced = sum(TRACES.values())
        started = time.perf_counter()
        loop.run_round(index, evaluate)
        middle = time.perf_counter()
        trainer.run_round()
        ended = time.perf_counter()
        if index >= warmup:
            plain.append(middle - started)
            ours.append(ended - middle)
    retraced = sum(TRACES.values()) - traced
    if retraced:
        raise SystemExit(f"client functions retraced {retraced} times after warm-up")
    return statistics.median(plain), statistics.median(ours)


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
    print(f"{'configuration':<52} {'plain':>8} {'tffprune':>9}  ratio", flush=True)
    ratios = []
    for name, config in _configurations(arguments, common):
        plain, seconds = paired_round_seconds(
            config, data, arguments.rounds, arguments.warmup, arguments.evaluate
        )
        ratios.append(seconds / plain)
        print(
            f"{name:<52} {plain:6.2f} s {seconds:7.2f} s  {seconds / plain:.2f}x",
            flush=True,
        )
    if ratios:
        print(
            f"ratios: median {statistics.median(ratios):.2f}x, largest "
            f"{max(ratios):.2f}x, {sum(r <= 1.10 for r in ratios)} of "
            f"{len(ratios)} at most 1.10x",
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


def plain_job() -> None:
    """The main job's work in the plain loop, as a program of its own."""
    config = TrainConfig()
    data = build_federated_data(
        load_dataset(config.dataset),
        config.num_clients,
        config.partition,
        seed=config.seed,
    )
    loop = PlainLoop(config, data)
    for round_number in range(config.rounds):
        loop.run_round(round_number, evaluate=True)
    accuracy, _, personalized = loop.evaluate()
    print(
        f"plain job: central accuracy {accuracy:.4f}, clients {personalized:.4f}, "
        f"{time.perf_counter() - STARTED:.1f} s in the process, TFF imported: "
        f"{'tensorflow_federated' in sys.modules}"
    )


def main_job(repeats: int) -> None:
    """Wall time of the README's main job against the plain program's."""
    tffprune = Path(sys.executable).parent / "tffprune"
    walls: dict[str, list[float]] = {"plain": [], "tffprune": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as directory:
            commands = {
                "plain": [sys.executable, __file__, "--plain-job"],
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
    plain, ours = (statistics.median(walls[n]) for n in ("plain", "tffprune"))
    print(
        f"main job wall time, median of {repeats}: plain {plain:.1f} s, "
        f"tffprune train --sparsity 0.5 {ours:.1f} s, {ours / plain:.2f}x"
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
    parser.add_argument("--plain-job", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.plain_job:
        plain_job()
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
