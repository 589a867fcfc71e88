"""``tffprune export RUN --client ID``: one client's model for a microcontroller.

The oracle reads the run's ``checkpoint.npz`` directly (NumPy, not
tffprune): the server weights ``server_i``, the client's bit-packed mask
``mask_c`` and its sparsity in ``meta``.
"""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tffprune.cli import cli

pytestmark = pytest.mark.slow

TRAIN = ["train", "--dataset", "digits", "--model", "tfmot_cnn"]
TRAIN += ["--aggregation", "subfedavg", "--method", "weight", "--sparsity", "0.5"]
TRAIN += ["--schedule", "iterative", "--partition", "shards", "--num-clients", "5"]
TRAIN += ["--clients-per-round", "3", "--rounds", "3", "--quiet"]


def _invoke(arguments):
    return CliRunner().invoke(cli, [str(a) for a in arguments])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("client_export")
    for name, extra in [("masks", []), ("own", ["--personal-models"])]:
        result = _invoke([*TRAIN, *extra, "--output-dir", root / name])
        assert result.exit_code == 0, result.output
    return root


def _checkpoint(run):
    with np.load(run / "checkpoint.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    return arrays, json.loads(arrays.pop("meta").tobytes())


def _mask(arrays, meta, client):
    """A client's masks as checkpoint format 6 stores them: per weight, its
    entries packed eight a byte, lowest bit first, rounded up to a byte."""
    assert meta["format_version"] == 6
    stored, offset, masks = arrays[f"mask_{client}"], 0, []
    for shape in meta["shapes"][: meta["num_trainable"]]:
        size = int(np.prod(shape))
        nbytes = -(-size // 8)
        bits = np.unpackbits(
            stored[offset : offset + nbytes], count=size, bitorder="little"
        )
        masks.append(bits.astype(bool).reshape(shape))
        offset += nbytes
    assert offset == stored.size
    return masks


def _export(run, client, output):
    return _invoke(["export", run, "--client", client, "--output-dir", output])


def test_a_clients_subnetwork_is_the_server_weights_at_its_mask(runs, tmp_path):
    run = runs / "masks"
    arrays, meta = _checkpoint(run)
    sampled = [c for c in range(5) if f"mask_{c}" in arrays]
    first, second = sampled[:2]
    masks = {c: _mask(arrays, meta, c) for c in (first, second)}
    # Shards give the clients other labels, so other subnetworks.
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(masks[first], masks[second], strict=True)
    )

    result = _export(run, first, tmp_path / "edge")

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"client {first} (subnetwork) int8: flash ")
    report = json.loads((tmp_path / "edge" / "export.json").read_text())
    assert report["client"] == str(first)
    assert report["client_model"] == "subnetwork"
    assert report["prunable_sparsity"] == pytest.approx(meta["sparsity"][first])
    with (run / "clients.csv").open() as handle:
        rows = {row["client"]: row for row in csv.DictReader(handle)}
    assert report["client_test_examples"] == int(rows[str(first)]["test_examples"])
    # The real TFLite Micro interpreter runs it on the client's own test split.
    assert abs(report["tflm_accuracy"] - report["tflite_accuracy"]) <= 0.05

    # Its Keras twin, written beside the .tflite: the server's weights at its
    # mask, the non-trainable ones (none here) whole.
    model = tf.keras.models.load_model(tmp_path / "edge" / "client_model.keras")
    for index, (mask, weight) in enumerate(
        zip(masks[first], model.trainable_weights, strict=True)
    ):
        expected = np.where(mask, arrays[f"server_{index}"], 0.0)
        np.testing.assert_array_equal(weight.numpy(), expected)


def test_with_personal_models_the_clients_own_model_is_exported(runs, tmp_path):
    run = runs / "own"
    arrays, meta = _checkpoint(run)
    client = next(c for c in range(5) if f"personal_model_values_{c}" in arrays)

    result = _export(run, client, tmp_path / "own")

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "own" / "export.json").read_text())
    assert report["client_model"] == "own model"
    # Its own model: the values the checkpoint stores, at their positions.
    shapes = [tuple(s) for s in meta["shapes"]]
    flat = np.zeros(sum(int(np.prod(s)) for s in shapes), np.float32)
    total = flat.size
    kept = np.unpackbits(arrays[f"personal_model_positions_{client}"], count=total)
    flat[kept.astype(bool)] = arrays[f"personal_model_values_{client}"]
    model = tf.keras.models.load_model(tmp_path / "own" / "client_model.keras")
    exported = np.concatenate(
        [
            w.numpy().ravel()
            for w in model.trainable_weights + model.non_trainable_weights
        ]
    )
    np.testing.assert_array_equal(exported, flat)
    # Not the server's subnetwork: its own training moved it.
    assert not np.array_equal(
        model.trainable_weights[0].numpy(),
        np.where(_mask(arrays, meta, client)[0], arrays["server_0"], 0.0),
    )


def test_an_unknown_client_is_refused_with_the_ids(runs, tmp_path):
    result = _export(runs / "masks", "alice", tmp_path / "x")

    assert result.exit_code == 2
    assert "the run has no client 'alice' (clients: 0, 1, 2, 3, 4)" in result.output
    assert "Traceback" not in result.output


def test_a_federated_runs_clusters_never_use_its_clients_data(runs, tmp_path):
    run = runs / "masks"

    plain = _invoke(["export", run, "--clusters", "4", "--output-dir", tmp_path / "a"])
    asked = _invoke(
        ["export", run, "--clusters", "4", "--cluster-epochs", "1"]
        + ["--output-dir", tmp_path / "b"]
    )
    client = _invoke(
        ["export", run, "--clusters", "4", "--client", "1"]
        + ["--output-dir", tmp_path / "c"]
    )

    assert plain.exit_code == 0, plain.output
    report = json.loads((tmp_path / "a" / "export.json").read_text())
    assert report["cluster_data"] == (
        "none: clustered without fine-tuning (no client data on the server)"
    )
    assert report["cluster_epochs"] == 0
    assert asked.exit_code == 2
    assert "a federated run's server holds no client data" in asked.output
    assert client.exit_code == 0, client.output
    report = json.loads((tmp_path / "c" / "export.json").read_text())
    with (run / "clients.csv").open() as handle:
        rows = {row["client"]: row for row in csv.DictReader(handle)}
    examples = rows["1"]["train_examples"]
    assert report["cluster_data"] == f"client 1's training split ({examples} examples)"
