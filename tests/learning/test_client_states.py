"""ClientStates: a loop's per-client state for build_sub_fedavg, by client id."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tiny_cnn

from tffprune.data.pipeline import batched_dataset
from tffprune.fl.messages import ClientOutput
from tffprune.learning import ClientStates, build_sub_fedavg
from tffprune.pruning.packed_masks import pack_all, unpack, unpack_all


def _dense_model():
    # Hidden kernel 4x10 (40 entries, pruned); logits kernel 10x3 kept whole.
    return tf.keras.Sequential(
        [
            tf.keras.Input((4,)),
            tf.keras.layers.Dense(10, activation="relu"),
            tf.keras.layers.Dense(3),
        ]
    )


ELEMENT_SPEC = (tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32))


@pytest.fixture(scope="module")
def process():
    return build_sub_fedavg(_dense_model, ELEMENT_SPEC, method="weight")


def _output(masks, finite=True, residual_written=False):
    return ClientOutput(
        mask=pack_all(masks),
        num_examples=np.int64(10),
        loss_sum=np.float32(1.0),
        finite=np.bool_(finite),
        zero_kept=[],
        residual_written=np.bool_(residual_written),
        personal=[],
        mask_distance=np.float32(-1),
        values=[],
    )


def _half_pruned():
    hidden = np.ones((4, 10), bool)
    hidden[:2] = False  # 20 of 40 pruned: sparsity 0.5
    return [hidden, np.ones(10, bool), np.ones((10, 3), bool), np.ones(3, bool)]


def test_a_new_client_trains_everything_and_takes_the_schedules_first_step(process):
    clients = ClientStates(process, sparsity=0.5)
    (first,) = clients.inputs(["alice"], round_number=0)
    # Packed, eight entries a byte: 40, 10, 30 and 3 entries.
    assert [m.shape for m in first.mask] == [(5,), (2,), (4,), (1,)]
    masks = unpack_all(first.mask, [(4, 10), (10,), (10, 3), (3,)])
    assert all(m.all() for m in masks)
    # The iterative schedule's first step: 10% of the hidden kernel's 40.
    assert list(first.counts.entries) == [4, 0, 0, 0]
    assert first.residual_files == ()
    assert "alice" not in clients


def test_an_aggregated_clients_mask_is_kept_and_its_schedule_steps_from_it(process):
    clients = ClientStates(process, sparsity=0.6)
    clients.inputs(["alice"], 0)
    assert clients.update(["alice"], [_output(_half_pruned())]) == [True]
    assert clients.sparsity("alice") == 0.5
    (again,) = clients.inputs(["alice"], 1)
    np.testing.assert_array_equal(unpack(again.mask[0], (4, 10)), _half_pruned()[0])
    # 1 - 0.5 * 0.9 = 0.55 of 40: 22 entries pruned in all.
    assert list(again.counts.entries) == [22, 0, 0, 0]


def test_a_client_at_its_target_keeps_its_mask(process):
    clients = ClientStates(process, sparsity=0.5)
    clients.update(["alice"], [_output(_half_pruned())])
    (again,) = clients.inputs(["alice"], 5)
    assert list(again.counts.entries) == [0, 0, 0, 0]


def test_a_rejected_or_lost_upload_changes_nothing(process):
    clients = ClientStates(process, sparsity=0.5)
    outputs = [_output(_half_pruned(), finite=False), _output(_half_pruned())]
    assert clients.update(["nan", "lost"], outputs, delivered=[True, False]) == [
        False,
        False,
    ]
    assert len(clients) == 0
    assert clients.sparsity("nan") == 0.0


def test_ids_of_any_hashable_type_are_distinct_clients(process):
    clients = ClientStates(process, sparsity=0.5)
    clients.update([1], [_output(_half_pruned())])
    assert 1 in clients and "1" not in clients
    assert clients.mask("1")[0].all()


def test_a_client_sampled_twice_in_a_round_is_refused(process):
    clients = ClientStates(process)
    with pytest.raises(ValueError, match="at most once"):
        clients.inputs(["a", "a"], 0)


def test_only_a_sub_fedavg_process_is_taken():
    with pytest.raises(TypeError, match="build_sub_fedavg"):
        ClientStates(_dense_model)


def test_the_mask_distance_rule_needs_each_clients_epoch_examples():
    rule = build_sub_fedavg(_dense_model, ELEMENT_SPEC, mask_distance_threshold=1e-4)
    clients = ClientStates(rule)
    with pytest.raises(ValueError, match="epoch_examples"):
        clients.inputs(["a"], 0)
    (first,) = clients.inputs(["a"], 0, epoch_examples=[48])
    assert int(first.counts.early_examples) == 48


@pytest.mark.slow
def test_a_loop_over_build_sub_fedavg_keeps_masks_and_residuals_by_id(tmp_path):
    """Two rounds over string ids with error feedback, as the README's loop."""
    data = dict(zip(["ann", "bob", "cy"], tiny_cnn.digits_clients()[:3], strict=True))
    process = build_sub_fedavg(
        tiny_cnn.model_fn,
        tiny_cnn.ELEMENT_SPEC,
        method="weight",
        upload_values="int8",
        error_feedback=True,
    )
    clients = ClientStates(process, sparsity=0.5, residual_dir=tmp_path)
    state = process.initialize()
    for round_number, sampled in enumerate([["ann", "bob"], ["bob", "cy"]]):
        inputs = clients.inputs(sampled, round_number)
        datasets = [batched_dataset(*data[c], 16) for c in sampled]
        output = process.next(state, inputs, datasets)
        state = output.state
        assert clients.update(sampled, output.clients) == [True, True]
    # Sampled once: one 10% step; bob twice: 1 - 0.9**2 = 0.19.
    assert clients.sparsity("ann") == pytest.approx(0.1, abs=0.01)
    assert clients.sparsity("bob") == pytest.approx(0.19, abs=0.01)
    assert clients.sparsity("cy") == pytest.approx(0.1, abs=0.01)
    # One residual file per client, its latest: bob's first one is gone.
    files = sorted(p.name for p in Path(tmp_path).iterdir())
    assert len(files) == 3
    assert [clients.state(c).residual in files for c in ("ann", "bob", "cy")] == [
        True
    ] * 3
    assert clients.state("bob").residual.endswith("_r1.residual")
