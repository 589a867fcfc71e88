import re

import numpy as np
import pytest

from tffprune.data import DataError, from_arrays, from_client_arrays


def _arrays(train=40, test=10, shape=(4, 4, 1), seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.random((train, *shape)).astype(np.float32),
        rng.integers(0, 3, train),
        rng.random((test, *shape)).astype(np.float32),
        rng.integers(0, 3, test),
    )


def test_uint8_inputs_are_used_as_given_and_the_note_names_the_option():
    x_train, y_train, x_test, y_test = _arrays()
    pixels = np.full(x_train.shape, 255, np.uint8)
    pixels[0, 0, 0, 0] = 51

    data = from_arrays(pixels, y_train, x_test, y_test, num_clients=4)

    # As Keras' fit would see them: a Rescaling(1 / 255) layer gets 0..255.
    assert data.dataset.x_train.dtype == np.float32
    assert data.dataset.x_train[0, 0, 0, 0] == 51.0
    assert data.dataset.x_train.max() == 255.0
    assert not data.dataset.inputs_scaled
    assert data.dataset.notes == (
        "x_train: integer inputs (uint8, 51..255) used as given; "
        "scale_inputs=True divides them by 255",
    )


def test_scale_inputs_divides_integer_inputs_by_their_dtype_maximum():
    x_train, y_train, x_test, y_test = _arrays()
    pixels = np.full(x_train.shape, 255, np.uint8)
    pixels[0, 0, 0, 0] = 51

    data = from_arrays(
        pixels, y_train, x_test, y_test, num_clients=4, scale_inputs=True
    )

    assert data.dataset.x_train[0, 0, 0, 0] == pytest.approx(0.2)
    assert data.dataset.x_train.max() == 1.0
    assert data.dataset.inputs_scaled
    assert data.dataset.notes == (
        "x_train: integer inputs (uint8) scaled to [0, 1] by 1/255",
    )
    # Float inputs are never scaled.
    assert data.dataset.x_test.tolist() == x_test.tolist()


def test_token_ids_reach_the_model_as_ids():
    ids = np.arange(1, 41, dtype=np.int32).reshape(4, 10) % 50
    labels = np.array([0, 1, 0, 1])

    data = from_client_arrays(
        {"a": (ids[:2], labels[:2]), "b": (ids[2:], labels[2:])},
        test=(ids, labels),
        client_test_fraction=0.0,
    )

    assert data.dataset.x_train.tolist() == ids.tolist()  # 1..40, not 1/2**31..
    assert (
        "client a inputs: integer inputs (int32, 1..20) used as given"
        in (data.dataset.notes[0])
    )


def test_integers_float32_cannot_hold_exactly_are_refused():
    x_train, y_train, x_test, y_test = _arrays(shape=(3,))
    big = np.full(x_train.shape, 2**24 + 1, np.int64)

    with pytest.raises(DataError, match=r"x_train holds integers up to 16777217"):
        from_arrays(big, y_train, x_test, y_test, num_clients=4)


def test_float_pixels_in_0_255_are_kept_but_named_in_a_note():
    x_train, y_train, x_test, y_test = _arrays()
    pixels = np.full(x_train.shape, 12.5, np.float32)
    pixels[1, 0, 0, 0] = 255.0

    data = from_arrays(pixels, y_train, x_test, y_test, num_clients=4)

    assert data.dataset.x_train.max() == 255.0  # used as given
    assert data.dataset.notes == (
        "x_train: float inputs range up to 255 and are used as they are; divide "
        "pixel values by 255 (or start the model with "
        "tf.keras.layers.Rescaling(1 / 255))",
    )
    # Standardized inputs (e.g. (x - 0.13) / 0.31, up to 2.8) pass quietly.
    standardized = from_arrays(
        (x_train - 0.13) / 0.31, y_train, x_test, y_test, num_clients=4
    )
    assert standardized.dataset.notes == ()


def test_flat_features_and_float_labels_holding_whole_numbers():
    x_train, y_train, x_test, y_test = _arrays(shape=(7,))

    data = from_arrays(x_train, y_train.astype(float), x_test, y_test, num_clients=5)

    assert data.dataset.input_shape == (7,)
    assert data.dataset.y_train.dtype == np.int32
    assert data.dataset.num_classes == 3
    assert sum(c.train_indices.size + c.test_indices.size for c in data.clients) == 40


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(y_train=np.full(40, 1.5)), "y_train must be whole class indices"),
        (dict(y_test=np.arange(10) - 1), "y_test must be >= 0"),
        (dict(y_train=np.zeros(39)), "y_train has 39 labels for 40 examples"),
        (dict(x_test=np.zeros((10, 5, 4, 1))), "x_test examples have shape"),
        (dict(x_train=np.full((40, 4, 4, 1), np.inf)), "640 NaN or infinite"),
        (dict(x_train=np.zeros((0, 4, 4, 1))), "x_train has no examples"),
        (dict(x_train=np.array(["a"] * 40)[:, None]), "must be numeric"),
        (dict(num_classes=2), "labels must be in [0, 2), got a label 2"),
        (dict(num_clients=21), "cannot give 21 clients 2 examples each"),
    ],
)
def test_invalid_arrays_are_named(change, message):
    x_train, y_train, x_test, y_test = _arrays()
    arguments = dict(
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, num_clients=4
    )
    arguments.update(change)

    with pytest.raises(DataError, match=re.escape(message)):
        from_arrays(**arguments)


def test_client_arrays_keep_ids_order_and_own_examples():
    x_train, y_train, x_test, y_test = _arrays()
    clients = {
        "phone": (x_train[:10], y_train[:10]),
        "watch": (x_train[10:30], y_train[10:30]),
        7: (x_train[30:], y_train[30:]),
    }

    data = from_client_arrays(clients, test=(x_test, y_test), client_test_fraction=0.2)

    assert data.client_ids == ("phone", "watch", "7")
    assert [row["client"] for row in data.summary()] == ["phone", "watch", "7"]
    inputs, labels = data.client_train(1)
    tests = data.client_test(1)
    assert len(labels) + len(tests[1]) == 20 and len(tests[1]) == 4
    # Every example a client holds is one of its own.
    own = {row.tobytes() for row in x_train[10:30]}
    assert all(row.tobytes() in own for row in np.concatenate([inputs, tests[0]]))


def test_client_arrays_refuse_an_empty_client():
    x_train, y_train, x_test, y_test = _arrays()

    with pytest.raises(DataError, match="client b inputs has no examples"):
        from_client_arrays(
            {"a": (x_train, y_train), "b": (x_train[:0], y_train[:0])},
            test=(x_test, y_test),
        )


def test_labels_that_never_occur_below_the_largest_are_named():
    x_train, _, x_test, _ = _arrays()
    y_train = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10] * 4)  # 9 never occurs

    data = from_arrays(x_train, y_train, x_test, np.arange(10) % 9, num_clients=4)

    assert data.dataset.num_classes == 11
    assert data.dataset.notes == (
        "labels 9 never occur: the model has 11 outputs (classes 0..10) and that "
        "class is never trained",
    )


def test_client_ids_that_are_one_id_as_text_are_refused():
    x_train, y_train, x_test, y_test = _arrays()

    with pytest.raises(DataError, match=r"client ids 1 and '1' are both '1' as text"):
        from_client_arrays(
            {1: (x_train[:20], y_train[:20]), "1": (x_train[20:], y_train[20:])},
            test=(x_test, y_test),
        )


def test_one_hot_labels_say_to_take_the_argmax():
    x_train, y_train, x_test, y_test = _arrays()
    one_hot = np.eye(3, dtype=np.float32)[y_train]

    with pytest.raises(DataError, match=re.escape("y_train.argmax(axis=1)")):
        from_arrays(x_train, one_hot, x_test, y_test, num_clients=4)


def test_a_tf_data_dataset_says_to_pass_arrays():
    import tensorflow as tf

    x_train, y_train, x_test, y_test = _arrays()
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))

    with pytest.raises(DataError, match="x_train is a tf.data.Dataset; pass NumPy"):
        from_arrays(dataset, y_train, x_test, y_test, num_clients=4)
