"""The driver's choices a user sees: the optimizer a compiled model is given."""

import numpy as np
import tensorflow as tf

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.training import Trainer


def _model(compiled):
    def model_fn():
        model = tf.keras.Sequential(
            [
                tf.keras.Input((8, 8, 1)),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(10),
            ]
        )
        if compiled:
            model.compile(optimizer=tf.keras.optimizers.Adam(0.001), loss="mse")
        return model

    return model_fn


def _trainer(model_fn):
    config = TrainConfig(dataset="digits", num_clients=4, clients_per_round=2)
    data = build_federated_data(load_dataset("digits"), 4, "iid", seed=0)
    return Trainer(config, data, model_fn=model_fn)


def test_a_compiled_models_optimizer_is_said_to_be_replaced():
    note = _trainer(_model(compiled=True)).optimizer_note

    assert note == (
        "your model's compiled optimizer (Adam) is not used: clients train with "
        "--client-optimizer sgdm at --client-learning-rate 0.05"
    )


def test_an_uncompiled_model_gets_no_note():
    assert _trainer(_model(compiled=False)).optimizer_note == ""


def test_rounds_on_client_files_equal_rounds_on_shipped_datasets():
    config = TrainConfig(
        dataset="digits",
        model="tfmot_cnn",
        num_clients=4,
        clients_per_round=2,
        local_epochs=2,
        sparsity=0.5,
        rounds=2,
    )
    data = build_federated_data(load_dataset("digits"), 4, "iid", seed=0)
    runs = {}
    for client_files in (True, False):
        trainer = Trainer(config, data, client_files=client_files)
        rows = [trainer.run_round() for _ in range(config.rounds)]
        runs[client_files] = (trainer, rows)

    (files, file_rows), (shipped, shipped_rows) = runs[True], runs[False]
    assert files.files is not None and shipped.files is None
    # Every client sampled in the two rounds has its one file.
    sampled = {c for c, state in enumerate(files.state.clients) if state.download_bytes}
    assert len(sampled) >= 2
    assert len(list(files.files.directory.iterdir())) == len(sampled)
    for mine, theirs in zip(
        files.state.server.weights, shipped.state.server.weights, strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    for mine, theirs in zip(files.state.clients, shipped.state.clients, strict=True):
        assert (mine.mask is None) == (theirs.mask is None)
        for a, b in zip(mine.mask or [], theirs.mask or [], strict=True):
            np.testing.assert_array_equal(a, b)
    assert [r["central_accuracy"] for r in file_rows] == [
        r["central_accuracy"] for r in shipped_rows
    ]
