import sys

import numpy as np
import pytest
import tensorflow as tf
from crafted_files import keras_file_naming_a_module, model_file_running_a_command

from tffprune.models.files import load_model_file


def _planted_module(directory, marker):
    """A module on sys.path that writes ``marker`` when it is imported."""
    (directory / "planted.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from tensorflow.keras import Sequential as Planted\n"
    )


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_model_file_with_a_python_lambda_is_refused_without_running_it(
    tmp_path, suffix
):
    marker = tmp_path / "ran"
    path = tmp_path / f"evil{suffix}"
    model_file_running_a_command(path, marker)
    marker.unlink()  # saving built the model, and so ran the lambda once

    with pytest.raises(ValueError) as caught:
        load_model_file(path, "--model", "do this")

    assert str(caught.value) == (
        f"--model: {path} holds a Lambda layer with Python code (bytecode), "
        "which loading would run: refused; do this"
    )
    assert not marker.exists()


def test_a_keras_file_naming_a_module_outside_keras_is_refused_before_import(
    tmp_path, monkeypatch
):
    marker = tmp_path / "imported"
    _planted_module(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "planted.keras"
    keras_file_naming_a_module(path, "planted")

    with pytest.raises(ValueError, match="names Python module 'planted'"):
        load_model_file(path, "export", "do this")

    assert not marker.exists()
    assert "planted" not in sys.modules


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_plain_model_file_loads_with_its_weights(tmp_path, suffix):
    inputs = tf.keras.Input((3,))
    hidden = tf.keras.layers.Dense(4, activation="relu")(inputs)
    hidden = tf.keras.layers.BatchNormalization()(hidden)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(hidden))
    path = tmp_path / f"plain{suffix}"
    model.save(path)

    loaded = load_model_file(path, "--model", "do this")

    for saved, read in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, read)


def test_a_file_that_is_not_a_model_names_itself(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("not a zip")

    with pytest.raises(ValueError, match=r"^--model: .*notes.keras is not a readable"):
        load_model_file(path, "--model", "do this")
