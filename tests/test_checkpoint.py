"""Checkpoints: the last two kept, and what a resume may and may not change."""

import numpy as np
import pytest
from older_checkpoints import masks_as_version_5, read_archive, write_archive

from tffprune.checkpoint import load_checkpoint, previous_path, save_checkpoint
from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.training import Trainer


@pytest.fixture(scope="module")
def data():
    return build_federated_data(load_dataset("digits"), 4, "iid", seed=1)


def _config(**changes):
    settings = dict(
        dataset="digits",
        model="tfmot_cnn",
        num_clients=4,
        clients_per_round=2,
        method="weight",
        sparsity=0.8,
        schedule="polynomial",
        rounds=4,
        seed=1,
    )
    return TrainConfig(**{**settings, **changes})


def test_resuming_with_more_rounds_keeps_the_schedule_of_the_start(data, tmp_path):
    trainer = Trainer(_config(), data)
    trainer.run_round()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, trainer.state, {"identity": 1}, trainer.shapes)

    resumed = Trainer(_config(rounds=10), data, load_checkpoint(path, {"identity": 1}))

    # `polynomial` spans the first half of the run's rounds: of the 4 it
    # started with (0.8 * (1 - (1 - r/2)^3), power 3), not of the 10 asked now
    # (that would give 0.8 * (1 - 0.8^3) = 0.39 in round 1).
    schedule = resumed.plan.schedule
    assert schedule(1) == pytest.approx(0.8 * (1 - 0.5**3))
    assert schedule(2) == schedule(9) == pytest.approx(0.8)
    assert resumed.state.schedule_rounds == 4
    # ... and a checkpoint of the resumed run remembers it.
    save_checkpoint(path, resumed.state, {"identity": 1}, resumed.shapes)
    assert load_checkpoint(path, {"identity": 1}).schedule_rounds == 4


def test_saving_keeps_the_checkpoint_before_as_previous(data, tmp_path):
    trainer = Trainer(_config(), data)
    path = tmp_path / "checkpoint.npz"
    for _ in range(2):
        trainer.run_round()
        save_checkpoint(path, trainer.state, {"identity": 1}, trainer.shapes)

    assert load_checkpoint(path, {"identity": 1}).round == 2
    assert load_checkpoint(previous_path(path), {"identity": 1}).round == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.npz",
        "checkpoint.previous.npz",
    ]


def test_resume_on_other_data_is_refused_naming_the_data(tmp_path):
    from click.testing import CliRunner

    from tffprune.cli import cli

    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (120, 8, 8, 1), dtype=np.uint8),
        y_train=rng.integers(0, 3, 120),
        x_test=rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8),
        y_test=rng.integers(0, 3, 30),
    )
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    command = ["train", "--dataset", str(data), "--model", "tfmot_cnn"]
    command += ["--scale-inputs", "--num-clients", "4", "--clients-per-round", "2"]
    command += ["--quiet"]
    command += ["--output-dir", str(tmp_path / "run")]
    assert CliRunner().invoke(cli, [*command, "--rounds", "1"]).exit_code == 0
    arrays["y_train"] = (arrays["y_train"] + 1) % 3  # same file, other labels
    np.savez(data, **arrays)

    result = CliRunner().invoke(cli, [*command, "--rounds", "2", "--resume"])

    assert result.exit_code == 2, result.output
    assert (
        "differs in: the data (examples, labels or their split over clients)"
        in result.output
    )


def test_resume_after_the_model_file_changed_is_refused(tmp_path):
    from click.testing import CliRunner

    from tffprune.cli import cli

    model_file = tmp_path / "mine.py"
    layers = "[tf.keras.Input(shape), tf.keras.layers.Flatten(), {}]"
    source = (
        "import tensorflow as tf\n\n\ndef build(shape, classes):\n"
        "    return tf.keras.Sequential(" + layers + ")\n"
    )
    model_file.write_text(source.format("tf.keras.layers.Dense(classes)"))
    command = ["train", "--dataset", "digits", "--model", f"{model_file}:build"]
    command += ["--num-clients", "4", "--clients-per-round", "2", "--quiet"]
    command += ["--output-dir", str(tmp_path / "run")]
    assert CliRunner().invoke(cli, [*command, "--rounds", "1"]).exit_code == 0
    model_file.write_text(
        source.format("tf.keras.layers.Dense(classes, use_bias=False)")
    )

    result = CliRunner().invoke(cli, [*command, "--rounds", "2", "--resume"])

    assert result.exit_code == 2, result.output
    assert "differs in: the model's file (edited since)" in result.output


@pytest.mark.parametrize(
    "option,value,named",
    [
        ("--seed", "7", "seed"),
        ("--sparsity", "0.3", "sparsity"),
        ("--method", "unit", "method"),
        ("--partition", "dirichlet", "the data (examples, labels or their split"),
    ],
)
def test_resume_with_an_identity_field_changed_is_refused(
    tmp_path_factory, option, value, named
):
    from click.testing import CliRunner

    from tffprune.cli import cli

    run = tmp_path_factory.mktemp("identity") / "run"
    command = ["train", "--dataset", "digits", "--model", "tfmot_cnn", "--quiet"]
    command += ["--num-clients", "4", "--clients-per-round", "2"]
    command += ["--output-dir", str(run)]
    assert CliRunner().invoke(cli, [*command, "--rounds", "1"]).exit_code == 0

    result = CliRunner().invoke(
        cli, [*command, "--rounds", "2", "--resume", option, value]
    )

    assert result.exit_code == 2, result.output
    assert "was written with a different configuration (differs in: " in result.output
    assert named in result.output.split("differs in: ")[1]
    assert "Traceback" not in result.output


def test_personal_models_are_what_training_returned_and_survive_a_checkpoint(
    data, tmp_path, monkeypatch
):
    trainer = Trainer(
        _config(personal_models=True, upload_values="int2", rounds=2), data
    )
    returned = {}
    real_next = trainer.algorithm.process.next

    def recording_next(*arguments, **options):
        output = real_next(*arguments, **options)
        returned["reports"] = output.reports
        return output

    monkeypatch.setattr(trainer.algorithm.process, "next", recording_next)
    sampled_before = trainer.rng.bit_generator.state
    row = trainer.run_round()

    rng = np.random.default_rng()
    rng.bit_generator.state = sampled_before
    sampled = sorted(rng.choice(4, 2, replace=False))
    for client, report in zip(sampled, returned["reports"], strict=True):
        stored = trainer.state.clients[client].personal_model.expand(trainer.shapes)
        returned = report.personal.expand(trainer.shapes)
        for ours, theirs in zip(stored, returned, strict=True):
            np.testing.assert_array_equal(ours, theirs)  # bit for bit
        kernel = trainer.targets[0].index
        assert np.all(stored[kernel][~trainer.state.clients[client].mask[kernel]] == 0)
    # Two clients never took part: they are evaluated with the global model.
    assert row["clients_without_personal_model"] == 2
    evaluator = trainer.evaluator.evaluator
    expected = []
    for index, client in enumerate(trainer.state.clients):
        weights = (
            client.personal_model.expand(trainer.shapes)
            if client.personal_model is not None
            else trainer.state.server_weights
        )
        evaluator.set_weights(weights)
        expected.append(evaluator.evaluate(*data.client_test(index))[0])
    assert row["personal_accuracy"] == pytest.approx(np.mean(expected), abs=1e-9)

    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, trainer.state, {"identity": 1}, trainer.shapes)
    loaded = load_checkpoint(path, {"identity": 1})
    for before, after in zip(trainer.state.clients, loaded.clients, strict=True):
        assert after.residual == before.residual  # the name of its file
        if before.personal_model is None:
            assert after.personal_model is None
            continue
        for a, b in zip(
            before.personal_model.expand(trainer.shapes),
            after.personal_model.expand(trainer.shapes),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


def test_client_test_labels_evaluates_on_the_central_test_examples_of_its_labels(
    data,
):
    trainer = Trainer(_config(client_test="labels", personal_models=True), data)

    row = trainer.evaluate()  # before any round: every client has the global model

    evaluator = trainer.evaluator.evaluator
    evaluator.set_weights(trainer.state.server_weights)
    expected = [evaluator.evaluate(*data.client_test_of_labels(c))[0] for c in range(4)]
    assert row["personalized_accuracy"] == pytest.approx(np.mean(expected), abs=1e-9)
    assert row["personal_accuracy"] == row["personalized_accuracy"]
    assert row["clients_without_personal_model"] == 4


@pytest.mark.parametrize("optimizer", ["sgdm", "adam"])
def test_a_server_optimizers_moments_survive_a_checkpoint_exactly(
    data, tmp_path, optimizer
):
    # Three rounds straight, against two, a checkpoint, and a third from it:
    # the third round's step reads the moments the first two left.
    changes = dict(
        schedule="constant",
        sparsity=0.5,
        server_optimizer=optimizer,
        server_learning_rate=0.5 if optimizer == "sgdm" else 0.01,
        rounds=3,
    )
    straight = Trainer(_config(**changes), data)
    for _ in range(3):
        straight.run_round()
    stopped = Trainer(_config(**changes), data)
    for _ in range(2):
        stopped.run_round()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, stopped.state, {"identity": 1}, stopped.shapes)

    resumed = Trainer(_config(**changes), data, load_checkpoint(path, {"identity": 1}))
    resumed.run_round()

    finalizer = resumed.state.server.roles[3]
    moments = finalizer["accumulator"]
    assert any(np.any(m != 0) for m in moments)  # there was state to keep
    for ours, theirs in zip(
        resumed.state.server_weights, straight.state.server_weights, strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)


def test_a_format_3_checkpoint_resumes_with_fresh_role_states(data, tmp_path):
    trainer = Trainer(_config(), data)
    trainer.run_round()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, trainer.state, {"identity": 1}, trainer.shapes)
    # What format 3 wrote: the aggregator's state alone (no leaves).
    arrays, meta = read_archive(path)
    for key in [k for k in arrays if k.startswith("role_")]:
        del arrays[key]
    meta["format_version"] = 3
    del meta["role_leaves"]
    meta["aggregator_leaves"] = 0
    masks_as_version_5(arrays, meta)
    write_archive(path, arrays, meta)

    resumed = Trainer(_config(), data, load_checkpoint(path, {"identity": 1}))
    resumed.run_round()

    assert resumed.state.round == 2
    assert resumed.state.server.roles[3]["learning_rate"] == 1.0


def test_masks_are_kept_as_the_clients_hold_them_and_version_5_masks_still_read(
    data, tmp_path
):
    trainer = Trainer(_config(), data)
    trainer.run_round()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, trainer.state, {"identity": 1}, trainer.shapes)
    held = {c: s.mask for c, s in enumerate(trainer.state.clients) if s.mask}
    assert len(held) == 2  # the round's two clients

    # Version 6: each client's packed masks, byte for byte.
    arrays, meta = read_archive(path)
    for client, masks in held.items():
        np.testing.assert_array_equal(
            arrays[f"mask_{client}"], np.concatenate(masks.packed)
        )
    assert [c.mask for c in load_checkpoint(path, {"identity": 1}).clients] == [
        held.get(c) for c in range(len(trainer.state.clients))
    ]
    # Version 5 wrote one flat bit array: read, it gives the same masks.
    meta["format_version"] = 5
    masks_as_version_5(arrays, meta)
    write_archive(path, arrays, meta)
    assert [c.mask for c in load_checkpoint(path, {"identity": 1}).clients] == [
        held.get(c) for c in range(len(trainer.state.clients))
    ]


def test_a_checkpoint_from_before_an_option_existed_resumes_at_its_default(
    data, tmp_path
):
    trainer = Trainer(_config(), data)
    trainer.run_round()
    path = tmp_path / "checkpoint.npz"
    identity = _config().to_dict()
    older = {k: v for k, v in identity.items() if not k.startswith("server_")}
    save_checkpoint(path, trainer.state, older, trainer.shapes)

    # The options it lacks had their defaults (sgd at 1.0): it resumes ...
    assert load_checkpoint(path, identity).round == 1
    # ... but not into a run that asks for another server step.
    other = _config(server_optimizer="adam", server_learning_rate=0.01).to_dict()
    with pytest.raises(ValueError, match="differs in: server_learning_rate, "):
        load_checkpoint(path, other)
