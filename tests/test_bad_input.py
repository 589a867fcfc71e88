"""Every bad input ends as one clear line, exit code 2, and nothing written.

The table is exercised through the real click CLI (in process), with the
real data loaders; one case also through a subprocess.
"""

import gzip
import subprocess
import sys

import numpy as np
from click.testing import CliRunner
from crafted_files import RunsACommand, model_file_running_a_command

from tffprune.cli import cli
from tffprune.data.formats import write_idx

QUICK = [
    "--dataset",
    "digits",
    "--model",
    "tfmot_cnn",
    "--num-clients",
    "4",
    "--clients-per-round",
    "2",
    "--rounds",
    "1",
    "--quiet",
]


def _corrupt_data_dir(root):
    directory = root / "corrupt"
    directory.mkdir()
    write_idx(
        directory / "train-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8)
    )
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))  # says 5, holds 2
    )
    return directory


def _nan_fashion_dir(root):
    """A Keras fashion_mnist.npz whose first training image is NaN."""
    directory = root / "nan_fashion"
    directory.mkdir()
    x_train = np.zeros((10, 28, 28), np.float32)
    x_train[0] = np.nan
    np.savez(
        directory / "fashion_mnist.npz",
        x_train=x_train,
        y_train=np.arange(10) % 10,
        x_test=np.zeros((5, 28, 28), np.float32),
        y_test=np.arange(5),
    )
    return directory


MODELS = """
import tensorflow as tf
import tensorflow_model_optimization as tfmot


def good(input_shape, num_classes):
    return tf.keras.Sequential(
        [tf.keras.Input(input_shape), tf.keras.layers.Flatten(),
         tf.keras.layers.Dense(num_classes)]
    )


def not_a_model(input_shape, num_classes):
    return "a string"


def crashes(input_shape, num_classes):
    raise RuntimeError("out of coffee")


def wrong_outputs(input_shape, num_classes):
    return tf.keras.Sequential(
        [tf.keras.Input(input_shape), tf.keras.layers.Flatten(),
         tf.keras.layers.Dense(num_classes + 2)]
    )


def adapts(input_shape, num_classes):
    normalize = tf.keras.layers.Normalization()
    normalize.adapt(tf.zeros((4, *input_shape)))
    return tf.keras.Sequential(
        [tf.keras.Input(input_shape), normalize, tf.keras.layers.Flatten(),
         tf.keras.layers.Dense(num_classes)]
    )


def wrapped(input_shape, num_classes):
    return tfmot.sparsity.keras.prune_low_magnitude(good(input_shape, num_classes))
"""


def _npz(root, name, **changes):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.random((40, 6, 6, 1)).astype(np.float32),
        y_train=rng.integers(0, 3, 40),
        x_test=rng.random((10, 6, 6, 1)).astype(np.float32),
        y_test=rng.integers(0, 3, 10),
    )
    arrays.update(changes)
    path = root / f"{name}.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def _user_input_cases(root):
    models = root / "models.py"
    models.write_text(MODELS)
    npz = _npz(root, "good")
    own = ["--dataset", npz, "--num-clients", "4", "--clients-per-round", "2",
           "--rounds", "1", "--quiet"]  # fmt: skip
    nan_images = np.full((40, 6, 6, 1), np.nan, np.float32)
    return [
        ("model file missing", [*own, "--model", "nowhere.py:good"],
         "model file nowhere.py does not exist"),
        ("function missing", [*own, "--model", f"{models}:absent"],
         "has no function 'absent'"),
        ("not a model", [*own, "--model", f"{models}:not_a_model"],
         "returned str, not a Keras model"),
        ("model crashes", [*own, "--model", f"{models}:crashes"],
         "failed: RuntimeError: out of coffee"),
        ("wrong outputs", [*own, "--model", f"{models}:wrong_outputs"],
         "outputs shape (None, 5)"),
        ("adapt in model", [*own, "--model", f"{models}:adapts"],
         "calls a preprocessing layer's adapt()"),
        ("tfmot wrapped", [*own, "--model", f"{models}:wrapped"],
         "wrapped with tfmot's prune_low_magnitude"),
        ("npz missing", ["--dataset", str(root / "none.npz"), "--model", "fc"],
         "none.npz does not exist"),
        ("npz key missing", ["--dataset", _npz(root, "nokey", y_test=None)],
         "lacks y_test"),
        ("negative label", ["--dataset", _npz(root, "neg", y_test=-np.ones(10))],
         "y_test must be >= 0"),
        ("fractional label",
         ["--dataset", _npz(root, "frac", y_train=np.full(40, 0.5))],
         "y_train must be whole class indices"),
        ("mismatched lengths", ["--dataset", _npz(root, "len", y_train=np.ones(39))],
         "y_train has 39 labels for 40 examples"),
        ("NaN images", ["--dataset", _npz(root, "nan", x_train=nan_images)],
         "x_train holds 1440 NaN or infinite values"),
        ("pickled labels",
         ["--dataset", _npz(root, "obj", y_train=np.array([0, "a"] * 20, object))],
         "array 'y_train' holds pickled Python objects, refused"),
    ]  # fmt: skip


def _cases(root):
    bad_toml = root / "bad.toml"
    bad_toml.write_text("[train]\nrounds = 3\nlearning_rate = 0.1\n")
    wrong_value_toml = root / "wrong.toml"
    wrong_value_toml.write_text('[train]\nrounds = "many"\n')
    not_writable = root / "file_in_the_way"
    not_writable.write_text("I am a file")
    return [
        (
            "sparsity 1",
            [*QUICK, "--sparsity", "1"],
            "--sparsity must be in [0, 1), got 1.0",
        ),
        (
            "sparsity -0.1",
            [*QUICK, "--sparsity", "-0.1"],
            "--sparsity must be in [0, 1)",
        ),
        ("unknown dataset", ["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        ("unknown model", [*QUICK, "--model", "vgg16"], "unknown --model 'vgg16'"),
        (
            "unknown method",
            [*QUICK, "--method", "random"],
            "Invalid value for '--method'",
        ),
        (
            "unknown partition",
            [*QUICK, "--partition", "x"],
            "Invalid value for '--partition'",
        ),
        (
            "unknown upload values",
            [*QUICK, "--upload-values", "int3"],
            "Invalid value for '--upload-values'",
        ),
        (
            "2-bit download",
            [*QUICK, "--download-values", "int2"],
            "Invalid value for '--download-values'",
        ),
        (
            "new clients' subnetwork under FedAvg",
            [*QUICK, "--aggregation", "fedavg", "--new-clients", "subnetwork"],
            "--new-clients 'subnetwork' needs --aggregation 'subfedavg'",
        ),
        (
            "mask-distance rule under FedAvg",
            [
                *QUICK,
                "--aggregation",
                "fedavg",
                "--local-epochs",
                "2",
                "--mask-distance-threshold",
                "0.0001",
            ],
            "--mask-distance-threshold needs --aggregation 'subfedavg'",
        ),
        (
            "mask-distance rule with one local epoch",
            [*QUICK, "--mask-distance-threshold", "0.0001"],
            "--mask-distance-threshold needs --local-epochs >= 2",
        ),
        (
            "mask-distance threshold of 1",
            [*QUICK, "--local-epochs", "2", "--mask-distance-threshold", "1"],
            r"--mask-distance-threshold must be in [0, 1), got 1.0",
        ),
        (
            "too many per round",
            [*QUICK, "--clients-per-round", "9"],
            "--clients-per-round (9) cannot exceed --num-clients (4)",
        ),
        (
            "zero rounds",
            [*QUICK, "--rounds", "0"],
            "--rounds must be a whole number >= 1",
        ),
        (
            "negative epochs",
            [*QUICK, "--local-epochs", "-1"],
            "--local-epochs must be a whole number >= 1",
        ),
        (
            "zero batch",
            [*QUICK, "--batch-size", "0"],
            "--batch-size must be a whole number >= 1",
        ),
        (
            "missing data",
            ["--dataset", "mnist", "--data-dir", str(root / "nothing")],
            f"--data-dir {root / 'nothing'} holds no mnist files",
        ),
        (
            "corrupt data",
            ["--dataset", "fashion_mnist", "--data-dir", str(_corrupt_data_dir(root))],
            "t10k-labels-idx1-ubyte.gz is truncated",
        ),
        (
            "NaN in a named data set's file",
            ["--dataset", "fashion_mnist", "--data-dir", str(_nan_fashion_dir(root))],
            "fashion_mnist.npz: x_train holds 784 NaN or infinite values",
        ),
        (
            "wrong image shape",
            [*QUICK, "--model", "lenet5"],
            "model 'lenet5' cannot take inputs of shape (8, 8, 1)",
        ),
        *_user_input_cases(root),
        (
            "unknown TOML key",
            [*QUICK, "--config", str(bad_toml)],
            "unknown key 'learning_rate'",
        ),
        (
            "invalid TOML value",
            [*QUICK, "--config", str(wrong_value_toml)],
            "rounds must be a whole number, got 'many'",
        ),
        (
            "unwritable output",
            [*QUICK, "--output-dir", str(not_writable)],
            "is a file",
        ),
        ("resume without checkpoint", [*QUICK, "--resume"], "cannot resume"),
        (
            "bad workers",
            [*QUICK, "--workers", "localhost"],
            "--workers expects HOST:PORT",
        ),
        (
            "dropout 1",
            [*QUICK, "--dropout-rate", "1"],
            "--dropout-rate must be in [0, 1)",
        ),
        (
            "negative seed",
            [*QUICK, "--seed", "-1"],
            "--seed must be a whole number in [0, 4294967295], got -1",
        ),
        (
            "seed too large",
            [*QUICK, "--seed", "4294967296"],
            "--seed must be a whole number in [0, 4294967295], got 4294967296",
        ),
        (
            "non-ASCII worker address",
            [*QUICK, "--workers", "8\u00b2:1"],
            "--workers expects HOST:PORT[,HOST:PORT...] (a host name or IP address",
        ),
        (
            "Dirichlet alpha too small to split",
            [
                *QUICK,
                "--num-clients",
                "40",
                "--partition",
                "dirichlet",
                "--alpha",
                "1e-300",
            ],
            "--alpha 0.04 is the smallest of the form d x 10^k that works",
        ),
        (
            "infinite width",
            [*QUICK, "--model", "resnet12", "--width-multiplier", "inf"],
            "--width-multiplier must be in (0, 16], got inf",
        ),
        (
            "fedpm with batch norm",
            [*QUICK, "--aggregation", "fedpm", "--model", "resnet12"],
            "fedpm freezes every weight at the seed's signed constant",
        ),
        (
            "fedpm probability bits",
            [*QUICK, "--aggregation", "fedpm", "--probability-bits", "5"],
            "--probability-bits must be one of 32, 8, 6, 4, 3, 2, 1, got 5",
        ),
    ]


def test_bad_input_table(tmp_path):
    runner = CliRunner()
    failures = []
    for name, arguments, message in _cases(tmp_path):
        output_dir = tmp_path / f"out_{name.replace(' ', '_')}"
        ours = "--output-dir" not in arguments
        if ours:
            arguments = [*arguments, "--output-dir", str(output_dir)]
        result = runner.invoke(cli, ["train", *arguments])
        text = result.output  # stdout and stderr as the terminal shows them
        lines = [line for line in text.splitlines() if line.startswith("Error")]
        if (
            result.exit_code != 2
            or message not in text
            or "Traceback" in text
            or len(lines) != 1
            or (ours and output_dir.exists())
        ):
            failures.append((name, result.exit_code, text[-500:]))
    assert not failures, failures


def test_export_rejects_unknown_quantize_mode(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "export",
            str(tmp_path),
            "--quantize",
            "int4",
            "--output-dir",
            str(tmp_path / "o"),
        ],
    )

    assert result.exit_code == 2
    assert "Invalid value for '--quantize'" in result.output
    assert not (tmp_path / "o").exists()


def test_existing_results_are_never_overwritten(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "metrics.csv").write_text("precious")

    result = CliRunner().invoke(cli, ["train", *QUICK, "--output-dir", str(output_dir)])

    assert result.exit_code == 2
    assert "already holds results" in result.output
    assert (output_dir / "metrics.csv").read_text() == "precious"


def test_bad_input_through_a_real_process(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tffprune.cli",
            "train",
            "--sparsity",
            "1.5",
            "--output-dir",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "Error: --sparsity must be in [0, 1), got 1.5"
    )
    assert "Traceback" not in completed.stderr


def _each_refused(commands, message):
    """Each CLI command ends with exit 2, one line holding ``message``."""
    for arguments in commands:
        result = CliRunner().invoke(cli, arguments)

        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output


def test_a_cifar_batch_that_would_run_code_is_refused_by_train_and_data(tmp_path):
    import pickle

    directory = tmp_path / "cifar-10-batches-py"
    directory.mkdir()
    marker = tmp_path / "ran"
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        if name == "data_batch_1":
            batch[b"data"] = RunsACommand(marker)
        (directory / name).write_bytes(pickle.dumps(batch))
    commands = [
        ["data", "--dataset", "cifar10", "--data-dir", str(directory)],
        ["train", *QUICK, "--dataset", "cifar10", "--data-dir", str(directory),
         "--model", "fc", "--output-dir", str(tmp_path / "run")],
    ]  # fmt: skip

    _each_refused(
        commands, "data_batch_1 is not a CIFAR-10 batch: it asks to run posix.system"
    )
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_a_model_file_that_would_run_code_is_refused_by_train_and_export(tmp_path):
    marker = tmp_path / "ran"
    model_file = tmp_path / "evil.h5"
    model_file_running_a_command(model_file, marker)
    marker.unlink()  # saving built the model, and so ran the lambda once
    commands = [
        ["train", *QUICK, "--dataset", "digits", "--model", str(model_file),
         "--output-dir", str(tmp_path / "run")],
        ["export", str(model_file), "--output-dir", str(tmp_path / "edge")],
    ]  # fmt: skip

    _each_refused(commands, "holds a Lambda layer with Python code (bytecode)")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "edge").exists()


def test_a_worker_log_it_cannot_write_names_the_option(tmp_path):
    unwritable = tmp_path / "no_such_directory" / "worker.log"

    result = CliRunner().invoke(
        cli, ["worker", "--port", "1", "--log", str(unwritable)]
    )

    assert result.exit_code == 2, result.output
    assert f"Error: --log {unwritable}: cannot write to it (No such file" in (
        result.output
    )
    assert "Traceback" not in result.output
