"""Faults through the real CLI: a run that fails says so, and summaries are honest."""

import json

from click.testing import CliRunner

from tffprune.cli import cli

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


def test_a_run_that_trains_nothing_exits_1_and_says_why(tmp_path):
    # A learning rate this large overflows every client's weights to Inf/NaN:
    # each update is rejected, so nothing is ever aggregated.
    output = tmp_path / "run"

    result = CliRunner().invoke(
        cli,
        ["train", *QUICK, "--client-learning-rate", "1e30"]
        + ["--output-dir", str(output)],
    )

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(
        "Error: training failed: no client update was aggregated in 1 rounds: "
        "2 rejected (update rejected: NaN or Inf values), 0 dropped"
    )
    assert "results in" not in result.output  # no success line
    summary = json.loads((output / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "2 rejected" in summary["failure"]
    assert not (output / "global_model.keras").exists()
    rejections = (output / "rejections.csv").read_text().splitlines()
    assert rejections[0] == "round,client,reason"
    assert len(rejections) == 1 + 2
    assert all(line.startswith("1,") for line in rejections[1:])


def test_summary_counts_sparsity_over_the_clients_that_took_part(tmp_path):
    # 4 clients, 2 per round, 1 round: 2 clients pruned to 50%, 2 never took
    # part. The mean over all four would say 0.25.
    output = tmp_path / "run"

    result = CliRunner().invoke(
        cli,
        ["train", *QUICK, "--sparsity", "0.5", "--output-dir", str(output)],
    )

    assert result.exit_code == 0, result.output
    summary = json.loads((output / "summary.json").read_text())
    assert summary["status"] == "ok"
    sparsity = summary["final_client_sparsity"]
    assert sparsity["clients"] == 2
    assert abs(sparsity["mean"] - 0.5) < 0.01 and abs(sparsity["min"] - 0.5) < 0.01
    assert summary["clients_never_aggregated"] == 2
    assert "client sparsity 0.500 over the 2 clients that took part (2 never did)" in (
        result.output
    )
    assert (output / "rejections.csv").read_text() == "round,client,reason\n"
