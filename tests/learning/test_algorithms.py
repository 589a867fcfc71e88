"""The public builders against TFF's own FedAvg, and driven by hand."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
import tiny_cnn

from tffprune.data import build_federated_data, load_dataset
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.messages import ClientInput, PruningStep
from tffprune.learning import build_fedavg, build_sub_fedavg
from tffprune.pruning.counts import no_pruning, pruning_counts
from tffprune.pruning.packed_masks import pack_all, unpack_all
from tffprune.pruning.policy import PruningPolicy

pytestmark = pytest.mark.slow

ELEMENT_SPEC, model_fn = tiny_cnn.ELEMENT_SPEC, tiny_cnn.model_fn


@pytest.fixture(scope="module")
def clients():
    return tiny_cnn.digits_clients()


def _initial_weights():
    # tfmot_cnn has no non-trainable weights.
    return tff.learning.models.ModelWeights(tiny_cnn.initial_weights(), [])


def _inputs(sampled, masks, shapes, step):
    """Each sampled client's input: its held mask (all True the first time).

    The constant schedule's step, which a client already pruned skips.
    """
    return [
        ClientInput(
            mask=pack_all(masks.get(c, [np.ones(s, bool) for s in shapes])),
            counts=PruningStep(
                *(no_pruning(len(shapes)).as_tensors() if c in masks else step)
            ),
            delivered=True,
            residual_files=(),
        )
        for c in sampled
    ]


def _datasets(clients):
    return [batched_dataset(x, y, 16) for x, y in clients]


def _run(process, clients, rounds=3):
    state = process.set_model_weights(process.initialize(), _initial_weights())
    for _ in range(rounds):
        output = process.next(state, _datasets(clients))
        state = output.state
    return process.get_model_weights(state), output.metrics


def test_build_fedavg_equals_tff_build_weighted_fed_avg(clients):
    def tff_model_fn():
        return tff.learning.models.from_keras_model(
            model_fn(),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            input_spec=ELEMENT_SPEC,
        )

    client_optimizer = tff.learning.optimizers.build_sgdm(0.1, momentum=0.5)
    theirs, _ = _run(
        tff.learning.algorithms.build_weighted_fed_avg(
            tff_model_fn,
            client_optimizer_fn=client_optimizer,
            server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
        ),
        clients,
    )
    process = build_fedavg(
        model_fn,
        ELEMENT_SPEC,
        client_optimizer_fn=client_optimizer,
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(1.0),
        model_aggregator=tff.aggregators.MeanFactory(),
    )
    ours, metrics = _run(process, clients)

    assert isinstance(process, tff.learning.templates.LearningProcess)
    for a, b in zip(ours.trainable, theirs.trainable, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert not np.allclose(ours.trainable[0], _initial_weights().trainable[0])
    total = sum(len(y) for _, y in clients)
    assert metrics["client_work"]["num_examples"] == total
    assert metrics["distributor"] == collections.OrderedDict()


def test_a_server_optimizer_changes_the_step_and_keeps_its_state(clients):
    # FedAvgM with momentum 0.9 after one round equals FedAvg (the
    # accumulator starts at 0: a = g), and differs from the second round on.
    def build(server):
        return build_fedavg(
            model_fn,
            ELEMENT_SPEC,
            client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
            server_optimizer_fn=server,
        )

    plain = build(tff.learning.optimizers.build_sgdm(1.0))
    momentum = build(tff.learning.optimizers.build_sgdm(1.0, momentum=0.9))
    plain_one, _ = _run(plain, clients, rounds=1)
    momentum_one, _ = _run(momentum, clients, rounds=1)
    plain_two, _ = _run(plain, clients, rounds=2)
    state = momentum.set_model_weights(momentum.initialize(), _initial_weights())
    for _ in range(2):
        state = momentum.next(state, _datasets(clients)).state

    for a, b in zip(plain_one.trainable, momentum_one.trainable, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    moved = momentum.get_model_weights(state).trainable
    assert not np.allclose(moved[0], plain_two.trainable[0], atol=1e-5)
    accumulator = state.finalizer["accumulator"]
    assert [a.shape for a in accumulator] == [w.shape for w in moved]
    assert np.any(accumulator[0] != 0)


def test_build_fedavg_prunes_each_upload_to_the_sparsity(clients):
    # A FedAvg client prunes its trained kernels to 50%; the server averages
    # with pruned entries as 0, so an entry every client pruned is exactly 0.
    process = build_fedavg(
        model_fn,
        ELEMENT_SPEC,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
        method="weight",
        sparsity=0.5,
    )
    state = process.set_model_weights(process.initialize(), _initial_weights())
    one_client = [batched_dataset(*clients[0], 16)]

    state = process.next(state, one_client).state

    kernel = process.get_model_weights(state).trainable[0]
    assert np.count_nonzero(kernel == 0) == kernel.size // 2


def test_build_fedavg_refuses_error_feedback_free_options_it_cannot_hold():
    with pytest.raises(ValueError, match="use build_sub_fedavg"):
        build_fedavg(model_fn, ELEMENT_SPEC, method="weight", schedule="iterative")
    with pytest.raises(ValueError, match="upload_values must be one of"):
        build_fedavg(model_fn, ELEMENT_SPEC, upload_values="int3")


def test_a_model_the_caller_built_before_still_evaluates_after_a_build():
    """Keras swaps a class to v1 when a graph builds it; the build undoes that."""
    model = tiny_cnn.model_fn()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    build_sub_fedavg(tiny_cnn.model_fn, tiny_cnn.ELEMENT_SPEC)
    x = np.zeros((4, *tiny_cnn.INPUT_SHAPE), np.float32)
    loss, accuracy = model.evaluate(x, np.zeros(4, np.int32), verbose=0)
    assert 0.0 <= accuracy <= 1.0


def test_build_sub_fedavg_keeps_each_clients_mask_by_id(clients):
    # The loop the README shows: states by client id, a mask comes back and
    # goes in again the next time its client is sampled.
    process = build_sub_fedavg(
        model_fn,
        ELEMENT_SPEC,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1),
        method="weight",
    )
    reference = model_fn()
    shapes = [tuple(w.shape) for w in reference.trainable_weights]
    targets = PruningPolicy().select(reference)
    step = pruning_counts(shapes, targets, "weight", 0.5).as_tensors()
    masks, history = {}, []
    state = process.initialize()
    for sampled in ([0, 1], [1, 2]):
        inputs = _inputs(sampled, masks, shapes, step)
        output = process.next(
            state, inputs, [batched_dataset(*clients[c], 16) for c in sampled]
        )
        state = output.state
        for client, result in zip(sampled, output.clients, strict=True):
            masks[client] = unpack_all(result.mask, shapes)
        history.append({c: masks[c] for c in sampled})

    kernel = targets[0].index
    for client in (0, 1, 2):
        pruned = np.count_nonzero(~masks[client][kernel])
        assert pruned == masks[client][kernel].size // 2
    # Personal: two clients' subnetworks differ; client 1 came back with its
    # round-1 mask, did not prune again, and kept it.
    assert not np.array_equal(masks[0][kernel], masks[2][kernel])
    for ours, theirs in zip(history[0][1], history[1][1], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # Entries neither client of round 2 kept are not covered.
    assert output.metrics["aggregator"]["covered_fraction"] < 1.0


def test_tffprune_train_is_the_public_process_driven_by_hand():
    # The same seed and clients: Trainer's rounds against build_sub_fedavg's
    # process driven by hand (constant schedule, personal masks by client id).
    from tffprune.config import TrainConfig
    from tffprune.fl.training import Trainer

    config = TrainConfig(
        dataset="digits",
        model="tfmot_cnn",
        num_clients=6,
        clients_per_round=3,
        rounds=2,
        batch_size=16,
        seed=5,
        method="weight",
        sparsity=0.5,
    )
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    trainer = Trainer(config, data)
    initial = [w.copy() for w in trainer.state.server_weights]
    datasets = {
        (r, c): trainer.client_dataset(c, r) for r in range(2) for c in range(6)
    }
    for _ in range(2):
        trainer.run_round()

    process = build_sub_fedavg(
        trainer.model_fn,
        ELEMENT_SPEC,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.05, momentum=0.5),
        method="weight",
    )
    shapes = [w.shape for w in initial]
    step = pruning_counts(shapes, trainer.targets, "weight", 0.5).as_tensors()
    rng = np.random.default_rng(5)
    masks = {}
    state = process.initialize()._replace(global_model_weights=initial)
    for round_number in range(2):
        sampled = np.sort(rng.choice(6, 3, replace=False))
        rng.random(3)  # the run's draw for lost uploads (none are lost)
        inputs = _inputs(sampled, masks, shapes, step)
        output = process.next(
            state, inputs, [datasets[(round_number, c)] for c in sampled]
        )
        state = output.state
        for client, result in zip(sampled, output.clients, strict=True):
            masks[int(client)] = unpack_all(result.mask, shapes[: len(result.mask)])

    for ours, theirs in zip(
        trainer.state.server_weights, state.global_model_weights, strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert set(masks) == {
        c for c, s in enumerate(trainer.state.clients) if s.mask is not None
    }
    for client, held in masks.items():
        for ours, theirs in zip(trainer.state.clients[client].mask, held, strict=True):
            np.testing.assert_array_equal(ours, theirs)
