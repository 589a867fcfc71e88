"""Every bad input ends as one clear line, exit code 2, and nothing written.

The table is exercised through the real click CLI (in process), with the
real data loaders; one case also through a subprocess.
"""

import gzip
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

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
            "sparsity must be in [0, 1), got 1.0",
        ),
        ("sparsity -0.1", [*QUICK, "--sparsity", "-0.1"], "sparsity must be in [0, 1)"),
        ("unknown dataset", ["--dataset", "imagenet"], "Invalid value for '--dataset'"),
        ("unknown model", [*QUICK, "--model", "vgg16"], "Invalid value for '--model'"),
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
            [*QUICK, "--upload-values", "int4"],
            "Invalid value for '--upload-values'",
        ),
        (
            "too many per round",
            [*QUICK, "--clients-per-round", "9"],
            "clients_per_round (9) cannot exceed num_clients (4)",
        ),
        (
            "zero rounds",
            [*QUICK, "--rounds", "0"],
            "rounds must be a whole number >= 1",
        ),
        (
            "negative epochs",
            [*QUICK, "--local-epochs", "-1"],
            "local_epochs must be a whole number >= 1",
        ),
        (
            "zero batch",
            [*QUICK, "--batch-size", "0"],
            "batch_size must be a whole number >= 1",
        ),
        (
            "missing data",
            ["--dataset", "mnist", "--data-dir", str(root / "nothing")],
            "data set 'mnist' not found",
        ),
        (
            "corrupt data",
            ["--dataset", "fashion_mnist", "--data-dir", str(_corrupt_data_dir(root))],
            "t10k-labels-idx1-ubyte.gz is truncated",
        ),
        (
            "wrong image shape",
            [*QUICK, "--model", "lenet5"],
            "model 'lenet5' cannot take inputs of shape (8, 8, 1)",
        ),
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
            "dropout_rate must be in [0, 1)",
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
        "Error: command line: sparsity must be in [0, 1), got 1.5"
    )
    assert "Traceback" not in completed.stderr
