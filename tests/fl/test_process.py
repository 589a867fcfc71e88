"""The federated process against TFF's own FedAvg, and its mask invariants."""

import numpy as np
import pytest
import tensorflow as tf

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.client import ClientOptimizerConfig
from tffprune.fl.process import ClientUpload, FederatedProcess
from tffprune.fl.runtime import ensure_runtime
from tffprune.fl.training import Trainer
from tffprune.models import build_model

pytestmark = pytest.mark.slow

INPUT_SHAPE = (8, 8, 1)
ELEMENT_SPEC = (
    tf.TensorSpec([None, *INPUT_SHAPE], tf.float32),
    tf.TensorSpec([None], tf.int32),
)


def model_fn():
    return build_model("tfmot_cnn", INPUT_SHAPE, 10)


@pytest.fixture(scope="module")
def digits_clients():
    ensure_runtime()
    data = build_federated_data(load_dataset("digits"), 4, "iid", seed=0)
    # Unequal client sizes, so example weighting matters.
    return [
        (data.client_train(c)[0][: 40 + 30 * c], data.client_train(c)[1][: 40 + 30 * c])
        for c in range(4)
    ]


def _initial_weights():
    model = build_model("tfmot_cnn", INPUT_SHAPE, 10, seed=3)
    return [w.numpy() for w in model.trainable_weights + model.non_trainable_weights]


def _our_fedavg(clients, rounds, learning_rate, momentum):
    process = FederatedProcess(
        model_fn, ELEMENT_SPEC, ClientOptimizerConfig(learning_rate, momentum)
    )
    weights = _initial_weights()
    ones = [np.ones(w.shape, bool) for w in weights]
    for _ in range(rounds):
        datasets = [batched_dataset(x, y, 16) for x, y in clients]
        outputs = process.client_work(weights, [ones] * len(clients), datasets)
        uploads = [
            ClientUpload(o.trainable, ones, float(o.num_examples)) for o in outputs
        ]
        weights = process.aggregate(weights, uploads)
    return weights


def test_fedavg_matches_tff_build_weighted_fed_avg(digits_clients):
    import tensorflow_federated as tff

    def tff_model_fn():
        return tff.learning.models.from_keras_model(
            model_fn(),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            input_spec=ELEMENT_SPEC,
        )

    process = tff.learning.algorithms.build_weighted_fed_avg(
        tff_model_fn,
        client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1, momentum=0.5),
    )
    state = process.initialize()
    initial = _initial_weights()
    state = process.set_model_weights(
        state, tff.learning.models.ModelWeights(trainable=initial, non_trainable=[])
    )
    for _ in range(2):
        datasets = [batched_dataset(x, y, 16) for x, y in digits_clients]
        state = process.next(state, datasets).state
    theirs = process.get_model_weights(state).trainable

    ours = _our_fedavg(digits_clients, rounds=2, learning_rate=0.1, momentum=0.5)

    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[0], initial[0])  # training did move the weights


def test_pruned_weights_stay_exactly_zero(digits_clients):
    process = FederatedProcess(model_fn, ELEMENT_SPEC, ClientOptimizerConfig(0.5, 0.9))
    weights = _initial_weights()
    rng = np.random.default_rng(0)
    masks = [rng.random(w.shape) > 0.5 for w in weights]

    outputs = process.client_work(
        weights, [masks], [batched_dataset(*digits_clients[3], 8, epochs=3)]
    )

    for trained, mask, start in zip(outputs[0].trainable, masks, weights, strict=True):
        assert np.all(trained[~mask] == 0.0)
        assert not np.allclose(trained[mask], start[mask])


def _trainer_run(aggregation, method, weighting):
    config = TrainConfig(
        dataset="digits",
        model="tfmot_cnn",
        method=method,
        aggregation=aggregation,
        client_weighting=weighting,
        num_clients=6,
        clients_per_round=3,
        rounds=2,
        batch_size=16,
        seed=5,
    )
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    trainer = Trainer(config, data)
    for _ in range(config.rounds):
        trainer.run_round()
    return trainer


@pytest.mark.parametrize("weighting", ["uniform", "num_examples"])
def test_subfedavg_with_all_ones_masks_equals_fedavg(weighting):
    sub = _trainer_run("subfedavg", "none", weighting)
    plain = _trainer_run("fedavg", "none", weighting)

    for a, b in zip(sub.state.server_weights, plain.state.server_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_subfedavg_keeps_personal_masks_for_unsampled_clients():
    trainer = _trainer_run("subfedavg", "weight", None)

    participated = [c for c in trainer.state.clients if c.rounds_participated]
    untouched = [c for c in trainer.state.clients if not c.rounds_participated]
    assert participated and all(c.mask is not None for c in participated)
    assert all(abs(c.sparsity - 0.5) < 0.01 for c in participated)
    assert all(c.mask is None and c.sparsity == 0.0 for c in untouched)
    # Two different clients pruned differently: masks are personal.
    first, second = participated[:2]
    assert any(
        not np.array_equal(a, b) for a, b in zip(first.mask, second.mask, strict=True)
    )


class _CorruptingTrainer(Trainer):
    """Flips one byte of the payloads of the clients listed in `bad`."""

    bad: set = set()

    def corrupt_payload(self, payload):
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls in self.bad:
            return payload[:30] + bytes([payload[30] ^ 0x55]) + payload[31:]
        return payload


def _digits_config(**changes):
    settings = dict(
        dataset="digits",
        model="tfmot_cnn",
        num_clients=6,
        clients_per_round=3,
        rounds=2,
        batch_size=16,
        seed=5,
    )
    settings.update(changes)
    return TrainConfig(**settings)


def test_corrupted_upload_is_dropped_and_counted():
    config = _digits_config(upload_values="int8", positions="gaps", verify_uploads=True)
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = _CorruptingTrainer(config, data)
    trainer.bad = {2}

    row = trainer.run_round()

    assert row["clients_rejected"] == 1
    assert row["clients_participating"] == 2
    assert row["round_skipped"] == 0
    assert "checksum mismatch" in trainer.rejections[0][2]


def test_round_with_every_upload_corrupted_is_skipped():
    config = _digits_config(verify_uploads=True)
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = _CorruptingTrainer(config, data)
    trainer.bad = {1, 2, 3}
    before = [w.copy() for w in trainer.state.server_weights]

    row = trainer.run_round()

    assert (row["clients_rejected"], row["round_skipped"]) == (3, 1)
    for a, b in zip(before, trainer.state.server_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_dropout_rounds_finish_with_survivors():
    config = _digits_config(dropout_rate=0.5, clients_per_round=6, rounds=3)
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(config, data)

    rows = [trainer.run_round() for _ in range(3)]

    for row in rows:
        assert row["clients_participating"] + row["clients_dropped"] == 6
    assert 0 < sum(r["clients_dropped"] for r in rows) < 18


def test_client_with_nan_weights_is_rejected():
    config = _digits_config(verify_uploads=True)
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(config, data)
    real_client_work = trainer.process.client_work

    def poisoned(*arguments):
        outputs = real_client_work(*arguments)
        diverged = outputs[0].trainable[0].copy()
        diverged[0] = np.nan  # a client whose training diverged
        outputs[0].trainable[0] = diverged
        return outputs

    trainer.process.client_work = poisoned
    before = trainer.state.server_weights[0].copy()

    row = trainer.run_round()

    assert row["clients_rejected"] == 1 and row["clients_participating"] == 2
    assert "NaN" in trainer.rejections[0][2]
    assert np.all(np.isfinite(trainer.state.server_weights[0]))
    assert not np.array_equal(before, trainer.state.server_weights[0])


def test_fused_round_rejects_diverged_clients_and_keeps_their_masks():
    # A learning rate this large overflows every client's weights to Inf/NaN.
    config = _digits_config(
        aggregation="subfedavg", method="weight", client_learning_rate=1e30
    )
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(config, data)
    assert trainer.fused
    before = [w.copy() for w in trainer.state.server_weights]

    row = trainer.run_round()

    assert (row["clients_rejected"], row["round_skipped"]) == (3, 1)
    assert all("NaN" in reason for _, _, reason in trainer.rejections)
    for a, b in zip(before, trainer.state.server_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(c.mask is None for c in trainer.state.clients)


@pytest.mark.parametrize(
    "changes",
    [
        dict(aggregation="subfedavg", method="weight", upload_values="int8"),
        dict(aggregation="fedavg", method="weight", upload_values="float16"),
        dict(aggregation="subfedavg", method="weight", upload_values="float32"),
        dict(aggregation="subfedavg", method="none", dropout_rate=0.4),
        dict(
            aggregation="subfedavg",
            method="weight",
            schedule="iterative",
            step_fraction=0.3,
        ),
    ],
    ids=["subfedavg-int8", "fedavg-float16", "float32", "dropout", "iterative"],
)
def test_fused_round_equals_the_verified_driver_round(changes):
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    fused = Trainer(_digits_config(**changes, rounds=3), data)
    driver = Trainer(_digits_config(**changes, rounds=3, verify_uploads=True), data)
    assert fused.fused and not driver.fused

    for _ in range(3):
        fused_row, driver_row = fused.run_round(), driver.run_round()
        for column in (
            "upload_bytes",
            "upload_bytes_csr",
            "clients_participating",
            "clients_dropped",
            "sparsity",
        ):
            np.testing.assert_equal(fused_row[column], driver_row[column], column)
        for a, b in zip(
            fused.state.server_weights, driver.state.server_weights, strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(fused.state.clients, driver.state.clients, strict=True):
        assert (ours.mask is None) == (theirs.mask is None)
        if ours.mask is not None:
            for a, b in zip(ours.mask, theirs.mask, strict=True):
                np.testing.assert_array_equal(a, b)


def test_central_model_is_pruned_to_the_run_sparsity():
    trainer = _trainer_run("subfedavg", "weight", None)
    server = trainer.state.server_weights
    kernel = trainer.targets[0].index
    never_kept = ~np.logical_or.reduce(
        [c.mask[kernel] for c in trainer.state.clients if c.mask is not None]
    )

    central = trainer.central_weights()

    assert trainer.central_sparsity() == 0.5
    # Entries no client kept hold stale nonzero server values; the central
    # model drops them first, then the smallest magnitudes, to exactly 50%.
    assert np.count_nonzero(server[kernel][never_kept]) > 0
    assert np.all(central[kernel][never_kept] == 0)
    assert np.mean(central[kernel] == 0) == pytest.approx(0.5, abs=1 / 108)
    kept = central[kernel] != 0
    np.testing.assert_array_equal(central[kernel][kept], server[kernel][kept])
    model_weights = [w.numpy() for w in trainer.global_model().weights]
    assert np.mean(model_weights[kernel] == 0) == pytest.approx(0.5, abs=1 / 108)
    row = trainer.evaluate()
    assert row["central_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_central_model_without_pruning_is_the_server_model():
    trainer = _trainer_run("fedavg", "none", None)

    assert trainer.central_sparsity() == 0.0
    for a, b in zip(
        trainer.central_weights(), trainer.state.server_weights, strict=True
    ):
        np.testing.assert_array_equal(a, b)
