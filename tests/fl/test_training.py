"""The driver's choices a user sees: the optimizer a compiled model is given."""

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
