"""Type signatures of the aggregate role: what each factory refuses, and why."""

import numpy as np
import pytest
import tensorflow_federated as tff

from tffprune.learning import (
    MaskedMeanFactory,
    WeightedMeanFactory,
    build_round_aggregator,
)

VALUES = tff.StructWithPythonType([tff.TensorType(np.float32, [3])], list)
MASKS = tff.StructWithPythonType([tff.TensorType(np.bool_, [3])], list)
WEIGHT = tff.TensorType(np.float32)


def _struct(*members):
    return tff.StructWithPythonType(list(members), tuple)


def test_masked_mean_takes_values_masks_and_a_float32_weight():
    process = MaskedMeanFactory().create(_struct(VALUES, MASKS, WEIGHT))

    # (means, coverage): float32 like the values; measurements by name.
    signature = process.next.type_signature.result
    assert str(signature.result.member) == "<<float32[3]>,<float32[3]>>"
    assert str(signature.measurements.member) == (
        "<total_weight=float32,covered_fraction=float32>"
    )


@pytest.mark.parametrize(
    "value_type, message",
    [
        (_struct(VALUES, MASKS), r"expected \(values, masks, weight\)"),
        (
            _struct(VALUES, VALUES, WEIGHT),
            "masks .* must be booleans shaped like values",
        ),
        (
            _struct(VALUES, MASKS, tff.TensorType(np.int32)),
            "weight must be a float32 scalar",
        ),
    ],
)
def test_masked_mean_refuses_other_types(value_type, message):
    with pytest.raises(TypeError, match=message):
        MaskedMeanFactory().create(value_type)


@pytest.mark.parametrize(
    "value_type, message",
    [
        (_struct(VALUES), r"expected \(values, weight\)"),
        (_struct(VALUES, tff.TensorType(np.float64)), "weight must be a float32"),
    ],
)
def test_weighted_mean_refuses_other_types(value_type, message):
    with pytest.raises(TypeError, match=message):
        WeightedMeanFactory().create(value_type)


def test_a_weighted_factory_cannot_average_masked_uploads():
    with pytest.raises(TypeError, match="pass MaskedMeanFactory"):
        build_round_aggregator(
            tff.aggregators.MeanFactory(),
            _struct(VALUES, MASKS, WEIGHT),
            masked=True,
        )


def test_an_unweighted_tff_factory_averages_fedavg_uploads_unweighted():
    from tffprune.fl.runtime import ensure_runtime

    ensure_runtime()
    process = build_round_aggregator(
        tff.aggregators.UnweightedMeanFactory(), _struct(VALUES, WEIGHT), masked=False
    )
    clients = [
        ([np.array([1.0, 2.0, 3.0], np.float32)], np.float32(1.0)),
        ([np.array([3.0, 6.0, 9.0], np.float32)], np.float32(3.0)),
    ]

    output = process.next(process.initialize(), clients)

    means, coverage = output.result
    # Unweighted: (1 + 3) / 2, not (1 + 9) / 4; coverage is the total weight.
    np.testing.assert_allclose(means[0], [2.0, 4.0, 6.0])
    np.testing.assert_allclose(coverage[0], [4.0, 4.0, 4.0])
    assert output.measurements["total_weight"] == 4.0
