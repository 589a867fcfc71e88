"""A variant swaps one role: two roles written here, outside the package.

FedProx (Li et al., 2020) is FedAvg with another client work: local SGD on
``loss + mu / 2 * ||w - w_0||^2``. A coordinate-wise trimmed mean is another
aggregator: drop each entry's largest and smallest client value, average the
rest. Both are composed with tffprune's distributor and finalizer by
`compose_round`, as a user would, without touching tffprune.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
import tiny_cnn

from tffprune.data import build_federated_data, load_dataset
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.messages import ClientInput, ClientOutput, PruningStep
from tffprune.fl.runtime import ensure_runtime
from tffprune.learning import (
    ClientStates,
    build_client_work,
    build_download_distributor,
    build_fedavg,
    build_masked_optimizer_finalizer,
    build_round_aggregator,
    build_sub_fedavg,
    client_input_type,
    compose_round,
)
from tffprune.models import build_model
from tffprune.pruning.packed_masks import pack_all

pytestmark = pytest.mark.slow

INPUT_SHAPE = (8, 8, 1)
ELEMENT_SPEC = (
    tf.TensorSpec([None, *INPUT_SHAPE], tf.float32),
    tf.TensorSpec([None], tf.int32),
)
LEARNING_RATE = 0.1


def model_fn():
    return build_model("tfmot_cnn", INPUT_SHAPE, 10)


def build_fedprox_client_work(download_type, inputs_type, dataset_type, mu):
    """FedProx's client work: plain SGD with the proximal term."""

    @tff.tensorflow.computation(download_type, inputs_type, dataset_type)
    def client_round(download, client, dataset):
        model = model_fn()
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        start = list(download.received)

        @tf.function  # one function: its reads and writes run in program order
        def train():
            for variable, value in zip(model.trainable_weights, start, strict=True):
                variable.assign(value)
            num_examples, loss_sum = tf.constant(0, tf.int64), tf.constant(0.0)
            for inputs, labels in dataset:
                with tf.GradientTape() as tape:
                    loss = loss_fn(labels, model(inputs, training=True))
                    proximal = tf.add_n(
                        [
                            tf.reduce_sum(tf.square(v - w0))
                            for v, w0 in zip(
                                model.trainable_weights, start, strict=True
                            )
                        ]
                    )
                    objective = loss + mu / 2 * proximal
                gradients = tape.gradient(objective, model.trainable_weights)
                for variable, gradient in zip(
                    model.trainable_weights, gradients, strict=True
                ):
                    variable.assign_sub(LEARNING_RATE * gradient)
                size = tf.shape(labels, out_type=tf.int64)[0]
                num_examples += size
                loss_sum += loss * tf.cast(size, tf.float32)
            # What the server rebuilds: the trained model (float32 downloads).
            values = [tf.identity(v) for v in model.trainable_weights]
            return values, num_examples, loss_sum

        values, num_examples, loss_sum = train()
        upload = (values, tf.cast(num_examples, tf.float32))
        output = ClientOutput(
            mask=list(client.mask),
            num_examples=num_examples,
            loss_sum=loss_sum,
            finite=tf.constant(True),
            zero_kept=[tf.constant(False) for _ in values],
            residual_written=tf.constant(False),
            personal=[],
            mask_distance=tf.constant(-1.0),
            values=[],
        )
        return upload, output

    return build_client_work(client_round)


class TrimmedMeanFactory(tff.aggregators.UnweightedAggregationFactory):
    """Per entry, the mean without the largest and the smallest client value."""

    def create(self, value_type):
        @tff.tensorflow.computation()
        def zeros():
            def filled(value):
                return [tf.fill(t.shape, value) for t in value_type]

            return filled(0.0), filled(-np.inf), filled(np.inf), tf.constant(0.0)

        accumulator_type = zeros.type_signature.result

        @tff.tensorflow.computation(accumulator_type, value_type)
        def accumulate(accumulator, value):
            sums, highs, lows, count = accumulator
            return (
                [s + v for s, v in zip(sums, value, strict=True)],
                [tf.maximum(h, v) for h, v in zip(highs, value, strict=True)],
                [tf.minimum(lo, v) for lo, v in zip(lows, value, strict=True)],
                count + 1.0,
            )

        @tff.tensorflow.computation(accumulator_type, accumulator_type)
        def merge(first, second):
            return (
                [a + b for a, b in zip(first[0], second[0], strict=True)],
                [tf.maximum(a, b) for a, b in zip(first[1], second[1], strict=True)],
                [tf.minimum(a, b) for a, b in zip(first[2], second[2], strict=True)],
                first[3] + second[3],
            )

        @tff.tensorflow.computation(accumulator_type)
        def report(accumulator):
            sums, highs, lows, count = accumulator
            return [
                (s - h - lo) / (count - 2.0)
                for s, h, lo in zip(sums, highs, lows, strict=True)
            ]

        @tff.federated_computation()
        def initialize():
            return tff.federated_value((), tff.SERVER)

        @tff.federated_computation(
            initialize.type_signature.result,
            tff.FederatedType(value_type, tff.CLIENTS),
        )
        def next_fn(state, value):
            trimmed = tff.federated_aggregate(value, zeros(), accumulate, merge, report)
            return tff.templates.MeasuredProcessOutput(
                state=state,
                result=trimmed,
                measurements=tff.federated_value((), tff.SERVER),
            )

        return tff.templates.AggregationProcess(initialize, next_fn)


def _fedprox_roles(mu):
    """The weights' type, initial weights, distributor and FedProx's work."""
    shapes = [tuple(w.shape) for w in model_fn().trainable_weights]
    weights_type = tff.StructWithPythonType(
        [tff.TensorType(np.float32, s) for s in shapes], list
    )
    inputs_type = client_input_type(shapes, error_feedback=False)

    @tff.tensorflow.computation()
    def initial_weights():
        return [tf.identity(w) for w in model_fn().trainable_weights]

    distributor = build_download_distributor(weights_type, inputs_type, personal=False)
    client_work = build_fedprox_client_work(
        distributor.next.type_signature.result.result.member,
        inputs_type,
        tff.SequenceType(tff.types.tensorflow_to_type(ELEMENT_SPEC)),
        mu,
    )
    return shapes, weights_type, initial_weights, distributor, client_work


def compose_fedprox(mu, aggregator_factory):
    shapes, weights_type, initial_weights, distributor, client_work = _fedprox_roles(mu)
    aggregator = build_round_aggregator(
        aggregator_factory,
        client_work.next.type_signature.result.result.member[0],
        masked=False,
    )
    finalizer = build_masked_optimizer_finalizer(
        tff.learning.optimizers.build_sgdm(1.0),
        weights_type,
        aggregator.next.type_signature.result.result.member,
        len(shapes),
    )
    process = compose_round(
        initial_weights, distributor, client_work, aggregator, finalizer
    )
    return process, shapes


@pytest.fixture(scope="module")
def clients():
    ensure_runtime()
    data = build_federated_data(load_dataset("digits"), 4, "iid", seed=0)
    return [data.client_train(c) for c in range(4)]


def _initial_weights():
    model = build_model("tfmot_cnn", INPUT_SHAPE, 10, seed=3)
    return [w.numpy() for w in model.trainable_weights]


def _run_composed(process, shapes, datasets, rounds=2):
    state = process.initialize()._replace(global_model_weights=_initial_weights())
    inputs = [
        ClientInput(
            mask=pack_all([np.ones(s, bool) for s in shapes]),
            counts=PruningStep(
                np.zeros(len(shapes), np.int32),
                np.zeros(len(shapes), np.int32),
                np.int32(0),
                np.int32(0),
            ),
            delivered=True,
            residual_files=(),
        )
        for _ in datasets
    ]
    for _ in range(rounds):
        state = process.next(state, inputs, datasets).state
    return [np.asarray(w) for w in state.global_model_weights]


def test_trimmed_mean_drops_the_largest_and_smallest_value():
    ensure_runtime()
    process = TrimmedMeanFactory().create(
        tff.StructWithPythonType([tff.TensorType(np.float32, [2])], list)
    )
    clients = [[np.array([1.0, -4.0], np.float32)],
               [np.array([2.0, 0.0], np.float32)],
               [np.array([3.0, 1.0], np.float32)],
               [np.array([10.0, 2.0], np.float32)]]  # fmt: skip

    output = process.next(process.initialize(), clients)

    # (1 + 2 + 3 + 10 - 10 - 1) / 2 = 2.5; (-4 + 0 + 1 + 2 - 2 + 4) / 2 = 0.5
    np.testing.assert_allclose(output.result[0], [2.5, 0.5])


def test_fedprox_without_its_term_equals_fedavg(clients):
    datasets = [batched_dataset(x, y, 16) for x, y in clients]
    process, shapes = compose_fedprox(0.0, tff.aggregators.MeanFactory())
    fedavg = build_fedavg(
        model_fn,
        ELEMENT_SPEC,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(LEARNING_RATE),
    )
    state = fedavg.set_model_weights(
        fedavg.initialize(),
        tff.learning.models.ModelWeights(_initial_weights(), []),
    )
    for _ in range(2):
        state = fedavg.next(state, datasets).state

    ours = _run_composed(process, shapes, datasets)

    theirs = fedavg.get_model_weights(state).trainable
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_fedprox_term_keeps_the_model_near_its_start(clients):
    datasets = [batched_dataset(x, y, 16) for x, y in clients]
    start = _initial_weights()

    def distance(mu):
        process, shapes = compose_fedprox(mu, tff.aggregators.MeanFactory())
        weights = _run_composed(process, shapes, datasets, rounds=1)
        squares = [np.sum((w - w0) ** 2) for w, w0 in zip(weights, start, strict=True)]
        return np.sqrt(sum(squares))

    assert 0 < distance(1.0) < distance(0.0)


def test_a_trimmed_mean_of_identical_clients_is_their_mean(clients):
    datasets = [batched_dataset(*clients[0], 16)] * 4
    trimmed, shapes = compose_fedprox(0.1, TrimmedMeanFactory())
    mean, _ = compose_fedprox(0.1, tff.aggregators.MeanFactory())

    ours = _run_composed(trimmed, shapes, datasets)
    theirs = _run_composed(mean, shapes, datasets)

    assert not np.allclose(ours[0], _initial_weights()[0])
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_roles_that_do_not_chain_are_refused_naming_both():
    shapes, weights_type, initial_weights, distributor, client_work = _fedprox_roles(
        0.0
    )
    aggregator = build_round_aggregator(
        None, client_work.next.type_signature.result.result.member[0], masked=False
    )
    # A finalizer for a model with one weight less.
    smaller = tff.StructWithPythonType(list(weights_type)[:-1], list)
    finalizer = build_masked_optimizer_finalizer(
        tff.learning.optimizers.build_sgdm(1.0),
        smaller,
        tff.StructWithPythonType([smaller, smaller], tuple),
        len(shapes) - 1,
    )

    with pytest.raises(
        TypeError, match="the aggregator's output does not fit the finalizer"
    ):
        compose_round(initial_weights, distributor, client_work, aggregator, finalizer)


class KeepAtLeast:
    """A personalization rule of a user's: never cut a kernel below ``minimum``."""

    early_snapshot = False

    def __init__(self, minimum):
        self.minimum = minimum

    def check(self, trial):
        kept = [tf.math.count_nonzero(trial.candidate[i]) for i in trial.targets]
        # A Python ``if`` on a tensor, as Keras users write: autograph turns it
        # into a tf.cond (the package's own steps are not converted; this is).
        if tf.reduce_min(kept) >= self.minimum:
            accept = tf.constant(True)
        else:
            accept = tf.constant(False)
        return accept, {}


@pytest.mark.parametrize("minimum, sparsity", [(0, 0.5), (10**9, 0.0)])
def test_a_guard_written_outside_the_package_decides_the_new_masks(minimum, sparsity):
    """A guard that never refuses prunes to 50%; one that always does, not."""
    process = build_sub_fedavg(
        tiny_cnn.model_fn, tiny_cnn.ELEMENT_SPEC, guards=[KeepAtLeast(minimum)]
    )
    states = ClientStates(process, sparsity=0.5, schedule="constant")
    data = tiny_cnn.digits_clients()[:2]
    output = process.next(
        process.initialize(),
        states.inputs([0, 1], 0),
        [batched_dataset(x, y, 16) for x, y in data],
    )
    assert states.update([0, 1], output.clients) == [True, True]
    assert [states.sparsity(c) for c in (0, 1)] == [
        pytest.approx(sparsity, abs=0.01)
    ] * 2
