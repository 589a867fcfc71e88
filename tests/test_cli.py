import subprocess
import sys

from click.testing import CliRunner

from tffprune import __version__
from tffprune.cli import cli


def test_version_and_help():
    runner = CliRunner()

    assert runner.invoke(cli, ["--version"]).output.strip().endswith(__version__)
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "Sub-FedAvg" in result.output


def test_console_script_is_installed():
    completed = subprocess.run(
        [sys.executable, "-m", "tffprune.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0
    assert __version__ in completed.stdout


def test_data_command_prints_split(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "data",
            "--dataset",
            "digits",
            "--partition",
            "shards",
            "--num-clients",
            "10",
            "--output",
            str(tmp_path / "split.csv"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "digits, shards: 10 clients" in result.output
    assert len((tmp_path / "split.csv").read_text().splitlines()) == 11


def test_bad_input_is_one_line_exit_2():
    result = CliRunner().invoke(
        cli,
        [
            "data",
            "--dataset",
            "digits",
            "--partition",
            "shards",
            "--num-clients",
            "2",
            "--shards-per-client",
            "1",
        ],
    )

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.splitlines()[-1] == (
        "Error: 2 shards cannot hold 10 labels; use more clients or more shards "
        "per client"
    )


def test_centralized_from_scratch_clustered_writes_model_and_summary(tmp_path):
    import json

    import numpy as np
    import tensorflow as tf

    result = CliRunner().invoke(
        cli,
        [
            "centralized",
            "--workflow",
            "from-scratch",
            "--dataset",
            "digits",
            "--model",
            "tfmot_cnn",
            "--sparsity",
            "0.5",
            "--epochs",
            "3",
            "--prune-logits",
            "--clusters",
            "4",
            "--output-dir",
            str(tmp_path / "run"),
        ],
    )

    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert abs(summary["sparsity"]["prunable_sparsity"] - 0.5) < 0.01
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["clusters"] == 4
    model = tf.keras.models.load_model(tmp_path / "run" / "model.keras")
    kernels = [w for w in model.get_weights() if w.ndim > 1]
    assert [np.unique(k[k != 0]).size <= 4 for k in kernels] == [True, True]


def test_centralized_refuses_existing_results(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")

    result = CliRunner().invoke(
        cli,
        ["centralized", "--dataset", "digits", "--output-dir", str(tmp_path / "run")],
    )

    assert result.exit_code == 2
    assert "already holds results" in result.output
    assert (tmp_path / "run" / "summary.json").read_text() == "{}"


def test_centralized_rejects_bad_sparsity():
    result = CliRunner().invoke(
        cli, ["centralized", "--sparsity", "1.5", "--output-dir", "unused"]
    )

    assert result.exit_code == 2
    assert "Invalid value for '--sparsity'" in result.output


def test_centralized_refuses_more_clusters_than_kept_weights(tmp_path):
    # tfmot_cnn's conv_1 kernel has 3*3*1*12 = 108 weights; at 80% sparsity
    # it keeps 108 - round(0.8 * 108) = 22, so 200 clusters cannot keep its
    # zeros (tfmot would cluster them away: sparsity 0.0 instead of 0.8).
    output = tmp_path / "run"

    result = CliRunner().invoke(
        cli,
        ["centralized", "--dataset", "digits", "--model", "tfmot_cnn"]
        + ["--sparsity", "0.8", "--clusters", "200", "--output-dir", str(output)],
    )

    assert result.exit_code == 2, result.output
    assert (
        "--clusters 200 is more than the 22 weights layer conv_1 keeps at "
        "sparsity 0.8; use --clusters 22 or fewer"
    ) in result.output
    assert not output.exists()
