"""FedPM as a composed round: its types, its posterior, and that it learns."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.data import load_dataset
from tffprune.fl.messages import SampledMask, SampleInput
from tffprune.learning import build_fedpm
from tffprune.learning.fedpm import build_probability_distributor
from tffprune.pruning import probabilistic

pytestmark = pytest.mark.slow

INPUT_SHAPE = (28, 28, 1)
ELEMENT_SPEC = (
    tf.TensorSpec([None, *INPUT_SHAPE], tf.float32),
    tf.TensorSpec([None], tf.int64),
)


def model_fn():
    inputs = tf.keras.Input(INPUT_SHAPE)
    x = tf.keras.layers.Flatten()(inputs)
    x = tf.keras.layers.Dense(100, activation="relu")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion_mnist")


def client_data(dataset, client, round_number, clients=4, size=1500):
    x = dataset.x_train[client * size : (client + 1) * size]
    y = dataset.y_train[client * size : (client + 1) * size].astype(np.int64)
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(size, seed=round_number)
        .batch(128)
        .repeat(2)
    )


def central_accuracy(process, state, dataset):
    model = model_fn()
    process.model_weights(state.global_model_weights).assign_weights_to(model)
    logits = model.predict(dataset.x_test[:3000], verbose=0)
    return float(np.mean(logits.argmax(-1) == dataset.y_test[:3000]))


def test_types_of_the_round():
    process = build_fedpm(model_fn, ELEMENT_SPEC, seed=5)
    signature = process.next.type_signature
    inputs = signature.parameter[1].member
    assert inputs.python_container is SampleInput
    assert [str(t) for t in inputs] == ["int32[2]", "bool"]
    weights = process.initialize.type_signature.result.member.global_model_weights
    assert [tuple(t.shape) for t in weights] == [(784, 100), (100,), (100, 10), (10,)]
    assert signature.result[1].member.python_container is SampledMask


def test_new_probabilities_are_the_mean_of_the_smoothed_masks_that_arrived(fashion):
    process = build_fedpm(model_fn, ELEMENT_SPEC, seed=5)
    state = process.initialize()
    delivered = [True, False, True]
    output = process.next(
        state,
        process.inputs(["a", "b", "c"], 0, delivered),
        [client_data(fashion, c, 0) for c in range(3)],
    )
    arrived = [c for c, d in zip(output.clients, delivered, strict=True) if d]
    for index, probabilities in enumerate(output.state.global_model_weights):
        expected = np.mean(
            [probabilistic.smoothed(c.mask[index]) for c in arrived], axis=0
        )
        np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    # Each upload is a sample: about as dense as its probabilities.
    density = np.mean(output.clients[0].mask[0])
    assert 0.3 < density < 0.7


def test_probabilities_are_one_float_per_count_of_masks_that_kept_a_weight(fashion):
    # Ten masks arrive: p = (0.01 * 10 + 0.98 * k) / 10 for the k that kept a
    # weight, 11 floats at most, whatever order TFF adds the masks in.
    process = build_fedpm(model_fn, ELEMENT_SPEC, seed=5)
    state = process.initialize()
    output = process.next(
        state,
        process.inputs(list(range(10)), 0),
        [client_data(fashion, c, 0, size=128) for c in range(10)],
    )
    probabilities = np.concatenate(
        [np.ravel(p) for p in output.state.global_model_weights]
    )
    kept = np.sum(
        [np.concatenate([np.ravel(m) for m in c.mask]) for c in output.clients], axis=0
    )
    np.testing.assert_allclose(probabilities, (0.1 + 0.98 * kept) / 10, rtol=1e-6)
    assert np.unique(probabilities).size <= 11


def test_a_round_is_reproducible_from_its_seeds(fashion):
    process = build_fedpm(model_fn, ELEMENT_SPEC, seed=5)
    state = process.initialize()
    runs = [
        process.next(state, process.inputs([7], 3), [client_data(fashion, 0, 3)])
        for _ in range(2)
    ]
    for first, second in zip(
        runs[0].clients[0].mask, runs[1].clients[0].mask, strict=True
    ):
        np.testing.assert_array_equal(first, second)
    other = process.next(state, process.inputs([8], 3), [client_data(fashion, 0, 3)])
    assert np.mean(other.clients[0].mask[0] != runs[0].clients[0].mask[0]) > 0.05


def test_fedpm_learns_fashion_mnist_from_a_frozen_random_network(fashion):
    process = build_fedpm(model_fn, ELEMENT_SPEC, seed=5, download_bits=4)
    state = process.initialize()
    before = central_accuracy(process, state, fashion)
    for round_number in range(4):
        output = process.next(
            state,
            process.inputs(list(range(4)), round_number),
            [client_data(fashion, c, round_number) for c in range(4)],
        )
        state = output.state
    after = central_accuracy(process, state, fashion)
    assert before < 0.2
    assert after > 0.65
    assert output.metrics["client_work"]["num_examples"] == 4 * 2 * 1500
    # Trained weights are the seed's: only which ones are kept changed.
    model = model_fn()
    process.model_weights(state.global_model_weights).assign_weights_to(model)
    kernel = model.trainable_weights[0].numpy()
    kept = kernel[kernel != 0]
    np.testing.assert_allclose(np.abs(kept), np.e / np.sqrt(784), rtol=1e-6)


def test_the_distributor_sends_bin_midpoints():
    probabilities_type = tff.StructWithPythonType(
        [tff.TensorType(np.float32, [4])], list
    )
    inputs_type = tff.StructWithPythonType(
        [
            ("seed", tff.TensorType(np.int32, [2])),
            ("delivered", tff.TensorType(np.bool_)),
        ],
        SampleInput,
    )
    distributor = build_probability_distributor(probabilities_type, inputs_type, 2)
    output = distributor.next(
        distributor.initialize(),
        [np.array([0.0, 0.2, 0.6, 1.0], np.float32)],
        [SampleInput(np.zeros(2, np.int32), np.bool_(True))],
    )
    # All clients receive the same value: TFF hands back one.
    np.testing.assert_allclose(output.result[0], [0.125, 0.125, 0.625, 0.875])
    assert output.state == 1


def test_models_with_state_are_refused():
    def with_batch_norm():
        inputs = tf.keras.Input((4,))
        x = tf.keras.layers.BatchNormalization()(inputs)
        return tf.keras.Model(inputs, tf.keras.layers.Dense(2)(x))

    with pytest.raises(ValueError, match="non-trainable weights"):
        build_fedpm(with_batch_norm, (tf.TensorSpec([None, 4]), tf.TensorSpec([None])))
    with pytest.raises(ValueError, match="download_bits"):
        build_fedpm(model_fn, ELEMENT_SPEC, download_bits=5)
