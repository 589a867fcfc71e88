"""Models that read their own inputs train on them as Keras' fit would.

Issue 34 point 1: integer inputs used to be divided by their dtype's maximum
on the way in, so token ids 1..49 reached an ``Embedding`` as 5e-10..2e-8
(every id row 0: the run stayed at the majority class) and uint8 pixels
reached a ``Rescaling(1 / 255)`` layer as [0, 1] (scaled twice: it stayed at
0.10). Each model here is trained twice on the same examples for the same
epochs: by ``tffprune.train`` (dense FedAvg, 2 IID clients, both every round,
one local epoch a round) and by Keras' own ``fit`` with the same optimizer;
the federated run must reach 0.9 of Keras' accuracy.
"""

import numpy as np
import pytest
import tensorflow as tf

import tffprune
from tffprune.data import load_dataset

pytestmark = pytest.mark.slow

ROUNDS = 4


def _keras_accuracy(model_fn, optimizer, x_train, y_train, x_test, y_test) -> float:
    """Plain Keras: the clients' optimizer, the same epochs and batch size."""
    tf.keras.utils.set_random_seed(0)
    model = model_fn()
    model.compile(
        optimizer,
        tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=32, epochs=ROUNDS, verbose=0)
    return float(model.evaluate(x_test, y_test, verbose=0)[1])


def _federated_accuracy(model_fn, data, output_dir, **optimizer) -> float:
    summary = tffprune.train(
        model_fn,
        data,
        output_dir=output_dir,
        aggregation="fedavg",
        method="none",
        sparsity=0.0,
        rounds=ROUNDS,
        clients_per_round=2,
        eval_every=ROUNDS,
        progress=False,
        **optimizer,
    )
    return summary["final"]["central_accuracy"]


def _tokens(count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of 12 token ids in 1..49; the label: does id 7 occur."""
    ids = rng.integers(1, 50, (count, 12)).astype(np.int32)
    ids[ids == 7] = 8
    has_seven = rng.random(count) < 0.375  # 0.625 is the majority class
    ids[has_seven, rng.integers(0, 12, int(has_seven.sum()))] = 7
    return ids, np.any(ids == 7, axis=1).astype(np.int32)


def test_an_embedding_lstm_on_token_ids_learns_as_in_keras(tmp_path):
    rng = np.random.default_rng(0)
    x_train, y_train = _tokens(1600, rng)
    x_test, y_test = _tokens(400, rng)

    def model_fn():
        return tf.keras.Sequential(
            [
                tf.keras.Input((12,), dtype=tf.int32),
                tf.keras.layers.Embedding(50, 8),
                tf.keras.layers.LSTM(8),
                tf.keras.layers.Dense(2, activation="softmax"),
            ]
        )

    data = tffprune.data.from_arrays(
        x_train, y_train, x_test, y_test, num_clients=2, client_test_fraction=0.0
    )
    federated = _federated_accuracy(
        model_fn,
        data,
        tmp_path / "tokens",
        client_optimizer="adam",
        client_learning_rate=0.01,
    )
    keras = _keras_accuracy(
        model_fn, tf.keras.optimizers.Adam(0.01), x_train, y_train, x_test, y_test
    )

    assert data.dataset.x_train.max() == 49.0  # the ids, as ids
    assert np.mean(y_test == 0) < 0.7  # the majority class: far below 0.9
    assert keras > 0.9  # the rule is learnable in 4 epochs
    assert federated >= 0.9 * keras, (federated, keras)


def test_uint8_images_into_a_rescaling_layer_learn_as_in_keras(tmp_path):
    fashion = load_dataset("fashion_mnist")
    x_train = np.round(fashion.x_train[:2000] * 255).astype(np.uint8)
    x_test = np.round(fashion.x_test[:500] * 255).astype(np.uint8)
    y_train, y_test = fashion.y_train[:2000], fashion.y_test[:500]

    def model_fn():  # the keras.io pattern
        return tf.keras.Sequential(
            [
                tf.keras.Input((28, 28, 1)),
                tf.keras.layers.Rescaling(1 / 255),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(32, activation="relu"),
                tf.keras.layers.Dense(10, activation="softmax"),
            ]
        )

    data = tffprune.data.from_arrays(
        x_train, y_train, x_test, y_test, num_clients=2, client_test_fraction=0.0
    )
    federated = _federated_accuracy(model_fn, data, tmp_path / "pixels")
    keras = _keras_accuracy(
        model_fn,
        tf.keras.optimizers.SGD(0.05, momentum=0.5),  # the clients' default
        x_train,
        y_train,
        x_test,
        y_test,
    )

    assert data.dataset.notes[0].startswith(
        "x_train: integer inputs (uint8, 0..255) used as given"
    )
    assert keras > 0.7
    assert federated >= 0.9 * keras, (federated, keras)
