"""Sub-FedAvg aggregation: hand-worked cases, NumPy reference vs TFF factory."""

import numpy as np
import pytest

from tffprune.fl.aggregation import fedavg, sub_fedavg

SERVER = [np.array([10.0, 20.0, 30.0], np.float32)]


def test_one_client_takes_its_kept_values():
    result = sub_fedavg(
        SERVER, [[np.array([1.0, 2.0, 3.0])]], [[np.array([True, False, True])]]
    )

    # Entry 1 was kept by nobody: the server value 20 stays.
    np.testing.assert_array_equal(result[0], [1.0, 20.0, 3.0])


def test_identical_clients_give_their_values():
    client = [np.array([1.0, 2.0, 3.0])]
    mask = [np.array([True, True, False])]

    result = sub_fedavg(SERVER, [client, client, client], [mask, mask, mask])

    np.testing.assert_array_equal(result[0], [1.0, 2.0, 30.0])


def test_disjoint_masks_each_entry_from_its_owner():
    result = sub_fedavg(
        SERVER,
        [[np.array([1.0, 100.0, 100.0])], [np.array([100.0, 2.0, 100.0])]],
        [[np.array([True, False, False])], [np.array([False, True, False])]],
    )

    np.testing.assert_array_equal(result[0], [1.0, 2.0, 30.0])


def test_overlapping_masks_average_only_keepers():
    result = sub_fedavg(
        SERVER,
        [
            [np.array([1.0, 4.0, 0.0])],
            [np.array([3.0, 8.0, 6.0])],
            [np.array([5.0, 0.0, 9.0])],
        ],
        [
            [np.array([True, True, False])],
            [np.array([True, True, True])],
            [np.array([True, False, True])],
        ],
    )

    # (1+3+5)/3, (4+8)/2, (6+9)/2
    np.testing.assert_allclose(result[0], [3.0, 6.0, 7.5])


def test_weighted_example_from_tff_tests():
    # values [1,2,3], weights [3,2,1] -> 10/6
    clients = [[np.array([1.0])], [np.array([2.0])], [np.array([3.0])]]

    result = fedavg([np.array([0.0])], clients, client_weighting=[3, 2, 1])

    np.testing.assert_allclose(result[0], [10 / 6])


def test_all_ones_masks_equal_fedavg():
    rng = np.random.default_rng(0)
    clients = [[rng.normal(size=(4, 3)), rng.normal(size=3)] for _ in range(5)]
    server = [np.zeros((4, 3)), np.zeros(3)]
    ones = [[np.ones((4, 3), bool), np.ones(3, bool)] for _ in range(5)]
    weights = [1, 5, 2, 8, 3]

    masked = sub_fedavg(server, clients, ones, weights)
    plain = fedavg(server, clients, weights)

    for a, b in zip(masked, plain, strict=True):
        np.testing.assert_allclose(a, b)


def test_shape_mismatch_and_empty_are_errors():
    with pytest.raises(ValueError, match=r"client 0 tensor 0 has shape \(2,\)"):
        sub_fedavg(SERVER, [[np.zeros(2)]])
    with pytest.raises(ValueError, match="no client updates"):
        sub_fedavg(SERVER, [])


@pytest.mark.slow
def test_tff_factory_matches_numpy_reference():
    import tensorflow_federated as tff

    from tffprune.fl.runtime import ensure_runtime
    from tffprune.learning.aggregators import MaskedMeanFactory

    ensure_runtime()
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (4,)]
    tensor_types = [tff.TensorType(np.float32, s) for s in shapes]
    value_type = tff.StructWithPythonType(
        [
            tff.StructWithPythonType(tensor_types, list),
            tff.StructWithPythonType(
                [tff.TensorType(np.bool_, s) for s in shapes], list
            ),
            tff.TensorType(np.float32),
        ],
        tuple,
    )
    process = MaskedMeanFactory().create(value_type)
    values = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(4)]
    masks = [[rng.random(s) > 0.6 for s in shapes] for _ in range(4)]
    masks[0][1][:] = False
    for client in range(4):
        masks[client][1][2] = False  # entry kept by nobody
    weights = [1.0, 2.0, 0.5, 4.0]

    output = process.next(
        process.initialize(),
        [(v, m, np.float32(w)) for v, m, w in zip(values, masks, weights, strict=True)],
    )
    means, coverage = output.result

    server = [np.full(s, 7.0, np.float32) for s in shapes]
    reference = sub_fedavg(server, values, masks, weights)
    for mean, covered, expected in zip(means, coverage, reference, strict=True):
        np.testing.assert_allclose(
            np.where(covered > 0, mean, 7.0), expected, rtol=1e-6
        )
    assert coverage[1][2] == 0.0
    covered = sum(int(np.sum(c > 0)) for c in coverage)
    assert covered < 16  # entry 2 of the bias was kept by nobody
    assert output.measurements["covered_fraction"] == pytest.approx(covered / 16)
    assert output.measurements["total_weight"] == pytest.approx(7.5)


@pytest.mark.slow
def test_weighted_mean_factory_hand_worked():
    import tensorflow_federated as tff

    from tffprune.fl.runtime import ensure_runtime
    from tffprune.learning.aggregators import WeightedMeanFactory

    ensure_runtime()
    value_type = tff.StructWithPythonType(
        [
            tff.StructWithPythonType([tff.TensorType(np.float32, (2,))], list),
            tff.TensorType(np.float32),
        ],
        tuple,
    )
    process = WeightedMeanFactory().create(value_type)
    state = process.initialize()
    uploads = [
        ([np.array([1.0, 10.0], np.float32)], np.float32(3.0)),
        ([np.array([2.0, 20.0], np.float32)], np.float32(2.0)),
        ([np.array([3.0, 30.0], np.float32)], np.float32(1.0)),
    ]

    output = process.next(state, uploads)
    (means,), (coverage,) = output.result

    # (1*3 + 2*2 + 3*1) / 6 = 10/6, and ten times that.
    np.testing.assert_allclose(means, [10 / 6, 100 / 6], rtol=1e-6)
    np.testing.assert_array_equal(coverage, [6.0, 6.0])
    assert output.measurements["total_weight"] == 6.0
    # Every weight 0 (all uploads lost): coverage 0, the server keeps its values.
    lost = process.next(output.state, [(v, np.float32(0.0)) for v, _ in uploads])
    np.testing.assert_array_equal(lost.result[1][0], [0.0, 0.0])
    assert lost.measurements["covered_fraction"] == 0.0
