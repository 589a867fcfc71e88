"""The round-time benchmark's plain loops do the work they stand for.

`experiments/benchmarks/round_overhead.py` sets each pruned configuration's
round beside a plain loop doing the same work (`PlainPrunedLoop`); its ratio
means something only if that loop prunes and aggregates as the method does.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset

BENCHMARK = (
    Path(__file__).resolve().parents[1] / "experiments/benchmarks/round_overhead.py"
)


@pytest.fixture(scope="module")
def round_overhead():
    spec = importlib.util.spec_from_file_location("round_overhead", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits():
    return build_federated_data(load_dataset("digits"), 4, "iid", seed=0)


def _config(aggregation: str) -> TrainConfig:
    return TrainConfig(
        model="tfmot_cnn",
        dataset="digits",
        num_clients=4,
        clients_per_round=4,
        aggregation=aggregation,
        method="weight",
        sparsity=0.5,
        batch_size=16,
    )


def test_sub_fedavg_loop_prunes_each_client_and_averages_over_keepers(
    round_overhead, digits
):
    loop = round_overhead.PlainPrunedLoop(_config("subfedavg"), digits)
    before = [w.copy() for w in loop.weights]
    loop.run_round(0, evaluate=False)

    assert sorted(loop.client_masks) == [0, 1, 2, 3]
    for masks in loop.client_masks.values():
        for target in loop.targets:
            mask = masks[target.index]
            # round(0.5 * n) entries pruned, the rest kept.
            assert mask.size - mask.sum() == round(0.5 * mask.size)
    for target in loop.targets:
        kept_by_any = np.logical_or.reduce(
            [masks[target.index] for masks in loop.client_masks.values()]
        )
        assert not kept_by_any.all()
        # An entry no client kept keeps the server's value (not a mean of 0s).
        np.testing.assert_array_equal(
            loop.weights[target.index][~kept_by_any],
            before[target.index][~kept_by_any],
        )
    central, loss, personalized = loop.evaluate()
    assert 0.0 <= central <= 1.0 and 0.0 <= personalized <= 1.0
    assert np.isfinite(loss)


def test_fedavg_loop_averages_the_pruned_weights_and_keeps_no_mask(
    round_overhead, digits
):
    loop = round_overhead.PlainPrunedLoop(_config("fedavg"), digits)
    loop.run_round(0, evaluate=False)

    assert loop.client_masks == {}
    for target in loop.targets:
        # The mean of pruned weights, zeros included: an entry all four
        # clients cut is 0, and no more than the half each cut can be.
        zeros = np.mean(loop.weights[target.index] == 0)
        assert 0 < zeros <= 0.5
