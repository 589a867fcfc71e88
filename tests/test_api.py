"""A Keras user's own model and data, end to end, through the API and the CLI.

The data are real Fashion-MNIST, reshaped by the test to another image shape
(14 x 14, uint8) and written as the user's own ``.npz``; the model is the
user's own file: Conv2D + BatchNormalization + Dropout + global pooling and a
softmax head.
"""

import collections
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tffprune
from tffprune.data import load_dataset

pytestmark = pytest.mark.slow

USER_MODEL = """
import tensorflow as tf


def build(input_shape, num_classes):
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Dropout(0.1)(x)
    x = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(32, activation="relu")(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)
"""


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """The user's model file and .npz: Fashion-MNIST at 14 x 14, uint8."""
    root = tmp_path_factory.mktemp("user")
    fashion = load_dataset("fashion_mnist")

    def shrink(images, count):
        pixels = images[:count, :, :, 0].reshape(count, 14, 2, 14, 2).mean((2, 4))
        return np.round(pixels * 255).astype(np.uint8)[..., np.newaxis]

    np.savez(
        root / "fashion14.npz",
        x_train=shrink(fashion.x_train, 3000),
        y_train=fashion.y_train[:3000],
        x_test=shrink(fashion.x_test, 500),
        y_test=fashion.y_test[:500],
    )
    (root / "my_model.py").write_text(USER_MODEL)
    return root


def _cli(*arguments, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "tffprune.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _kernels(model):
    """{layer name: kernel} of the Conv2D and Dense layers."""
    return {
        layer.name: layer.kernel.numpy()
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.Conv2D | tf.keras.layers.Dense)
    }


def test_user_model_and_npz_through_the_cli_rerun_and_export(user_files):
    run = user_files / "run"
    common = ["--num-clients", "10", "--clients-per-round", "5", "--quiet"]
    trained = _cli(
        "train",
        "--model",
        f"{user_files / 'my_model.py'}:build",
        "--dataset",
        str(user_files / "fashion14.npz"),
        "--aggregation",
        "subfedavg",
        "--method",
        "weight",
        "--sparsity",
        "0.5",
        "--rounds",
        "2",
        "--scale-inputs",  # the model has no Rescaling layer
        *common,
        "--output-dir",
        str(run),
    )

    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "integer inputs (uint8) scaled to [0, 1] by 1/255" in trained.stderr
    assert "scale_inputs = true" in (run / "config.toml").read_text()
    not_pruned = next(
        line for line in trained.stderr.splitlines() if line.startswith("not pruned")
    )
    assert "BatchNormalization" in not_pruned and "Dense, logits" in not_pruned
    model = tf.keras.models.load_model(run / "global_model.keras", compile=False)
    kernels = _kernels(model)
    logits = kernels.pop(model.layers[-1].name)
    assert len(kernels) == 3  # two convolutions and the hidden Dense
    for kernel in kernels.values():
        assert np.mean(kernel == 0) == 0.5  # exactly: round(0.5 * size) pruned
    assert np.count_nonzero(logits) == logits.size
    summary = json.loads((run / "summary.json").read_text())
    # A global-pooling model with BatchNorm learns slowly in two short rounds
    # (Keras' own fit gets about 0.14 after as many steps); that it learns:
    losses = [
        float(r["train_loss"]) for r in csv.DictReader((run / "metrics.csv").open())
    ]
    assert losses[1] < losses[0]
    assert 0.0 < summary["final"]["central_accuracy"] <= 1.0

    rerun = _cli(
        "train", "--config", str(run / "config.toml"), "--output-dir",
        str(user_files / "rerun"), "--quiet",
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (user_files / "rerun" / "config.toml").read_text() == (
        run / "config.toml"
    ).read_text()

    exported = _cli(
        "export", str(run), "--quantize", "int8", "--output-dir",
        str(user_files / "edge"),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    report = json.loads((user_files / "edge" / "export.json").read_text())
    # The int8 model in the real TFLite Micro interpreter agrees with TFLite.
    assert abs(report["tflm_accuracy"] - report["tflite_accuracy"]) <= 0.02
    assert report["tflm_tflite_outputs_within_one_step"] > 0.95
    assert report["input_quantization"]["dtype"] == "int8"
    # The export calibrates on inputs scaled as the run scaled them: [0, 1]
    # gives an int8 step of 1/255 (0..255 would give 1.0).
    assert report["input_quantization"]["scale"] == pytest.approx(1 / 255, rel=0.01)
    assert report["output_quantization"]["dtype"] == "int8"
    # A train run has no trained dense baseline: the ratio says what it is.
    assert report["baseline"] == "same architecture, dense random weights"
    assert "zipped dense with random weights (no trained baseline.keras" in (
        exported.stdout + exported.stderr
    )


def test_user_model_and_arrays_through_the_api(user_files, tmp_path, capsys):
    archive = np.load(user_files / "fashion14.npz")
    data = tffprune.data.from_arrays(
        archive["x_train"],
        archive["y_train"],
        archive["x_test"],
        archive["y_test"],
        num_clients=8,
        partition="shards",
        scale_inputs=True,
    )
    namespace = {}
    exec(USER_MODEL, namespace)  # the user's own function, defined in Python

    def model_fn():
        return namespace["build"]((14, 14, 1), 10)

    summary = tffprune.train(
        model_fn,
        data,
        output_dir=tmp_path / "api",
        sparsity=0.5,
        method="channel",
        rounds=2,
        clients_per_round=4,
        upload_values="int2",
    )

    # The notes and the final line the CLI prints, on stderr.
    printed = capsys.readouterr().err.splitlines()
    assert printed[-1].startswith("round 2: central accuracy ")
    assert printed[-1].endswith(f"results in {tmp_path / 'api'}")
    not_pruned = next(line for line in printed if line.startswith("not pruned: "))
    assert summary["rounds_completed"] == 2
    assert summary["config"]["num_clients"] == 8
    # Per client bytes add up to the run's totals, both directions.
    per_client = summary["bytes_per_client"]
    assert per_client["upload"]["mean"] * 8 == summary["total_upload_bytes"]
    assert per_client["download"]["mean"] * 8 == summary["total_download_bytes"]
    assert summary["residual_bytes"] > 0  # 2-bit updates kept residuals
    assert summary["median_bound_ratio"]["upload"] > 0
    model = tf.keras.models.load_model(
        tmp_path / "api" / "global_model.keras", compile=False
    )
    # The note names the layers as the saved model does.
    batch_norm = next(
        layer.name
        for layer in model.layers
        if isinstance(layer, tf.keras.layers.BatchNormalization)
    )
    logits = model.layers[-1].name
    assert not_pruned == (
        f"not pruned: {batch_norm} (BatchNormalization), {logits} (Dense, logits)"
    )
    kernels = _kernels(model)
    kernels.pop(model.layers[-1].name)
    for kernel in kernels.values():  # channel pruning: whole filters/units
        dropped = np.all(kernel.reshape(-1, kernel.shape[-1]) == 0, axis=0)
        assert dropped.sum() == round(0.5 * kernel.shape[-1])
    # What a user tries next from the run directory: the run kept its data
    # (data.npz, with the clients' split), so both commands work.
    from click.testing import CliRunner

    from tffprune.cli import cli

    run = tmp_path / "api"
    recorded = (run / "config.toml").read_text()
    assert f'dataset = "{run.resolve() / "data.npz"}"' in recorded
    assert 'partition = "given"' in recorded
    exported = CliRunner().invoke(
        cli, ["export", str(run), "--output-dir", str(tmp_path / "out")]
    )
    assert exported.exit_code == 0, exported.output
    report = json.loads((tmp_path / "out" / "export.json").read_text())
    assert report["eval_examples"] == len(archive["y_test"])  # the central test set
    # A Python function is no command-line model: name its file's twin.
    again = CliRunner().invoke(
        cli,
        ["train", "--config", str(run / "config.toml"), "--quiet", "--rounds", "1",
         "--model", f"{user_files / 'my_model.py'}:build",
         "--output-dir", str(tmp_path / "again")],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "clients.csv").read_text() == (
        run / "clients.csv"
    ).read_text()  # the same clients, the same examples each


def test_client_data_through_the_api(tmp_path):
    import tensorflow_federated as tff

    fashion = load_dataset("fashion_mnist")
    rng = np.random.default_rng(0)
    clients = collections.OrderedDict()
    for name in ("alice", "bob", "carol", "dave"):
        chosen = rng.choice(len(fashion.y_train), 120, replace=False)
        clients[name] = collections.OrderedDict(
            pixels=fashion.x_train[chosen], label=fashion.y_train[chosen]
        )
    client_data = tff.simulation.datasets.TestClientData(clients)
    data = tffprune.data.from_client_data(
        client_data, test=(fashion.x_test[:500], fashion.y_test[:500])
    )

    summary = tffprune.train(
        "tfmot_cnn",
        data,
        output_dir=tmp_path / "cd",
        rounds=1,
        clients_per_round=2,
        progress=False,
    )

    assert summary["rounds_completed"] == 1
    with (tmp_path / "cd" / "clients.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["client"] for row in rows] == ["alice", "bob", "carol", "dave"]
    assert [int(row["train_examples"]) for row in rows] == [96] * 4  # 80% of 120


def test_readme_python_example_runs(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Your own model and data (Python)")[1]
    code = section.split("```python\n")[1].split("```")[0]
    assert "rounds=5" in code and '"runs/mine"' in code
    # One round instead of five keeps the suite short; nothing else changes.
    code = code.replace("rounds=5", "rounds=1").replace(
        '"runs/mine"', repr(str(tmp_path / "mine"))
    )

    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    accuracy = float(completed.stdout.strip().splitlines()[-1])
    assert 0.3 < accuracy <= 1.0
    assert (tmp_path / "mine" / "summary.json").is_file()


def test_readme_tff_examples_run(tmp_path):
    """The FedAvg block, then the Sub-FedAvg, FedPM and client-file blocks."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Inside your own TFF code")[1]
    blocks = [b.split("```")[0] for b in section.split("```python\n")[1:5]]
    assert all("range(5)" in block for block in blocks)
    # Two rounds instead of five keeps the suite short; nothing else changes.
    code = "".join(blocks).replace("range(5)", "range(2)")

    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 10, lines
    assert [line.split()[0] for line in lines[:2]] == ["0", "1"]
    losses = [float(line.split()[1]) for line in lines[:2]]
    assert losses[1] < losses[0]
    assert 0.5 < float(lines[2]) <= 1.0
    # Sub-FedAvg: covered fractions, then one client's sparsity and accuracy.
    assert [line.split()[0] for line in lines[3:5]] == ["0", "1"]
    assert all(0.5 < float(line.split()[1]) <= 1.0 for line in lines[3:5])
    client, sparsity, accuracy = lines[5].split()
    assert client.startswith("client_")
    # Sampled once or twice in two rounds: 1 - 0.9 or 1 - 0.9 ** 2.
    assert float(sparsity) in (0.1, 0.19)
    assert 0.3 < float(accuracy) <= 1.0
    # FedPM: the likeliest network's density each round, then its accuracy
    # (about 0.1 for the seed's network before any round).
    assert [line.split()[0] for line in lines[6:8]] == ["0", "1"]
    assert all(0.3 < float(line.split()[1]) < 0.7 for line in lines[6:8])
    assert 0.3 < float(lines[8]) <= 1.0
    # Client files: one per client sampled in two rounds of 10 of 20.
    count, rest = lines[9].split(maxsplit=1)
    assert rest == "client files" and 10 <= int(count) <= 20


def test_importing_tffprune_first_keeps_tensorflows_cpp_logs_quiet():
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    program = "import {}; import tensorflow as tf; print(tf.reduce_sum([1, 2]).numpy())"

    quiet, loud = (
        subprocess.run(
            [sys.executable, "-c", program.format(first)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
        )
        for first in ("tffprune", "sys")
    )

    # TensorFlow's C++ log lines: "2026-12-02 21:59:45.935771: I tensorflow/..."
    cpp_line = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+: [IWE] tensorflow/", re.M)
    assert quiet.stdout == loud.stdout == "3\n"
    assert cpp_line.search(loud.stderr)  # the CUDA probe, the CPU feature note
    assert not cpp_line.search(quiet.stderr), quiet.stderr
