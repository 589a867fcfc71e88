"""Clients split over two TFF workers come back in the clients' order."""

from typing import Any, NamedTuple

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.fl.mergeable import collect_clients, uncollect_clients
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
    # Two workers, two shares: [3e5, 3e5] (2-3 s of looping a worker at about
    # 9 us an iteration) and [1, 2] (instant). TFF's own mergeable context
    # returned [1, 2, 3e5, 3e5].
    limits = [300_000, 300_001, 1, 2]
    workers = [start_worker(), start_worker()]
    try:
        with LocalRuntime([w.address for w in workers]):
            total, counted = _counted(limits)
    finally:
        for worker in workers:
            worker.stop()

    assert [int(c) for c in counted] == limits
    assert int(total) == sum(limits)


class _Output(NamedTuple):
    scaled: list
    kept: Any
    count: Any


def _counting_round(directory):
    """A round whose client work leaves one file behind each time it runs."""

    @tff.tensorflow.computation(np.int32)
    def client_work(value):
        stamp = tf.strings.as_string(tf.timestamp(), precision=9)
        name = tf.strings.join(
            [directory, "/", tf.strings.as_string(value), "_", stamp]
        )
        with tf.control_dependencies([tf.io.write_file(name, "")]):
            scaled = [tf.fill([2, 3], value), tf.cast(tf.fill([4], value), tf.float32)]
            kept = tf.range(value)  # a length of its own per client
            return _Output(scaled, kept, tf.cast(value, tf.int64))

    @tff.tensorflow.computation(client_work.type_signature.result)
    def count_of(output):
        return output.count

    @tff.federated_computation(
        tff.FederatedType(np.int32, tff.SERVER),
        tff.FederatedType(np.int32, tff.CLIENTS),
        tff.FederatedType(np.int32, tff.CLIENTS),
    )
    def round_(state, inputs, data):
        outputs = tff.federated_map(client_work, inputs)
        return state, outputs, tff.federated_sum(tff.federated_map(count_of, outputs))

    return round_


def test_clients_gathered_at_the_server_each_run_once(tmp_path):
    # Over two workers TFF's form runs a share's CLIENTS-placed results again
    # after the merge: four clients leave eight files. Gathered at the server
    # they leave four, and split again they are each client's own output.
    values = [3, 1, 4, 2]
    round_ = _counting_round(str(tmp_path))
    workers = [start_worker(), start_worker()]
    try:
        with LocalRuntime([w.address for w in workers]):
            _, direct, total = round_(0, values, values)
            twice = len(list(tmp_path.iterdir()))
            for file in tmp_path.iterdir():
                file.unlink()
            _, gathered, total_gathered = collect_clients(round_)(0, values, values)
            once = len(list(tmp_path.iterdir()))
    finally:
        for worker in workers:
            worker.stop()

    assert (twice, once) == (8, 4)
    assert int(total) == int(total_gathered) == sum(values)
    member = round_.type_signature.result[1].member
    outputs = uncollect_clients(gathered, member)
    assert [int(o.count) for o in outputs] == values
    for output, expected in zip(outputs, direct, strict=True):
        assert isinstance(output, _Output)
        np.testing.assert_array_equal(output.scaled[0], expected.scaled[0])
        assert output.scaled[0].shape == (2, 3)
        np.testing.assert_array_equal(output.scaled[1], expected.scaled[1])
        np.testing.assert_array_equal(output.kept, np.arange(int(output.count)))
