"""Faults through the real CLI: a run that fails says so, and summaries are honest."""

import errno
import json
import shutil

import pytest
from click.testing import CliRunner

from tffprune.cli import cli
from tffprune.reporting.files import atomic_path

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


def _train(arguments, output):
    return CliRunner().invoke(
        cli, ["train", *QUICK, *arguments, "--output-dir", str(output)]
    )


def _metrics(path):
    rows = [line.split(",") for line in path.read_text().splitlines()]
    seconds = rows[0].index("round_seconds")
    return [row[:seconds] + row[seconds + 1 :] for row in rows]


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


CHECKPOINT_FAULTS = {
    "truncated": _truncate,
    "corrupt": _flip_a_byte,
    "zero bytes": lambda path: path.write_bytes(b""),
    "missing": lambda path: path.unlink(),
}


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    """A 2-round run (checkpoints of rounds 2 and 1) and an uninterrupted 3."""
    root = tmp_path_factory.mktemp("checkpoints")
    assert _train(["--rounds", "3"], root / "straight").exit_code == 0
    assert _train(["--rounds", "2"], root / "two").exit_code == 0
    return root


@pytest.mark.parametrize("fault", CHECKPOINT_FAULTS)
def test_a_damaged_checkpoint_resumes_from_the_previous_one(
    two_rounds, tmp_path, fault
):
    run = tmp_path / "run"
    shutil.copytree(two_rounds / "two", run)
    (run / ".metrics.tffprune-tmp-x1y2z3.csv").write_text("left by a kill -9")
    CHECKPOINT_FAULTS[fault](run / "checkpoint.npz")

    result = _train(["--rounds", "3", "--resume"], run)

    assert result.exit_code == 0, result.output
    assert (
        "resuming from the previous checkpoint checkpoint.previous.npz (round 1)"
        in result.output
    )
    assert ("no checkpoint" if fault == "missing" else "is damaged") in result.output
    assert (run / "checkpoint.damaged.npz").exists() == (fault != "missing")
    # Rounds 2 and 3 rerun from round 1: the same as never interrupted.
    assert _metrics(run / "metrics.csv") == _metrics(
        two_rounds / "straight" / "metrics.csv"
    )
    assert not list(run.glob(".*tffprune-tmp-*"))  # the killed write's file


def test_both_checkpoints_damaged_is_one_line_exit_2(two_rounds, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_rounds / "two", run)
    _truncate(run / "checkpoint.npz")
    (run / "checkpoint.previous.npz").write_bytes(b"")

    result = _train(["--rounds", "3", "--resume"], run)

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith(f"Error: checkpoint {run / 'checkpoint.previous.npz'} is damaged")
    )


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("the last good version\n")

    with pytest.raises(OSError) as raised, atomic_path(target) as temporary:
        temporary.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(temporary))

    assert raised.value.filename == str(target)
    assert raised.value.errno == errno.ENOSPC
    assert target.read_text() == "the last good version\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_an_internal_error_shows_its_traceback_and_says_it_is_a_bug(
    tmp_path, monkeypatch
):
    import numpy as np

    import tffprune.run

    def broken(*arguments, **options):
        return np.reshape(np.zeros(3), (2,))  # a ValueError raised by NumPy

    monkeypatch.setattr(tffprune.run, "run_training", broken)

    result = CliRunner().invoke(
        cli, ["train", *QUICK, "--output-dir", str(tmp_path / "run")]
    )

    assert result.exit_code == 1
    assert "Traceback" in result.output and "cannot reshape" in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: internal error (ValueError); this is a bug in tffprune or a "
        "library it calls: please report it with the traceback above"
    )


def test_a_write_the_file_system_refuses_is_one_line_and_keeps_the_checkpoint(
    tmp_path,
):

    output = tmp_path / "run"
    # 30 clients: each one's file of examples (48 digits, 12.5 KB) fits.
    completed = _train_on_small_disk(output, "--num-clients", "30", "--rounds", "2")

    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    # The model (about 21 KB) could not be written; the file is named.
    assert completed.stderr.strip().splitlines()[-1] == (
        f"Error: file system error: {output / 'global_model.keras'}: File too large"
    )
    assert not (output / "global_model.keras").exists()
    assert not list(output.glob(".*tffprune-tmp-*"))
    # The checkpoints of both rounds are intact (about 10 KB each).
    assert _checkpoint_round(output / "checkpoint.npz") == 2


def test_a_client_file_the_file_system_refuses_is_one_line():
    # 4 clients: a client's file of examples (360 digits, 93 KB) does not fit.
    completed = _train_on_small_disk(None)

    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: file system error: ")
    assert last.endswith(".examples: File too large")
    assert "tffprune-clients-" in last


def _train_on_small_disk(output, *extra):
    """`tffprune train` (QUICK) where a write past 20 KB fails, as on a full disk."""
    import os
    import resource
    import signal
    import subprocess
    import sys
    import tempfile

    def small_disk():  # in the child: writes past 20 KB fail (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    with tempfile.TemporaryDirectory() as scratch:
        return subprocess.run(
            [sys.executable, "-m", "tffprune.cli", "train", *QUICK, *extra]
            + ["--output-dir", str(output or os.path.join(scratch, "run"))],
            preexec_fn=small_disk,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # no cut .pyc files
        )


def _checkpoint_round(path):
    import numpy as np

    with np.load(path) as archive:
        return json.loads(archive["meta"].tobytes())["round"]


def _killed_start(directory):
    """What a run killed before its first checkpoint leaves behind."""
    directory.mkdir()
    (directory / "clients.csv").write_text(
        "client,train_examples,test_examples,num_labels,label_counts\n0,80,20,10,x\n"
    )
    (directory / "config.toml").write_text('dataset = "digits"\n')
    (directory / "worker.log").write_text("")
    (directory / "tensorboard").mkdir()
    (directory / ".tffprune.lock").write_text("12345\n")  # its process is gone


def test_a_directory_a_killed_start_left_is_started_afresh(tmp_path):
    run = tmp_path / "run"
    _killed_start(run)

    result = CliRunner().invoke(cli, ["train", *QUICK, "--output-dir", str(run)])

    assert result.exit_code == 0, result.output
    assert (
        f"{run} held only what a start that saved no checkpoint writes (clients.csv, "
        "config.toml, tensorboard, worker.log): removed, starting afresh"
    ) in result.output
    assert (run / "checkpoint.npz").is_file() and (run / "summary.json").is_file()
    assert (run / "config.toml").read_text().startswith("[train]\n")  # the new one


def test_a_directory_with_a_file_of_the_users_is_never_cleared(tmp_path):
    run = tmp_path / "run"
    _killed_start(run)
    (run / "notes.txt").write_text("mine")

    result = CliRunner().invoke(cli, ["train", *QUICK, "--output-dir", str(run)])

    assert result.exit_code == 2
    assert "already holds results" in result.output and "--overwrite" in result.output
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "clients.csv").is_file()


def test_resume_without_a_checkpoint_says_how_to_start_afresh(tmp_path):
    run = tmp_path / "run"
    _killed_start(run)

    result = CliRunner().invoke(
        cli, ["train", *QUICK, "--output-dir", str(run), "--resume"]
    )

    assert result.exit_code == 2
    assert "no checkpoint to resume from" in result.output
    assert "without --resume" in result.output
