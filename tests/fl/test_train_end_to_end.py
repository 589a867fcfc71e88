"""`tffprune train` end to end on real Fashion-MNIST, through a pipe."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tffprune.fl.training import METRIC_COLUMNS


@pytest.mark.slow
def test_train_three_rounds_writes_every_file(tmp_path):
    output = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "tffprune.cli",
        "train",
        "--dataset",
        "fashion_mnist",
        "--model",
        "lenet5",
        "--method",
        "weight",
        "--sparsity",
        "0.5",
        "--aggregation",
        "subfedavg",
        "--partition",
        "iid",
        "--num-clients",
        "5",
        "--clients-per-round",
        "5",
        "--rounds",
        "3",
        "--max-examples",
        "2000",
        "--batch-size",
        "20",
        "--client-learning-rate",
        "0.05",
        "--output-dir",
        str(output),
    ]
    # Output is piped: a worker process left holding it would make this hang.
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "round 3: central accuracy" in completed.stdout
    assert "Traceback" not in completed.stderr  # not even at interpreter exit
    expected = {
        "metrics.csv",
        "summary.json",
        "config.toml",
        "global_model.keras",
        "accuracy.png",
        "bytes.png",
        "clients.csv",
        "checkpoint.npz",
        "worker.log",
    }
    assert expected <= {path.name for path in output.iterdir()}

    with (output / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(METRIC_COLUMNS)
    assert [int(r["round"]) for r in rows] == [1, 2, 3]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0]
    for row in rows:
        assert abs(float(row["sparsity"]) - 0.5) < 0.01
        assert 0 < int(row["upload_bytes"]) < int(row["upload_bytes_dense"])
        assert 0.0 <= float(row["central_accuracy"]) <= 1.0
        assert 0.0 <= float(row["personalized_accuracy"]) <= 1.0

    summary = json.loads((output / "summary.json").read_text())
    assert summary["config"]["sparsity"] == 0.5
    assert summary["rounds_completed"] == 3
    assert summary["total_upload_bytes"] == sum(int(r["upload_bytes"]) for r in rows)

    model = tf.keras.models.load_model(output / "global_model.keras")
    assert model.count_params() == 44_426
    logits = model(np.zeros((1, 28, 28, 1), np.float32))
    assert logits.shape == (1, 10)
    assert (output / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_train_refuses_bad_arguments(tmp_path):
    from click.testing import CliRunner

    from tffprune.cli import cli

    runner = CliRunner()
    cases = [
        (["--sparsity", "1.0"], "--sparsity must be in [0, 1), got 1.0"),
        (
            ["--clients-per-round", "20", "--num-clients", "10"],
            "--clients-per-round (20) cannot exceed --num-clients (10)",
        ),
        (["--rounds", "0"], "--rounds must be a whole number >= 1, got 0"),
        (["--method", "magic"], "Invalid value for '--method'"),
    ]
    for arguments, message in cases:
        result = runner.invoke(
            cli, ["train", *arguments, "--output-dir", str(tmp_path / "x")]
        )
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.output, (arguments, result.output)
        assert "Traceback" not in result.output
        assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_resume_continues_and_extends(tmp_path):
    from click.testing import CliRunner

    from tffprune.cli import cli

    runner = CliRunner()
    common = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "tfmot_cnn",
        "--num-clients",
        "4",
        "--clients-per-round",
        "2",
        "--quiet",
        "--output-dir",
        str(tmp_path / "run"),
    ]
    first = runner.invoke(cli, [*common, "--rounds", "2"])
    assert first.exit_code == 0, first.output

    refused = runner.invoke(cli, [*common, "--rounds", "3"])
    assert refused.exit_code == 2 and "already holds results" in refused.output

    other = runner.invoke(
        cli, [*common, "--rounds", "3", "--resume", "--sparsity", "0.7"]
    )
    assert other.exit_code == 2 and "differs in: sparsity" in other.output

    resumed = runner.invoke(cli, [*common, "--rounds", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]
