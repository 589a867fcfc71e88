import csv
import math

import pytest
from click.testing import CliRunner

from tffprune.cli import cli
from tffprune.config import TrainConfig, load_toml
from tffprune.sweep import (
    SweepResult,
    best_result,
    bytes_to_target,
    point_config,
    sweep_points,
)

ROWS = [
    {"round": 1, "upload_bytes": 100, "central_accuracy": None},
    {"round": 2, "upload_bytes": 50, "central_accuracy": 0.5},
    {"round": 3, "upload_bytes": 50, "central_accuracy": math.nan},
    {"round": 4, "upload_bytes": 25, "central_accuracy": 0.8},
    {"round": 5, "upload_bytes": 25, "central_accuracy": 0.9},
]


def test_bytes_to_target_can_count_both_directions():
    rows = [dict(row, total_bytes=3 * row["upload_bytes"]) for row in ROWS]

    assert bytes_to_target(rows, 0.8, column="total_bytes") == (4, 675)
    assert bytes_to_target(rows, 0.8, column="upload_bytes") == (4, 225)


def test_bytes_to_target_counts_rounds_up_to_the_first_hit():
    assert bytes_to_target(ROWS, 0.8) == (4, 225)
    assert bytes_to_target(ROWS, 0.5) == (2, 150)
    assert bytes_to_target(ROWS, 0.95) is None
    assert bytes_to_target(ROWS, 0.5, "personalized_accuracy") is None


def _result(method, sparsity, reached, total):
    return SweepResult(method, sparsity, reached, total, 0.9, 10, 999, "runs/x")


def test_best_result_fewest_bytes_then_fewer_rounds_then_sparser():
    results = [
        _result("none", 0.0, 3, 300),
        _result("weight", 0.5, 4, 200),
        _result("unit", 0.5, 3, 200),
        _result("unit", 0.9, None, None),
    ]
    assert best_result(results).method == "unit"
    assert (
        best_result(
            [_result("weight", 0.5, 3, 200), _result("weight", 0.7, 3, 200)]
        ).sparsity
        == 0.7
    )
    assert best_result([_result("weight", 0.9, None, None)]) is None


def test_sweep_points_dense_first_sorted_and_validated():
    assert sweep_points(["weight"], [0.9, 0.5, 0.5, 0.0]) == [
        ("none", 0.0),
        ("weight", 0.5),
        ("weight", 0.9),
    ]
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        sweep_points(["magic"], [0.5])
    with pytest.raises(ValueError, match="sparsity must be in"):
        sweep_points(["weight"], [1.0])


def test_fedpm_is_one_point_of_its_own_settings():
    assert sweep_points(["fedpm", "unit", "fedpm"], [0.5, 0.8]) == [
        ("none", 0.0),
        ("fedpm", 0.0),
        ("unit", 0.5),
        ("unit", 0.8),
    ]
    base = TrainConfig(method="unit", sparsity=0.8, upload_values="int8")
    fedpm = point_config(base, "fedpm", 0.37)
    assert (fedpm.aggregation, fedpm.method, fedpm.sparsity) == ("fedpm", "none", 0)
    assert point_config(base, "weight", 0.5).aggregation == base.aggregation


@pytest.mark.slow
def test_a_sweep_sets_fedpm_beside_the_dense_baseline(tmp_path):
    output = tmp_path / "sweep"
    arguments = _digits_sweep(
        output, "0.3", "fedpm", "--num-clients", "4", "--local-epochs", "3"
    )
    arguments += ["--rounds", "6"]

    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    with (output / "sweep.csv").open() as handle:
        dense, fedpm = list(csv.DictReader(handle))
    assert (dense["method"], fedpm["method"]) == ("none", "fedpm")
    assert load_toml(output / fedpm["run_dir"] / "config.toml").aggregation == "fedpm"
    with (output / fedpm["run_dir"] / "metrics.csv").open() as handle:
        metrics = list(csv.DictReader(handle))
    assert fedpm["reached_round"], result.output
    reached = int(fedpm["reached_round"])
    assert int(fedpm["bytes_to_target"]) == sum(
        int(float(m["total_bytes"])) for m in metrics[:reached]
    )
    # Its sparsity is its learned mask's, at the round it reached the target.
    assert float(fedpm["sparsity"]) == float(metrics[reached - 1]["global_sparsity"])
    assert 0.0 < float(fedpm["sparsity"]) < 1.0


def _digits_sweep(output, target: str, methods: str, *options: str) -> list[str]:
    """``tffprune sweep`` arguments on digits' tfmot_cnn, 3 clients a round."""
    return [
        "sweep",
        "--target-accuracy",
        target,
        "--methods",
        methods,
        *options,
        "--dataset",
        "digits",
        "--model",
        "tfmot_cnn",
        "--clients-per-round",
        "3",
        "--quiet",
        "--output-dir",
        str(output),
    ]


@pytest.mark.slow
def test_sweep_command_writes_table_plot_and_rerunnable_best(tmp_path):
    output = tmp_path / "sweep"
    arguments = _digits_sweep(output, "0.2", "weight,unit", "--sparsities", "0.5")
    arguments += ["--num-clients", "6", "--rounds", "4"]

    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    with (output / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["sparsity"]) for r in rows] == [
        ("none", "0.0"),
        ("weight", "0.5"),
        ("unit", "0.5"),
    ]
    for row in rows:  # each stopped at its first round reaching the target
        if row["reached_round"]:
            assert int(row["rounds_run"]) == int(row["reached_round"])
    winner = min(
        (r for r in rows if r["bytes_to_target"]),
        key=lambda r: int(r["bytes_to_target"]),
    )
    # Ranked by both directions (the default): each point's bytes to target
    # are its metrics' total_bytes up to the round it reached the target.
    for row in rows:
        if row["reached_round"]:
            with (output / row["run_dir"] / "metrics.csv").open() as handle:
                metrics = list(csv.DictReader(handle))
            assert int(row["bytes_to_target"]) == sum(
                int(float(m["total_bytes"])) for m in metrics
            )
    best = load_toml(output / "best.toml")
    assert (best.method, best.sparsity) == (winner["method"], float(winner["sparsity"]))
    assert best.rounds == int(winner["reached_round"])
    assert (output / "bytes_to_target.png").stat().st_size > 0
    assert "fewest bytes (both directions)" in result.output

    again = CliRunner().invoke(cli, [*arguments, "--resume"])

    assert again.exit_code == 0, again.output
    assert again.output.count("(done earlier)") == 3

    # Another seed is another sweep: every point reruns, and best.toml says so.
    reseeded = CliRunner().invoke(cli, [*arguments, "--resume", "--seed", "9"])

    assert reseeded.exit_code == 0, reseeded.output
    assert "(done earlier)" not in reseeded.output
    assert reseeded.output.count("its configuration changed (seed); rerunning") == 3
    for row in rows:
        assert load_toml(output / row["run_dir"] / "config.toml").seed == 9
    assert load_toml(output / "best.toml").seed == 9


def test_sweep_rejects_bad_lists(tmp_path):
    for option, value, message in [
        ("--methods", "weight,magic", "unknown method 'magic'"),
        ("--sparsities", "0.5,lots", "--sparsities: expected numbers"),
        ("--aggregation", "fedpm", "which fedpm does not use"),
    ]:
        result = CliRunner().invoke(
            cli,
            [
                "sweep",
                "--target-accuracy",
                "0.5",
                option,
                value,
                "--dataset",
                "digits",
                "--output-dir",
                str(tmp_path / "s"),
            ],
        )
        assert result.exit_code == 2
        assert message in result.output.splitlines()[-1]
        assert "Traceback" not in result.output
        assert not (tmp_path / "s").exists()


def test_a_point_stopped_while_writing_its_files_is_finished_on_resume(
    tmp_path, monkeypatch
):
    """Ctrl-C between a point's last round and its plots: not done, says how on."""
    import tffprune.run

    real_plot_run = tffprune.run.plot_run
    calls = []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_plot_run(*args, **kwargs)

    monkeypatch.setattr(tffprune.run, "plot_run", interrupted_once)
    output = tmp_path / "sweep"
    arguments = [
        "sweep", "--target-accuracy", "0.2", "--methods", "weight",
        "--sparsities", "0.5", "--dataset", "digits", "--model", "tfmot_cnn",
        "--num-clients", "6", "--clients-per-round", "3", "--rounds", "4",
        "--quiet", "--output-dir", str(output),
    ]  # fmt: skip
    point = output / "runs" / "none_0"

    first = CliRunner().invoke(cli, arguments)

    assert first.exit_code == 130, first.output
    assert (
        "interrupted: [1/2] none 0: stopped while writing the results; continue "
        "with --resume" in first.output
    )
    assert not (point / "summary.json").exists()
    assert not (point / "accuracy.png").exists()

    again = CliRunner().invoke(cli, [*arguments, "--resume"])

    assert again.exit_code == 0, again.output
    assert "(done earlier)" not in again.output
    assert (point / "summary.json").exists() and (point / "accuracy.png").exists()
    with (output / "sweep.csv").open() as handle:
        dense = next(csv.DictReader(handle))
    # Resumed at its checkpoint: no round trained past the one that reached it.
    assert dense["reached_round"] and dense["rounds_run"] == dense["reached_round"]
