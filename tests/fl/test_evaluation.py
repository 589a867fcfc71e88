"""Which model each protocol evaluates, and the fine-tuning baseline (no TFF)."""

import numpy as np
import pytest
import tensorflow_federated as tff

from tffprune.compression.compact import at_positions
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.algorithm import ClientState, PruningPlan
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.fl.evaluation import Evaluator, RunEvaluator
from tffprune.models import build_model
from tffprune.models.outputs import classification_loss
from tffprune.pruning import ConstantSparsity, PruningPolicy

INPUT_SHAPE = (8, 8, 1)


def model_fn():
    return build_model("tfmot_cnn", INPUT_SHAPE, 10, seed=3)


@pytest.fixture(scope="module")
def setting():
    data = build_federated_data(load_dataset("digits"), 4, "iid", seed=1)
    model = model_fn()
    weights = [w.numpy() for w in model.trainable_weights + model.non_trainable_weights]
    plan = PruningPlan(
        ClientWorkConfig.from_options("weight", tuple(PruningPolicy().select(model))),
        ConstantSparsity(0.5),
        tuple(tuple(w.shape) for w in model.trainable_weights),
    )
    return data, weights, plan


def _evaluator(setting, learning_rate, epochs=1):
    data, _, plan = setting
    return RunEvaluator(
        model_fn,
        data,
        plan,
        tff.learning.optimizers.build_sgdm(learning_rate),
        batch_size=16,
        seed=0,
        personal_models=True,
        finetune_epochs=epochs,
    )


def _clients(setting):
    """Client 0 has its own model (the global one scaled by -1, a different
    classifier); client 1 a mask; clients 2 and 3 nothing yet."""
    _, weights, plan = setting
    clients = [ClientState() for _ in range(4)]
    clients[0].personal_model = at_positions(
        [np.ones(w.shape, bool) for w in weights], [-w.ravel() for w in weights]
    )
    clients[1].mask = [np.ones(s, bool) for s in plan.shapes]
    kernel = plan.targets[0].index
    clients[1].mask[kernel].ravel()[::2] = False
    return clients


def test_each_protocol_fine_tunes_the_model_it_evaluates(setting):
    _, weights, _ = setting
    clients = _clients(setting)
    # A step that moves no float32 weight: fine-tuning must then return each
    # protocol's own starting point, and so its accuracy.
    still = _evaluator(setting, learning_rate=1e-30, epochs=2)

    row = still.evaluate(weights, clients, rounds_done=0, finetune=True)

    assert row["personal_accuracy"] != row["personalized_accuracy"]
    assert row["finetuned_personal_accuracy"] == row["personal_accuracy"]
    assert row["finetuned_personalized_accuracy"] == row["personalized_accuracy"]
    assert row["clients_without_personal_model"] == 3


def test_fine_tuning_trains_on_the_clients_data(setting):
    _, weights, _ = setting
    clients = _clients(setting)

    row = _evaluator(setting, learning_rate=0.3, epochs=4).evaluate(
        weights, clients, rounds_done=0, finetune=True
    )

    # An untrained model is at chance (about 10%); four epochs on a client's
    # own digits are far above it.
    assert row["personalized_accuracy"] < 0.3
    assert row["finetuned_personalized_accuracy"] > 0.6
    assert row["finetuned_personal_accuracy"] > 0.6


def test_personalized_accuracy_is_each_subnetwork_in_plain_keras(setting):
    """The batched subnetwork evaluation against Keras, client by client."""
    data, _, plan = setting
    clients = _clients(setting)
    model = model_fn()  # trained a little, so that a mask changes answers
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.dataset.x_train, data.dataset.y_train, epochs=2, verbose=0)
    weights = [w.numpy() for w in model.trainable_weights + model.non_trainable_weights]
    row = _evaluator(setting, learning_rate=0.1).evaluate(
        weights, clients, rounds_done=0
    )
    num_trainable = len(plan.shapes)

    def keras_accuracy(index, masks):
        trainable = weights[:num_trainable]
        if masks is not None:
            trainable = [w * m for w, m in zip(trainable, masks, strict=True)]
        model.set_weights(trainable + weights[num_trainable:])
        inputs, labels = data.client_test(index)
        return np.mean(model.predict(inputs, verbose=0).argmax(axis=1) == labels)

    expected = [keras_accuracy(i, c.mask) for i, c in enumerate(clients)]
    assert row["personalized_accuracy"] == pytest.approx(np.mean(expected), abs=1e-12)
    # Client 1's mask changes its answer: the comparison would see a mask ignored.
    assert keras_accuracy(1, clients[1].mask) != keras_accuracy(1, None)


def test_subnetworks_in_chunks_are_each_scored_by_itself(setting):
    """Chunks of 2 subnetworks, batches of 40: each accuracy as Keras's."""
    data, weights, plan = setting
    model = model_fn()
    model.compile("adam", classification_loss(model))
    model.fit(data.dataset.x_train, data.dataset.y_train, epochs=30, verbose=0)
    weights = [w.numpy() for w in model.trainable_weights + model.non_trainable_weights]
    num_trainable = len(plan.shapes)
    rng = np.random.default_rng(5)
    masks = (
        [None]
        + [[rng.random(s) < keep for s in plan.shapes] for keep in (0.9, 0.6, 0.8, 0.7)]
        + [None]
    )
    tests = [data.client_test(i % 4) for i in range(6)]
    tests[2] = (tests[2][0][:0], tests[2][1][:0])  # no examples: skipped

    def keras_accuracy(index):
        trainable = weights[:num_trainable]
        if masks[index] is not None:
            trainable = [w * m for w, m in zip(trainable, masks[index], strict=True)]
        model.set_weights(trainable + weights[num_trainable:])
        inputs, labels = tests[index]
        return np.mean(model.predict(inputs, verbose=0).argmax(axis=1) == labels)

    evaluator = Evaluator(model_fn, batch_size=40, client_chunk=2)
    accuracies = evaluator.subnetwork_accuracies(weights, masks, tests)

    expected = [keras_accuracy(i) for i in (0, 1, 3, 4, 5)]
    assert accuracies == pytest.approx(expected, abs=1e-12)
    # The masks change the answers: a subnetwork scored with another's mask
    # would be seen.
    assert len(set(expected)) == len(expected)


def test_each_evaluation_function_is_traced_once(setting):
    """Other numbers of examples and clients reuse the first call's graphs."""
    data, weights, plan = setting
    evaluator = Evaluator(model_fn, batch_size=40, client_chunk=2)
    rng = np.random.default_rng(2)
    for clients in (1, 3, 4):
        masks = [[rng.random(s) < 0.7 for s in plan.shapes] for _ in range(clients)]
        tests = [data.client_test(i) for i in range(clients)]
        evaluator.subnetwork_accuracies(weights, masks, tests)
        evaluator.subnetwork_accuracies(weights, [None] * clients, tests)
    evaluator.set_weights(weights)
    for size in (7, 40, 95):
        evaluator.evaluate(data.dataset.x_test[:size], data.dataset.y_test[:size])
    assert evaluator.tracing_counts() == {
        "scores": 1,
        "client_hits": 1,
        "pooled_hits": 1,
    }
