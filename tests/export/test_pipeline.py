"""Export of a real trained model, checked in TFLite and TFLite Micro."""

import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tffprune.cli import cli
from tffprune.data import load_dataset
from tffprune.export import tflite, verify
from tffprune.export.pipeline import export_model, summary_line
from tffprune.models import build_model
from tffprune.pruning import PruningPolicy, apply_masks, build_masks
from tffprune.pruning.centralized import train_from_scratch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    data = load_dataset("fashion_mnist", download=False)
    result = train_from_scratch(
        build_model("tfmot_cnn", (28, 28, 1), 10, seed=0),
        data.x_train[:8000],
        data.y_train[:8000],
        data.x_test[:1000],
        data.y_test[:1000],
        0.8,
        epochs=2,
        policy=PruningPolicy(prune_logits=True),
    )
    run = tmp_path_factory.mktemp("run")
    result.model.save(run / "model.keras")
    (run / "summary.json").write_text(json.dumps({"dataset": "fashion_mnist"}))
    return run


def test_int8_export_verified_in_tflite_and_micro(trained_run, tmp_path):
    result = export_model(trained_run, tmp_path / "out", "int8", eval_examples=1000)

    print(json.dumps(result, indent=1))
    assert result["tflm_tflite_outputs_within_one_step"] >= 0.99
    assert abs(result["tflite_accuracy"] - result["keras_accuracy"]) <= 0.01
    assert abs(result["tflm_accuracy"] - result["keras_accuracy"]) <= 0.01
    assert result["tflm_arena_bytes"] > 0
    assert result["prunable_sparsity"] == pytest.approx(0.8, abs=0.01)
    files = {p.name: p.stat().st_size for p in (tmp_path / "out").iterdir()}
    assert result["tflite_bytes"] == files["model.tflite"] == result["c_array_bytes"]
    on_disk = json.loads((tmp_path / "out" / "export.json").read_text())
    assert on_disk == result
    assert (
        f"g_model_len = {files['model.tflite']};"
        in (tmp_path / "out" / "model_data.cc").read_text()
    )


def test_refuses_existing_output_and_bad_sources(trained_run, tmp_path):
    export_model(trained_run, tmp_path / "out", "dynamic", eval_examples=50)

    with pytest.raises(ValueError, match="already has model.tflite"):
        export_model(trained_run, tmp_path / "out", "dynamic")
    with pytest.raises(ValueError, match="does not exist"):
        export_model(tmp_path / "missing", tmp_path / "o2", "int8")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="is not a Keras model file"):
        export_model(tmp_path / "notes.txt", tmp_path / "o3", "int8")
    with pytest.raises(ValueError, match="unknown quantize mode 'int4'"):
        export_model(trained_run, tmp_path / "o4", "int4")
    with pytest.raises(ValueError, match="digits examples have shape"):
        export_model(trained_run, tmp_path / "o5", "int8", dataset="digits")


def test_int8_needs_representative_data():
    model = build_model("tfmot_cnn", (28, 28, 1), 10)

    with pytest.raises(ValueError, match="needs representative data"):
        tflite.convert(model, "int8", representative_images=None)


def test_a_model_the_converter_refuses_is_one_line_and_leaves_nothing(tmp_path):
    from click.testing import CliRunner

    from tffprune.cli import cli

    # A GRU has no int8 TFLite kernels: the converter fails with a long
    # MLIR diagnostic; the user gets its one useful line and a way out.
    model = tf.keras.Sequential(
        [tf.keras.Input((5, 3)), tf.keras.layers.GRU(4), tf.keras.layers.Dense(2)]
    )
    model.save(tmp_path / "gru.keras")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "sequences.npz",
        x_train=rng.random((20, 5, 3), np.float32),
        y_train=rng.integers(0, 2, 20),
        x_test=rng.random((6, 5, 3), np.float32),
        y_test=rng.integers(0, 2, 6),
    )

    result = CliRunner().invoke(
        cli,
        ["export", str(tmp_path / "gru.keras"), "--quantize", "int8"]
        + ["--representative-data", str(tmp_path / "sequences.npz")]
        + ["--output-dir", str(tmp_path / "edge")],
    )

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "rror" in line]
    assert len(errors) == 1
    assert errors[0].startswith("Error: TFLite conversion (int8) failed: ")
    assert errors[0].endswith("try --quantize dynamic or float32")
    assert not (tmp_path / "edge").exists()


def test_sparse_flag_shrinks_a_pruned_float_model(trained_run):
    model = tf.keras.models.load_model(trained_run / "model.keras", compile=False)

    dense = tflite.convert(model, "float32")
    sparse = tflite.convert(model, "float32", sparse=True)

    assert len(sparse) < len(dense)
    images = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
    np.testing.assert_allclose(
        verify.tflite_outputs(sparse, images),
        verify.tflite_outputs(dense, images),
        atol=1e-4,
    )


def test_clustered_lut_export_leads_with_flash_and_runs_in_micro(trained_run, tmp_path):
    plain = export_model(trained_run, tmp_path / "int8", "int8", eval_examples=300)

    result = export_model(
        trained_run,
        tmp_path / "lut",
        "int8",
        eval_examples=300,
        clusters=15,
        compress="lut",
    )

    assert list(result)[:2] == ["flash_bytes", "arena_bytes"]
    # Not a federated run: its own (central) training set fine-tunes.
    assert result["cluster_data"] == "fashion_mnist training set (60000 examples)"
    assert result["cluster_epochs"] == 1
    files = {p.name: p.stat().st_size for p in (tmp_path / "lut").iterdir()}
    assert result["flash_bytes"] == files["model.tflite"]
    # Every size names the file written: the LUT model, not its source.
    assert result["tflite_bytes"] == result["c_array_bytes"] == files["model.tflite"]
    assert f"g_model_len = {result['flash_bytes']};" in (
        (tmp_path / "lut" / "model_data.cc").read_text()
    )
    # 15 clusters and the zeros: at most 16 values, 4-bit indices or fewer.
    compressed = [t for t in result["lut_tensors"] if t["index_bits"] is not None]
    assert compressed and all(t["index_bits"] <= 4 for t in compressed)
    assert all(t["reason"] for t in result["lut_tensors"] if t["index_bits"] is None)
    assert result["flash_bytes"] < 0.7 * plain["flash_bytes"]
    assert result["flash_bytes_uncompressed"] >= plain["flash_bytes"] - 64
    assert result["tflm_arena_bytes"] >= result["tflm_arena_bytes_uncompressed"]
    # The printed line gives the arena's growth from decoding the LUT.
    line = summary_line(result, 15, tmp_path / "lut")
    assert line.startswith(
        f"int8 15 clusters LUT: flash {result['flash_bytes']:,} bytes, RAM arena "
        f"{result['arena_bytes']:,} bytes "
        f"({result['tflm_arena_bytes_uncompressed']:,} without LUT decoding); "
    )
    assert abs(result["tflm_accuracy"] - plain["tflm_accuracy"]) <= 0.05


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    """LeNet-5 with half its channels and units cut, then fine-tuned masked."""
    data = load_dataset("fashion_mnist", download=False)
    model = build_model("lenet5", (28, 28, 1), 10, seed=0)
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(data.x_train[:6000], data.y_train[:6000], epochs=1, verbose=0)
    weights = [w.numpy() for w in model.trainable_weights]
    masks = build_masks(weights, PruningPolicy().select(model), "channel", 0.5)

    def apply(*_):
        current = [w.numpy() for w in model.trainable_weights]
        for variable, value in zip(
            model.trainable_weights, apply_masks(current, masks), strict=True
        ):
            variable.assign(value)

    apply()
    model.fit(
        data.x_train[6000:12000],
        data.y_train[6000:12000],
        epochs=1,
        verbose=0,
        callbacks=[tf.keras.callbacks.LambdaCallback(on_train_batch_end=apply)],
    )
    run = tmp_path_factory.mktemp("channel_run")
    model.save(run / "model.keras")
    (run / "summary.json").write_text(json.dumps({"dataset": "fashion_mnist"}))
    return run, model


def test_slim_export_is_smaller_and_answers_the_same(channel_run, tmp_path):
    run, model = channel_run
    plain = export_model(run, tmp_path / "int8", "int8", eval_examples=300)

    result = export_model(
        run, tmp_path / "slim", "int8", eval_examples=300, slim_channels=True
    )

    # LeNet-5: 6 and 16 filters of 5x5, Dense 120 and 84; half of each cut
    # (the logits are not pruned). 28x28 -> 24x24 -> 12x12 -> 8x8 -> 4x4.
    assert result["slim_channels"] == {
        "conv_1": [3, 6],
        "conv_2": [8, 16],
        "dense_1": [60, 120],
        "dense_2": [42, 84],
    }
    assert result["slim_left_whole"] == {}
    slim_parameters = (
        (5 * 5 * 1 * 3 + 3)
        + (5 * 5 * 3 * 8 + 8)
        + (4 * 4 * 8 * 60 + 60)
        + (60 * 42 + 42)
        + (42 * 10 + 10)
    )
    assert result["parameters"] == slim_parameters
    assert result["slim_parameters_before"] == model.count_params()
    assert result["dense_float32_bytes"] == 4 * model.count_params()
    assert result["slim_output_difference"] < 1e-4
    # The same network answers: to the example in Keras, within three of 300
    # in int8 (the converter may round another way).
    assert result["keras_accuracy"] == pytest.approx(
        plain["keras_accuracy"], abs=1 / 300
    )
    assert abs(result["tflm_accuracy"] - plain["tflm_accuracy"]) <= 3 / 300 + 1e-9
    # Flash holds a byte (int8 weight) or four (int32 bias) per parameter:
    # every parameter cut saves at least one byte.
    removed = model.count_params() - slim_parameters
    assert plain["flash_bytes"] - result["flash_bytes"] >= removed
    assert result["arena_bytes"] < plain["arena_bytes"]
    line = summary_line(result, None, tmp_path / "slim")
    assert line.startswith(
        f"int8 slim ({slim_parameters:,} of {model.count_params():,} parameters): "
        f"flash {result['flash_bytes']:,} bytes"
    )


def test_cli_slim_flag_prints_what_it_cut(channel_run, tmp_path):
    run, model = channel_run

    result = CliRunner().invoke(
        cli,
        ["export", str(run), "--slim", "--eval-examples", "100"]
        + ["--output-dir", str(tmp_path / "out")],
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"int8 slim (11,418 of {model.count_params():,} parameters): flash "
    )
    written = json.loads((tmp_path / "out" / "export.json").read_text())
    assert written["slim_parameters_after"] == 11_418
