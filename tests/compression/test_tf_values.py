import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tffprune.compression import VALUE_FORMATS, decode, encode
from tffprune.compression.tf_values import transmitted


@given(
    size=st.integers(1, 300),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    value_format=st.sampled_from(VALUE_FORMATS),
    constant=st.booleans(),
)
@settings(max_examples=120, deadline=None)
def test_equals_what_the_server_decodes(size, density, seed, value_format, constant):
    rng = np.random.default_rng(seed)
    values = rng.normal(scale=0.1, size=(size,)).astype(np.float32)
    if constant:  # a zero quantization step
        values[:] = np.float32(0.25)
    mask = rng.random(size) < density

    decoded, _ = decode(encode([values], [mask], value_format))
    ours = transmitted(tf.constant(values), tf.constant(mask), value_format)

    np.testing.assert_array_equal(ours.numpy(), decoded[0])


def test_int8_hand_worked():
    values = tf.constant([0.0, 2.55, 1.0, 9.0])
    mask = tf.constant([True, True, True, False])

    # min 0, max 2.55, step 0.01: 1.0 is exactly 100 steps; 9.0 is not sent.
    decoded = transmitted(values, mask, "int8").numpy()

    np.testing.assert_allclose(decoded, [0.0, 2.55, 1.0, 0.0], atol=1e-6)


def test_int2_hand_worked():
    values = tf.constant([-0.3, 0.0, 0.29, 0.6, 5.0])
    mask = tf.constant([True, True, True, True, False])

    # min -0.3, max 0.6, 4 levels: step 0.3; 0.0 -> 1 step, 0.29 -> 2 steps.
    decoded = transmitted(values, mask, "int2").numpy()

    np.testing.assert_allclose(decoded, [-0.3, 0.0, 0.3, 0.6, 0.0], atol=1e-6)


def test_int1_hand_worked():
    values = tf.constant([0.5, -0.25, 0.0, -1.25, 7.0])
    mask = tf.constant([True, True, True, True, False])

    # mean |x| over the kept four = (0.5 + 0.25 + 0 + 1.25) / 4 = 0.5; 0 -> +.
    decoded = transmitted(values, mask, "int1").numpy()

    np.testing.assert_array_equal(decoded, [0.5, -0.5, 0.5, -0.5, 0.0])


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unknown value format"):
        transmitted(tf.constant([1.0]), tf.constant([True]), "int3")
