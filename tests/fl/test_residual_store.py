"""Residual files: what the round writes is what the driver reads, by hand."""

import numpy as np
import pytest
import tensorflow as tf
from older_checkpoints import masks_as_version_5, read_archive, write_archive

from tffprune.checkpoint import (
    RESIDUAL_DIRECTORY,
    load_checkpoint,
    previous_path,
    save_checkpoint,
)
from tffprune.compression.compact import at_positions
from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.residual_store import ResidualStore, read_tensors, write_tensors
from tffprune.fl.training import Trainer

SHAPES = [(2, 2), (3,)]
ARRAYS = [
    np.array([[0.5, -0.25], [0.0, 1.0e-3]], np.float16),
    np.array([0.0, 65504.0, -3.0], np.float16),
]


def test_what_tensorflow_writes_numpy_reads_bit_for_bit(tmp_path):
    store = ResidualStore(tmp_path)

    written = write_tensors(store.path("c3_r7.residual"), ARRAYS)

    assert bool(written)
    for ours, theirs in zip(store.read("c3_r7.residual", SHAPES), ARRAYS, strict=True):
        assert ours.dtype == np.float16
        np.testing.assert_array_equal(ours, theirs)


def test_what_numpy_writes_tensorflow_reads_and_no_file_reads_as_zeros(tmp_path):
    store = ResidualStore(tmp_path)
    store.write("c0_r0.residual", ARRAYS)

    read = read_tensors(tf.constant(store.path("c0_r0.residual")), SHAPES)
    nothing = read_tensors(tf.constant(""), SHAPES)

    for ours, theirs in zip(read, ARRAYS, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    assert [t.shape for t in nothing] == SHAPES
    assert all(t.dtype == tf.float16 and not np.any(t.numpy()) for t in nothing)


def test_a_file_of_another_model_is_named_as_such(tmp_path):
    store = ResidualStore(tmp_path)
    store.write("c0_r0.residual", ARRAYS)

    with pytest.raises(ValueError, match="holds 7 values, the model 8"):
        store.read("c0_r0.residual", [(2, 2), (4,)])


def test_collect_deletes_only_what_nothing_names(tmp_path):
    store = ResidualStore(tmp_path)
    for name in ("c0_r0.residual", "c0_r1.residual", "c1_r0.residual"):
        store.write(name, ARRAYS)
    (tmp_path / "notes.txt").write_text("not ours")

    removed = store.collect({"c0_r1.residual", "c1_r0.residual", None})

    assert removed == ["c0_r0.residual"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c0_r1.residual",
        "c1_r0.residual",
        "notes.txt",
    ]
    # 7 float16 values: 14 bytes of data plus the TensorProto's header.
    assert 14 < store.nbytes(["c1_r0.residual"]) < 14 + 32


def _config(**changes) -> TrainConfig:
    base = dict(
        dataset="digits",
        model="fc",
        num_clients=4,
        clients_per_round=2,
        rounds=3,
        batch_size=32,
        client_learning_rate=0.1,
        method="weight",
        sparsity=0.5,
        upload_values="int1",
        eval_every=100,
    )
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def data():
    return build_federated_data(load_dataset("digits"), 4, "iid", seed=3)


def test_the_round_leaves_one_file_per_client_that_took_part(data, tmp_path):
    trainer = Trainer(_config(), data, residual_dir=tmp_path)

    trainer.run_round()
    first = trainer.residual_names()
    trainer.run_round()

    names = trainer.residual_names()
    taken_part = [c for c in trainer.state.clients if c.rounds_participated]
    assert len(first) == 2 and len(names) == len(taken_part) >= 2
    # Nothing is checkpointed: the files superseded in round 2 are gone.
    assert {p.name for p in tmp_path.iterdir()} == names
    for client, state in enumerate(trainer.state.clients):
        if state.residual is None:
            continue
        assert state.residual.startswith(f"c{client}_r")
        residual = trainer.residuals.read(state.residual, trainer.shapes)
        # int1 drops something from every kept entry, nothing where pruned.
        kernel = trainer.targets[0].index
        assert np.all(residual[kernel][~state.mask[kernel]] == 0)
        assert np.count_nonzero(residual[kernel]) > 0


def test_checkpointed_files_outlive_the_next_round_and_resume_needs_them(
    data, tmp_path
):
    residuals = tmp_path / RESIDUAL_DIRECTORY
    trainer = Trainer(_config(), data, residual_dir=residuals)
    trainer.run_round()
    trainer.checkpoint_saving()
    save_checkpoint(tmp_path / "checkpoint.npz", trainer.state, {}, trainer.shapes)
    trainer.checkpoint_saved()
    checkpointed = trainer.residual_names()

    trainer.run_round()
    trainer.run_round()

    on_disk = {p.name for p in residuals.iterdir()}
    assert checkpointed <= on_disk  # the checkpoint can still be resumed
    assert on_disk == checkpointed | trainer.residual_names()
    state = load_checkpoint(tmp_path / "checkpoint.npz", {})
    assert {c.residual for c in state.clients if c.residual} == checkpointed
    (residuals / sorted(checkpointed)[0]).unlink()
    with pytest.raises(ValueError, match=r"names 1 residual file\(s\) missing"):
        Trainer(_config(), data, state, residual_dir=residuals)


def test_a_version_2_checkpoint_moves_its_residuals_to_files(data, tmp_path):
    trainer = Trainer(_config(), data, residual_dir=tmp_path / "before")
    trainer.run_round()
    save_checkpoint(tmp_path / "checkpoint.npz", trainer.state, {}, trainer.shapes)
    # Rewrite it as version 2 wrote it: residuals inside, as positions and values.
    arrays, meta = read_archive(tmp_path / "checkpoint.npz")
    meta["format_version"] = 2
    masks_as_version_5(arrays, meta)
    del meta["residual_files"]
    expected = {}
    for client, state in enumerate(trainer.state.clients):
        if state.residual is None:
            continue
        expected[client] = trainer.residuals.read(state.residual, trainer.shapes)
        stored = at_positions(
            [e != 0 for e in expected[client]], [e[e != 0] for e in expected[client]]
        )
        arrays[f"residual_positions_{client}"] = stored.positions
        arrays[f"residual_values_{client}"] = stored.values
    write_archive(tmp_path / "checkpoint.npz", arrays, meta)

    state = load_checkpoint(tmp_path / "checkpoint.npz", {})

    store = ResidualStore(tmp_path / RESIDUAL_DIRECTORY)
    assert len(expected) == 2
    for client, residual in expected.items():
        name = state.clients[client].residual
        for ours, theirs in zip(
            store.read(name, trainer.shapes), residual, strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)
    resumed = Trainer(_config(), data, state, residual_dir=store.directory)
    resumed.run_round()  # and the run goes on from them


def _on_disk(directory) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_a_resumed_run_keeps_its_checkpoints_files_until_two_newer_ones(data, tmp_path):
    residuals = tmp_path / RESIDUAL_DIRECTORY
    path = tmp_path / "checkpoint.npz"
    trainer = Trainer(_config(rounds=8), data, residual_dir=residuals)
    trainer.run_round()
    save_checkpoint(path, trainer.state, {}, trainer.shapes)
    loaded = trainer.residual_names()

    resumed = Trainer(
        _config(rounds=8), data, load_checkpoint(path, {}), residual_dir=residuals
    )
    for _ in range(2):  # its checkpoint at round 1 is the "previous" one next
        resumed.run_round()
        assert loaded <= _on_disk(residuals)
        resumed.checkpoint_saving()
        save_checkpoint(path, resumed.state, {}, resumed.shapes)
        resumed.checkpoint_saved()
    resumed.run_round()

    # Two checkpoints later, what only the first one named is gone.
    newer = resumed.residual_names()
    for checkpoint in (path, previous_path(path)):
        state = load_checkpoint(checkpoint, {})
        newer |= {c.residual for c in state.clients if c.residual}
    assert _on_disk(residuals) == newer
    assert loaded - newer and not (loaded - newer) & _on_disk(residuals)


def test_a_residual_file_the_round_cannot_read_fails_the_round_as_an_os_error(
    data, tmp_path
):
    residuals = tmp_path / RESIDUAL_DIRECTORY
    trainer = Trainer(_config(clients_per_round=4), data, residual_dir=residuals)
    trainer.run_round()
    before = trainer.residual_names()
    for path in residuals.iterdir():  # a disk that lost them, a worker that
        path.unlink()  # does not see the run directory, ...

    with pytest.raises(OSError, match="No such file or directory") as caught:
        trainer.run_round()

    assert caught.value.filename.startswith(str(residuals))
    assert caught.value.filename.endswith(".residual")
    assert trainer.state.round == 1  # the failed round changed nothing
    assert trainer.residual_names() == before


def test_a_run_without_error_feedback_makes_no_residual_directory(data, tmp_path):
    trainer = Trainer(
        _config(upload_values="float32"), data, residual_dir=tmp_path / "residuals"
    )

    trainer.run_round()

    assert not trainer.config.uses_error_feedback
    assert not (tmp_path / "residuals").exists()
    assert trainer.residual_names() == set()


def test_a_killed_runs_residual_directory_is_removed_by_the_next(
    tmp_path, monkeypatch, ended_pid
):
    import os
    import tempfile

    from tffprune.reporting.files import pid_namespace

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"tffprune-residuals-{ended_pid}.{pid_namespace()}-abc"
    stale.mkdir()
    (stale / ResidualStore.name(0, 1)).write_bytes(b"left by a killed run")
    running = tmp_path / f"tffprune-residuals-{os.getpid()}.{pid_namespace()}-def"
    running.mkdir()
    clients = (
        tmp_path / f"tffprune-clients-{ended_pid}.{pid_namespace()}-ghi"
    )  # another kind
    clients.mkdir()

    store = ResidualStore()
    assert stale.is_dir()  # a store without error feedback makes no directory
    store.write(ResidualStore.name(3, 0), ARRAYS)

    assert not stale.exists()
    assert running.is_dir() and clients.is_dir()
    assert store.directory.parent == tmp_path
    assert store.directory.name.startswith(
        f"tffprune-residuals-{os.getpid()}.{pid_namespace()}-"
    )
