"""The algorithm's state and download, without TFF (no round is run)."""

import numpy as np
import pytest

from tffprune.compression import wire
from tffprune.compression.compact import compact
from tffprune.fl.algorithm import (
    ClientState,
    FederatedAlgorithm,
    PruningPlan,
    UploadFormat,
)
from tffprune.pruning.policy import PrunableWeight
from tffprune.pruning.schedules import ConstantSparsity

SHAPES = [(40, 30), (30,)]


def _algorithm(download_values, personal=True):
    plan = PruningPlan(
        method="weight",
        schedule=ConstantSparsity(0.5),
        personal=personal,
        targets=(PrunableWeight(0, "dense", "dense", 1),),
        shapes=tuple(SHAPES),
    )
    upload = UploadFormat(values="int1", download_values=download_values)
    return FederatedAlgorithm(None, plan, upload, False, SHAPES)


@pytest.mark.parametrize(
    "download_values, tolerance",
    [("float32", 0.0), ("float16", 2.0**-11), ("int8", None)],
)
def test_a_client_decodes_the_server_weights_times_its_mask(download_values, tolerance):
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    mask = rng.random(SHAPES[0]) < 0.3
    client = ClientState(mask=[mask, np.ones(30, bool)])
    algorithm = _algorithm(download_values)

    received = algorithm.received(weights, client)

    assert np.all(received[0][~mask] == 0)
    expected = weights[0][mask]
    if tolerance is None:  # half an int8 step of the kept values
        tolerance = (expected.max() - expected.min()) / 255 / 2 + 1e-7
        assert tolerance < 0.02
    error = np.abs(received[0][mask] - expected)
    assert np.all(error <= tolerance * np.maximum(1, np.abs(expected)))
    # What the codec really sends it decodes to the same values, and costs
    # only the kept values: the client holds the positions.
    held = algorithm.held_masks(client)
    payload = wire.encode(
        weights, [mask, np.ones(30, bool)], download_values, held=held
    )
    decoded, _ = wire.decode(payload, SHAPES, held=held)
    np.testing.assert_array_equal(decoded[0], received[0])
    costs = algorithm.download_costs(weights, client)
    assert costs["download_bytes"] == len(payload)
    value_bytes = {"float32": 4, "float16": 2, "int8": 1}[download_values]
    assert len(payload) < value_bytes * (mask.sum() + 30) + 64


def test_a_client_without_a_residual_starts_from_zeros():
    algorithm = _algorithm("float32")
    residual = [np.full(s, 0.0, np.float32) for s in SHAPES]
    residual[1][3] = -0.5

    fresh = algorithm.residual(ClientState())
    kept = algorithm.residual(ClientState(residual=compact(residual)))

    assert all(np.all(r == 0) for r in fresh)
    assert kept[1][3] == -0.5 and np.count_nonzero(kept[0]) == 0
