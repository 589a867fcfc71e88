"""TFLite Micro's LUT compression on a small hand-built model."""

import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tffprune.export import c_array, lut, tflite, verify

pytestmark = pytest.mark.slow

FOUR_VALUES = np.array([-0.5, 0.0, 0.25, 0.75], np.float32)


@pytest.fixture(scope="module")
def int8_model():
    """Dense(64 -> 256) with 4 distinct weights, then Dense(256 -> 4) uniform."""
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = tf.keras.Input((64,))
    hidden = tf.keras.layers.Dense(256, activation="relu", name="clustered")(inputs)
    logits = tf.keras.layers.Dense(4, name="uniform")(hidden)
    model = tf.keras.Model(inputs, logits)
    model.get_layer("clustered").kernel.assign(rng.choice(FOUR_VALUES, (64, 256)))
    model.get_layer("uniform").kernel.assign(rng.uniform(-1, 1, (256, 4)))
    images = rng.random((64, 64)).astype(np.float32)
    return tflite.convert(model, "int8", representative_images=images), images


def _entry(plans, layer):
    return next(p for p in plans if layer in p.name and len(p.shape) == 2)


def test_four_values_become_two_bit_indices_and_many_stay(int8_model):
    model, _ = int8_model

    plans = lut.plan_compression(model)

    clustered = _entry(plans, "clustered")
    assert (clustered.distinct, clustered.index_bits) == (4, 2)
    # 16,384 int8 weights: x 2 bits = 4,096 bytes, a table of 4, a 16-byte header.
    assert (clustered.bytes_before, clustered.bytes_after) == (16384, 4096 + 4 + 16)
    uniform = _entry(plans, "uniform")
    assert uniform.index_bits is None
    assert uniform.distinct > 128
    assert uniform.reason == f"{uniform.distinct} distinct values, more than 128"


def test_decoded_values_equal_the_originals(int8_model):
    from tflite_micro.tensorflow.lite.micro.compression import lut as tflm_lut

    model, _ = int8_model
    clustered = _entry(lut.plan_compression(model), "clustered")
    original = tf.lite.Interpreter(model_content=model).get_tensor(clustered.tensor)

    # The compressor's own encoding of that tensor, decoded by hand.
    packed = tflm_lut.compress_array(original, None)
    bits = tflm_lut.pack_indices(packed.indices, clustered.index_bits)
    stream = np.unpackbits(np.frombuffer(bits, np.uint8))
    indices = stream.reshape(-1, 2) @ np.array([2, 1])
    decoded = packed.lookup_tables[0][indices].reshape(original.shape)

    assert len(bits) == original.size * 2 // 8
    np.testing.assert_array_equal(decoded, original)


def test_compressed_model_runs_in_tflite_micro_with_equal_outputs(int8_model):
    model, images = int8_model

    compressed, plans = lut.compress_model(model)

    # Saved: the 16,384 bytes less 4,116, less the DECODE operator's own
    # few hundred bytes in the flatbuffer.
    assert 16_384 - 4_116 - 512 < len(model) - len(compressed) < 16_384 - 4_116
    assert sum(p.index_bits is not None for p in plans) >= 1
    ours = verify.tflm_outputs(compressed, images[:16])
    theirs = verify.tflm_outputs(model, images[:16])
    np.testing.assert_array_equal(ours.outputs, theirs.outputs)


def test_c_array_of_a_compressed_model_compiles_to_its_length(int8_model, tmp_path):
    compressed, _ = lut.compress_model(int8_model[0])
    (tmp_path / "model_data.h").write_text(c_array.c_header())
    (tmp_path / "model_data.cc").write_text(c_array.c_source(compressed))
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include "model_data.h"\n'
        'int main() { std::printf("%u %d", g_model_len, g_model[0]); }\n'
    )

    subprocess.run(
        ["g++", "-std=c++17", "-c", "model_data.cc", "main.cc"],
        cwd=tmp_path,
        check=True,
    )
    subprocess.run(
        ["g++", "-o", "check", "main.o", "model_data.o"], cwd=tmp_path, check=True
    )
    printed = subprocess.run(
        [str(tmp_path / "check")], capture_output=True, text=True, check=True
    ).stdout
    symbols = subprocess.run(
        ["nm", "-S", "-C", "model_data.o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    array = next(line for line in symbols.splitlines() if line.endswith(" g_model"))

    assert printed == f"{len(compressed)} {compressed[0]}"
    assert int(array.split()[1], 16) == len(compressed)  # the array's own size


def test_a_model_too_small_to_gain_is_left_as_it_was():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    model.layers[0].kernel.assign(np.tile([[0.5, -0.5, 0.0]], (4, 1)))
    small = tflite.convert(model, "int8", representative_images=np.eye(4, dtype="f"))

    compressed, plans = lut.compress_model(small)

    assert compressed == small
    assert all(p.index_bits is None for p in plans)
    assert "no saving" in plans[0].reason
