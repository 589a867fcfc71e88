"""The algorithm's state and download, without TFF (no round is run)."""

import numpy as np
import pytest

from tffprune.compression import wire
from tffprune.fl.algorithm import (
    ClientState,
    FederatedAlgorithm,
    PruningPlan,
)
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.pruning.packed_masks import PackedMasks
from tffprune.pruning.policy import PrunableWeight
from tffprune.pruning.schedules import ConstantSparsity

SHAPES = [(40, 30), (30,)]


def _algorithm(download_values="float32", new_clients="dense"):
    """Sub-FedAvg, weight pruning of the (40, 30) kernel to 50%."""
    work = ClientWorkConfig.from_options(
        "weight", (PrunableWeight(0, "dense", "dense", 1),), value_format="int1"
    )
    plan = PruningPlan(
        work, ConstantSparsity(0.5), tuple(SHAPES), new_clients=new_clients
    )
    return FederatedAlgorithm(None, plan, SHAPES, download_values=download_values)


@pytest.mark.parametrize(
    "download_values, tolerance, steps",
    [
        ("float32", 0.0, None),
        ("float16", 2.0**-11, None),
        ("int8", None, 255),
        ("int4", None, 15),
    ],
)
def test_a_client_decodes_the_server_weights_times_its_mask(
    download_values, tolerance, steps
):
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    mask = rng.random(SHAPES[0]) < 0.3
    client = ClientState(mask=[mask, np.ones(30, bool)])
    algorithm = _algorithm(download_values)

    start = algorithm.start_masks(weights, [client], [0], 0)[0]
    received = algorithm.received(weights, start)

    assert np.all(received[0][~mask] == 0)
    expected = weights[0][mask]
    if steps:  # half a step: the kept values' range over 2**bits - 1 steps
        tolerance = (expected.max() - expected.min()) / steps / 2 + 1e-7
        assert tolerance < 4 / steps
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
    costs = algorithm.download_costs(weights, start, client)
    assert costs["download_bytes"] == len(payload)
    value_bytes = {"float32": 4, "float16": 2, "int8": 1, "int4": 0.5}
    assert len(payload) < value_bytes[download_values] * (mask.sum() + 30) + 64


def test_a_client_keeps_its_mask_packed_between_rounds():
    mask = [np.random.default_rng(2).random((40, 30)) < 0.5, np.ones(30, bool)]

    state = ClientState().after_round(True, mask, 0.5)
    dropped = state.after_round(False, [~m for m in mask], 0.9)

    # 1,200 + 30 entries: 150 + 4 bytes, not 1,230 booleans.
    assert isinstance(state.mask, PackedMasks)
    assert state.mask.nbytes == 150 + 4
    for ours, theirs in zip(state.mask, mask, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert dropped.mask is state.mask  # an upload not aggregated keeps it


def test_a_new_client_starts_from_the_server_subnetwork_when_asked():
    rng = np.random.default_rng(1)
    # Kernel |w| = 1..1200 shuffled: at 50% exactly the 600 largest are kept.
    kernel = rng.permutation(np.arange(1, 1201, dtype=np.float32)).reshape(40, 30)
    weights = [kernel, np.zeros(30, np.float32)]
    dense = _algorithm()
    subnetwork = _algorithm(new_clients="subnetwork")
    own = [rng.random((40, 30)) < 0.8, np.ones(30, bool)]
    clients = [ClientState(), ClientState(mask=own)]

    assert all(np.all(m) for m in dense.start_masks(weights, clients, [0], 0)[0])
    new, returning = subnetwork.start_masks(weights, clients, [0, 1], 0)

    # The union of the clients' masks is client 1's (about 960 entries):
    # entries outside it go first, then the smallest magnitudes, to 600 kept.
    assert np.count_nonzero(new[0]) == 600
    assert not np.any(new[0] & ~own[0])
    smallest_kept = kernel[new[0]].min()
    assert np.all(kernel[own[0] & ~new[0]] < smallest_kept)
    assert returning is clients[1].mask  # its own masks, as it holds them
    for ours, theirs in zip(returning, own, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # A new client receives positions and values; the server knows them when
    # its upload comes back.
    first = subnetwork.download_costs(weights, new, clients[0])["download_bytes"]
    assert 600 * 4 < first < 600 * 4 + 1200 // 8 + 30 * 4 + 64
    assert subnetwork.upload_held(clients[0], new)[0] is new[0]
    assert dense.upload_held(clients[0], new)[0] is None
