"""`tffprune.run`: its checks of a run's inputs, and the line a run ends with."""

import numpy as np

from tffprune.config import TrainConfig
from tffprune.data import from_arrays
from tffprune.run import _with_range_note, final_line


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


def _summary(upload, download, dense):
    return {
        "final": {"central_accuracy": 0.5, "personalized_accuracy": 0.25},
        "total_upload_bytes": upload,
        "total_download_bytes": download,
        "total_bytes": upload + download,
        "total_upload_bytes_dense": dense / 2,
        "total_download_bytes_dense": dense / 2,
        "final_client_sparsity": {"mean": 0.5, "clients": 3},
        "clients_never_aggregated": 3,
        "rounds_completed": 1,
    }


def test_the_final_line_reads_sizes_and_the_ratio_in_words():
    line = final_line(_summary(1_900_000, 2_100_000, 8_000_000), "runs/x")
    assert "upload 1.9 MB, download 2.1 MB (2.0x less than dense both ways)" in line
    # A tiny run is not "0.0 MB", and sending as much as dense is not "1.0x less".
    tiny = final_line(_summary(42_300, 512, 43_000), "runs/x")
    assert "upload 42.3 kB, download 512 B (as much as dense both ways" in tiny
    more = final_line(_summary(60_000, 60_000, 40_000), "runs/x")
    assert "(3.0x more than dense both ways)" in more
