"""`tffprune.run`'s checks of a run's inputs before anything is written."""

import numpy as np

from tffprune.config import TrainConfig
from tffprune.data import from_arrays
from tffprune.run import _with_range_note


def _data(pixels, scale_inputs=False):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, len(pixels))
    return from_arrays(
        pixels, labels, pixels[:4], labels[:4], num_clients=2, scale_inputs=scale_inputs
    )


def test_a_built_in_model_given_0_255_inputs_gets_a_note_naming_the_option():
    pixels = np.full((8, 4, 4, 1), 200, np.uint8)

    noted = _with_range_note(TrainConfig(model="fc"), _data(pixels))

    assert noted.dataset.notes[-1] == (
        "the built-in model fc takes inputs in [0, 1] and x_train ranges up to "
        "200: pass --scale-inputs (integer inputs) or scale the arrays"
    )


def test_no_note_for_scaled_inputs_unit_range_inputs_or_your_own_model():
    pixels = np.full((8, 4, 4, 1), 200, np.uint8)
    for config, data in [
        (TrainConfig(model="fc"), _data(pixels, scale_inputs=True)),
        (TrainConfig(model="fc"), _data(np.full((8, 4, 4, 1), 0.5, np.float32))),
        (TrainConfig(model="my_model.py:build"), _data(pixels)),
    ]:
        assert _with_range_note(config, data) is data
