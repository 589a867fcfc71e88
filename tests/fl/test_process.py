"""The one-computation round against TFF's own FedAvg and the NumPy reference."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
import tiny_cnn

from tffprune.compression.tf_values import transmitted
from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.fl.messages import ClientInput
from tffprune.fl.process import RoundParts, RoundProcess, _file_error
from tffprune.fl.training import Trainer
from tffprune.fl.verification import UploadVerificationError
from tffprune.pruning.counts import no_pruning
from tffprune.pruning.packed_masks import pack_all

from .reference_round import reference_round

INPUT_SHAPE, ELEMENT_SPEC, model_fn = (
    tiny_cnn.INPUT_SHAPE,
    tiny_cnn.ELEMENT_SPEC,
    tiny_cnn.model_fn,
)

pytestmark = pytest.mark.slow


def _input(masks):
    """A client that trains under ``masks``, prunes nothing and delivers."""
    return ClientInput(
        mask=pack_all(masks),
        counts=no_pruning(len(masks)).as_tensors(),
        delivered=np.bool_(True),
        residual_files=(),
    )


def batch_norm_model_fn(dropout=0.0):
    """Conv + BatchNorm (+ Dropout) + pooling, softmax head (a user's model).

    Dropout draws different random numbers inside TFF and outside it, so the
    comparison with the reference runs without it.
    """
    inputs = tf.keras.Input(INPUT_SHAPE)
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Dropout(dropout)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(16, activation="relu")(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def digits_clients():
    return tiny_cnn.digits_clients()


_initial_weights = tiny_cnn.initial_weights


def test_fedavg_matches_tff_build_weighted_fed_avg(digits_clients):
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

    ours_process = RoundProcess(
        RoundParts(
            model_fn,
            ELEMENT_SPEC,
            tff.learning.optimizers.build_sgdm(0.1, momentum=0.5),
            ClientWorkConfig.from_options(
                "none", (), masked_upload=False, weight_by_examples=True
            ),
        )
    )
    ours, roles = initial, ours_process.initialize_roles()
    ones = [np.ones(w.shape, bool) for w in initial]
    for _ in range(2):
        datasets = [batched_dataset(x, y, 16) for x, y in digits_clients]
        output = ours_process.next(ours, roles, [_input(ones)] * 4, datasets)
        ours, roles = output.weights, output.roles

    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[0], initial[0])  # training did move the weights
    total = sum(len(y) for _, y in digits_clients)
    assert output.measurements["aggregator"] == {
        "total_weight": total,
        "covered_fraction": 1.0,
    }
    assert output.measurements["client_work"]["num_examples"] == total


def test_pruned_weights_stay_exactly_zero(digits_clients):
    from tffprune.fl.client import build_client_train_fn

    train = build_client_train_fn(
        model_fn, tff.learning.optimizers.build_sgdm(0.5, momentum=0.9)
    )
    weights = _initial_weights()
    rng = np.random.default_rng(0)
    masks = [rng.random(w.shape) > 0.5 for w in weights]

    trained, _, _, _ = train(
        [tf.constant(w) for w in weights],
        [],
        [tf.constant(m, tf.float32) for m in masks],
        batched_dataset(*digits_clients[3], 8, epochs=3),
    )

    for new, mask, start in zip(trained, masks, weights, strict=True):
        new = new.numpy()
        assert np.all(new[~mask] == 0.0)
        assert not np.allclose(new[mask], start[mask])


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


def _trainer_run(aggregation, method, weighting):
    config = _digits_config(
        method=method, aggregation=aggregation, client_weighting=weighting
    )
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    trainer = Trainer(config, data)
    for _ in range(config.rounds):
        trainer.run_round()
    return trainer


@pytest.mark.parametrize("download_format", ["float16", "int8", "int4"])
def test_a_lossy_download_never_enters_the_server_weights(download_format):
    # Clients with no data train nothing: every update is 0. The server adds
    # the decoded updates to its own float32 weights, so the round leaves them
    # exactly as they were, although every client trained from a copy the
    # download format rounded (added to that copy, they would come back
    # rounded: e.g. int2 keeps 4 values per tensor).
    process = RoundProcess(
        RoundParts(
            model_fn,
            ELEMENT_SPEC,
            tff.learning.optimizers.build_sgdm(0.1, momentum=0.5),
            ClientWorkConfig.from_options("none", ()),
            download_values=download_format,
        )
    )
    weights = _initial_weights()
    rng = np.random.default_rng(1)
    masks = [[rng.random(w.shape) < 0.7 for w in weights] for _ in range(3)]
    empty = np.zeros((0, *INPUT_SHAPE), np.float32), np.zeros(0, np.int32)

    output = process.next(
        weights,
        process.initialize_roles(),
        [_input(m) for m in masks],
        [batched_dataset(*empty, 16)] * 3,
    )

    for new, old in zip(output.weights, weights, strict=True):
        # Equal up to the mean's float32 rounding ((w + w + w) / 3: a few
        # 1e-8 relative); float16's rounding alone is 2**-11 = 4.9e-4.
        np.testing.assert_allclose(new, old, rtol=3e-7, atol=0)
    # The clients did train from a rounded copy (what they upload is their
    # update, which is 0, so it is the only place the rounding could enter).
    received = transmitted(
        tf.constant(weights[0]), tf.constant(masks[0][0]), download_format
    ).numpy()
    assert not np.array_equal(received[masks[0][0]], weights[0][masks[0][0]])


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


def test_dropout_rounds_finish_with_survivors():
    config = _digits_config(dropout_rate=0.5, clients_per_round=6, rounds=3)
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(config, data)

    rows = [trainer.run_round() for _ in range(3)]

    for row in rows:
        assert row["clients_participating"] + row["clients_dropped"] == 6
    assert 0 < sum(r["clients_dropped"] for r in rows) < 18


def test_round_rejects_diverged_clients_and_keeps_their_masks():
    # A learning rate this large overflows every client's weights to Inf/NaN.
    config = _digits_config(
        aggregation="subfedavg", method="weight", client_learning_rate=1e30
    )
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(config, data)
    before = [w.copy() for w in trainer.state.server_weights]

    row = trainer.run_round()

    assert (row["clients_rejected"], row["round_skipped"]) == (3, 1)
    assert all("NaN" in reason for _, _, reason in trainer.rejections)
    for a, b in zip(before, trainer.state.server_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(c.mask is None for c in trainer.state.clients)


REFERENCE_CASES = {
    "weight-int8": dict(method="weight", upload_values="int8"),
    "global-weight": dict(method="global-weight", sparsity=0.7),
    "unit": dict(method="unit", upload_values="float16"),
    "channel": dict(method="channel", positions="gaps"),
    "hybrid": dict(method="hybrid", sparsity=0.6),
    "fedavg-channel": dict(aggregation="fedavg", method="channel"),
    "fedavg-weight-float16": dict(
        aggregation="fedavg", method="weight", upload_values="float16"
    ),
    "polynomial": dict(method="weight", schedule="polynomial", rounds=4),
    "iterative-unit": dict(method="unit", schedule="iterative", step_fraction=0.3),
    "guard": dict(method="weight", sparsity=0.9, accuracy_threshold=0.3),
    "dropout": dict(method="hybrid", dropout_rate=0.4, clients_per_round=5),
    "prune-logits": dict(method="global-weight", prune_logits=True),
    "jeurkar-scope": dict(
        aggregation="fedavg",
        method="global-weight",
        prune_logits=True,
        prune_biases=True,
    ),
    "download-int8": dict(method="weight", download_values="int8", rounds=3),
    "fedavg-download-float16": dict(
        aggregation="fedavg", method="weight", download_values="float16"
    ),
    "int1-error-feedback-int4-download": dict(
        method="weight", upload_values="int1", download_values="int4", rounds=3
    ),
    "fedavg-int2-error-feedback": dict(
        aggregation="fedavg", method="weight", upload_values="int2"
    ),
    "new-clients-subnetwork": dict(
        method="weight",
        new_clients="subnetwork",
        upload_values="int2",
        download_values="int8",
        rounds=3,
    ),
    "int4-without-feedback": dict(
        method="unit", upload_values="int4", error_feedback=False
    ),
}


@pytest.mark.parametrize("changes", REFERENCE_CASES.values(), ids=REFERENCE_CASES)
def test_round_equals_the_numpy_reference_round(changes):
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    trainer = Trainer(_digits_config(**changes), data)

    for _ in range(2):
        before = [w.copy() for w in trainer.state.server_weights]
        expected = reference_round(trainer)
        row = trainer.run_round()

        assert row["upload_bytes"] == expected.upload_bytes
        assert row["download_bytes"] == expected.download_bytes
        assert row["download_bytes_csr"] == expected.download_bytes_csr
        assert row["clients_participating"] == expected.participating
        for ours, theirs, start in zip(
            trainer.state.server_weights, expected.weights, before, strict=True
        ):
            # float16 uploads: where TF's and NumPy's float32 updates differ in
            # the last bits, an update's float16 rounding can fall on either
            # side: one float16 step (2**-10 relative) of the largest update.
            # Which updates do depends on the CPU's kernels (AVX2 or AVX-512).
            step = 0.0
            if trainer.config.upload_values == "float16":
                step = 2.0**-10 * float(np.max(np.abs(theirs - start), initial=0.0))
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 + step)
        if trainer.plan.personal:
            for client, masks in expected.masks.items():
                for ours, theirs in zip(
                    trainer.state.clients[client].mask, masks, strict=True
                ):
                    np.testing.assert_array_equal(ours, theirs)
        assert bool(expected.residuals) == trainer.config.uses_error_feedback
        for client, residual in expected.residuals.items():
            stored = trainer.residuals.read(
                trainer.state.clients[client].residual, trainer.shapes
            )
            for ours, theirs, start in zip(stored, residual, before, strict=True):
                # float16 residuals (update - its value format's rounding): TF
                # and NumPy agree within one float16 step (2**-10 relative)
                # except where their float32 updates differ in the last bits
                # and the rounding falls on the other side: then they differ by
                # one float16 step of the update (below 2**-9 of the weights).
                assert ours.dtype == theirs.dtype == np.float16
                flipped = ~np.isclose(ours, theirs, rtol=2**-10, atol=1e-6)
                assert flipped.mean() <= 0.01, flipped.mean()
                bound = 2.0**-9 * float(np.max(np.abs(start), initial=0.0))
                difference = np.abs(ours.astype(np.float32) - theirs)
                assert np.all(difference[flipped] <= bound)
    assert row["sparsity"] > 0


def test_round_of_a_batch_norm_model_equals_the_reference():
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    trainer = Trainer(
        _digits_config(method="channel"), data, model_fn=batch_norm_model_fn
    )
    assert trainer.num_trainable < len(trainer.shapes)  # moving mean/variance

    expected = reference_round(trainer)
    trainer.run_round()

    for ours, theirs in zip(
        trainer.state.server_weights, expected.weights, strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_guard_at_full_accuracy_keeps_every_mask():
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(_digits_config(accuracy_threshold=1.0), data)

    row = trainer.run_round()

    # No pruned client model is 100% right on its training data: all refused.
    assert row["sparsity"] == 0.0 and row["clients_participating"] == 3


def test_mask_distance_rule_inside_the_round_holds_back_stable_masks():
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    config = _digits_config(local_epochs=2, mask_distance_threshold=0.99)
    trainer = Trainer(config, data)

    row = trainer.run_round()

    # The rule ran in every client (a distance each) and, the masks after
    # epochs 1 and 2 differing by far less than 99%, held every client back.
    assert 0.0 < row["mask_distance"] < 0.99
    assert row["clients_held_back"] == row["clients_participating"] == 3
    assert row["sparsity"] == 0.0
    assert all(
        c.mask is None or all(m.all() for m in c.mask) for c in trainer.state.clients
    )


@pytest.mark.parametrize(
    "method, values, download",
    [("weight", "int8", "float32"), ("unit", "int1", "int4")],
)
def test_verified_uploads_agree_with_the_round(method, values, download):
    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    config = _digits_config(
        method=method,
        upload_values=values,
        download_values=download,
        verify_uploads=True,
    )
    trainer = Trainer(config, data)

    for _ in range(2):  # the second round starts from residuals
        row = trainer.run_round()  # raises UploadVerificationError on disagreement

    assert row["clients_participating"] == 3


@pytest.mark.parametrize("new_clients", ["dense", "subnetwork"])
def test_returning_clients_uploads_are_counted_in_their_work_to_the_byte(
    new_clients,
):
    # Every client in every round; iterative pruning changes each client's
    # mask every round, so its upload codes positions against the mask the
    # server holds for it. The sizes come from the masks' facts
    # (`mask_facts`); the verification encodes each upload with the real
    # codec and raises if its length differs from the count.
    data = build_federated_data(load_dataset("digits"), 3, "iid", seed=5)
    config = _digits_config(
        num_clients=3,
        clients_per_round=3,
        rounds=3,
        schedule="iterative",
        new_clients=new_clients,
        verify_uploads=True,
    )
    trainer = Trainer(config, data)

    rows = [trainer.run_round() for _ in range(3)]

    sparsities = [c.sparsity for c in trainer.state.clients]
    assert all(0.0 < s < 0.5 for s in sparsities)  # pruned, not yet at 50%
    assert [r["clients_participating"] for r in rows] == [3, 3, 3]
    assert all(r["upload_bytes"] > 0 for r in rows)


def test_verification_catches_a_corrupted_upload(monkeypatch):
    from tffprune.fl import verification

    data = build_federated_data(load_dataset("digits"), 6, "iid", seed=5)
    trainer = Trainer(_digits_config(verify_uploads=True), data)
    real_encode = verification.wire.encode

    def corrupting_encode(*arguments, **options):
        payload = real_encode(*arguments, **options)
        return payload[:30] + bytes([payload[30] ^ 0x55]) + payload[31:]

    monkeypatch.setattr(verification.wire, "encode", corrupting_encode)

    with pytest.raises(UploadVerificationError, match="checksum"):
        trainer.run_round()


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


def test_unpruned_accuracy_is_scored_every_n_rounds_and_last():
    config = _digits_config(
        method="weight", aggregation="subfedavg", rounds=3, unpruned_every=2
    )
    data = build_federated_data(load_dataset("digits"), 6, "shards", seed=5)
    trainer = Trainer(config, data)
    rows = [trainer.run_round() for _ in range(config.rounds)]

    # Rounds 2 (a multiple of 2) and 3 (the last); round 1 skips the pass.
    assert ["central_accuracy_unpruned" in row for row in rows] == [
        False,
        True,
        True,
    ]
    assert all("central_accuracy" in row for row in rows)
    # The figure is the server's weights, unpruned, on the central test set.
    evaluator = trainer.evaluator.evaluator
    evaluator.set_weights(trainer.state.server_weights)
    expected, _ = evaluator.evaluate(data.dataset.x_test, data.dataset.y_test)
    assert rows[-1]["central_accuracy_unpruned"] == expected
    # What a run that stopped early adds to its last row, alone.
    assert trainer.unpruned_accuracy() == expected
    assert trainer.central_sparsity() == 0.5


def test_central_model_without_pruning_is_the_server_model():
    trainer = _trainer_run("fedavg", "none", None)

    assert trainer.central_sparsity() == 0.0
    for a, b in zip(
        trainer.central_weights(), trainer.state.server_weights, strict=True
    ):
        np.testing.assert_array_equal(a, b)


class _WorkerError(grpc.RpcError):
    def __init__(self, details: str) -> None:
        self._details = details

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    "prefix",
    ["", "{{function_node __inference_client_work_7}} " * 2],
    ids=["plain", "inside-functions"],
)
def test_a_file_the_worker_could_not_read_is_an_os_error_naming_it(prefix):
    error = _file_error(
        _WorkerError(
            f"Failed to run computation: {prefix}/run/residuals/c0_r0.residual; "
            "No such file or directory\n\t [[{{node ReadFile}}]]"
        )
    )

    assert error.filename == "/run/residuals/c0_r0.residual"
    assert error.strerror == "No such file or directory"
    assert _file_error(_WorkerError("Failed to run computation: out of memory")) is None
