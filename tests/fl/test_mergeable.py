"""Clients split over two TFF workers come back in the clients' order."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.runtime import LocalRuntime
from tffprune.fl.workers import start_worker

pytestmark = pytest.mark.slow


@tff.tensorflow.computation(np.int32)
def _count_up_to(limit):
    """Returns ``limit`` after looping that many times (slow for large ones)."""
    return tf.while_loop(lambda i: i < limit, lambda i: i + 1, [tf.constant(0)])[0]


@tff.federated_computation(tff.FederatedType(np.int32, tff.CLIENTS))
def _counted(limits):
    counted = tff.federated_map(_count_up_to, limits)
    return tff.federated_sum(counted), counted


def test_the_first_share_finishing_last_still_comes_first():
    # Two workers, two shares: [2e6, 2e6] (seconds of looping) and [1, 2]
    # (instant). TFF's own mergeable context returned [1, 2, 2e6, 2e6].
    limits = [2_000_000, 2_000_001, 1, 2]
    workers = [start_worker(), start_worker()]
    try:
        with LocalRuntime([w.address for w in workers]):
            total, counted = _counted(limits)
    finally:
        for worker in workers:
            worker.stop()

    assert [int(c) for c in counted] == limits
    assert int(total) == sum(limits)
