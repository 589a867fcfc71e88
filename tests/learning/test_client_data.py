"""A process on client files: the same rounds, the same process type."""

import numpy as np
import pytest
import tensorflow as tf

from tffprune.data import load_dataset
from tffprune.data.client_files import ClientFiles
from tffprune.data.pipeline import batched_dataset
from tffprune.learning import FedPMProcess, build_fedpm, with_client_files

pytestmark = pytest.mark.slow

INPUT_SHAPE = (28, 28, 1)
ELEMENT_SPEC = (
    tf.TensorSpec([None, *INPUT_SHAPE], tf.float32),
    tf.TensorSpec([None], tf.int64),
)
SIZE, BATCH = 300, 50


def model_fn():
    inputs = tf.keras.Input(INPUT_SHAPE)
    x = tf.keras.layers.Flatten()(inputs)
    x = tf.keras.layers.Dense(20, activation="relu")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))


def test_a_fedpm_round_on_files_is_its_round_on_datasets_and_still_fedpm(tmp_path):
    fashion = load_dataset("fashion_mnist")

    def examples(client):
        part = slice(client * SIZE, (client + 1) * SIZE)
        return fashion.x_train[part], fashion.y_train[part].astype(np.int64)

    process = build_fedpm(model_fn, ELEMENT_SPEC, seed=3)
    on_files = with_client_files(process, ELEMENT_SPEC, batch_size=BATCH)
    # A loop on files still has FedPM's helpers: the clients' seeds, the network.
    assert isinstance(on_files, FedPMProcess)
    assert (on_files.seed, on_files.shapes) == (process.seed, process.shapes)

    files = ClientFiles(examples, ELEMENT_SPEC, directory=tmp_path)
    clients, seed = [2, 0], 7
    shipped = process.next(
        process.initialize(),
        process.inputs(clients, 0),
        [batched_dataset(*examples(c), BATCH, shuffle_seed=seed) for c in clients],
    )
    read = on_files.next(
        on_files.initialize(),
        on_files.inputs(clients, 0),
        [files.reference(c, seed=seed, epochs=1) for c in clients],
    )
    assert len(list(tmp_path.iterdir())) == 2  # one file a client
    for mine, theirs in zip(
        read.state.global_model_weights,
        shipped.state.global_model_weights,
        strict=True,
    ):
        np.testing.assert_array_equal(mine, theirs)
    # The round moved the probabilities: equal states are not both initial ones.
    initial = process.initialize().global_model_weights
    assert not np.array_equal(read.state.global_model_weights[0], initial[0])
