"""Two processes on one run directory: the second is refused; kill -9 frees it."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tffprune.cli import cli
from tffprune.reporting.lock import LOCK_NAME, DirectoryLock, DirectoryLockedError

HOLD = """
import sys, time
from tffprune.reporting.lock import DirectoryLock
lock = DirectoryLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _wait_for(predicate, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _kill(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_a_held_lock_names_its_process_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryLockedError, match=f"pid {holder.pid}"):
            DirectoryLock(tmp_path / "run").acquire()
    finally:
        _kill(holder)
    # The kernel dropped the dead holder's lock; its stale file is taken over.
    assert (tmp_path / "run" / LOCK_NAME).exists()
    with DirectoryLock(tmp_path / "run") as lock:
        assert lock.held
        assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / "run" / LOCK_NAME).exists()


QUICK = [
    "--dataset",
    "digits",
    "--model",
    "tfmot_cnn",
    "--num-clients",
    "4",
    "--clients-per-round",
    "2",
    "--quiet",
]


def test_a_second_train_on_a_directory_being_written_is_refused(tmp_path):
    output = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "tffprune.cli", "train", *QUICK]
        + ["--rounds", "100000", "--output-dir", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Running for real: its first round is written.
        assert _wait_for(lambda: (output / "metrics.csv").exists())
        for flag in ("--overwrite", "--resume"):
            result = CliRunner().invoke(
                cli,
                ["train", *QUICK, "--rounds", "1", flag, "--output-dir", str(output)],
            )
            assert result.exit_code == 2, result.output
            assert f"being written by another run (pid {first.pid})" in result.output
    finally:
        _kill(first)

    taken_over = CliRunner().invoke(
        cli,
        ["train", *QUICK, "--rounds", "1", "--overwrite", "--output-dir", str(output)],
    )

    assert taken_over.exit_code == 0, taken_over.output
    assert not (output / LOCK_NAME).exists()


def test_a_failed_start_leaves_no_directory_behind(tmp_path):
    output = tmp_path / "run"

    # A worker that never answers fails the start after the output directory
    # was made (and its lock taken).
    unreachable = ["--workers", "127.0.0.1:1", "--worker-timeout", "2"]
    result = CliRunner().invoke(
        cli, ["train", *QUICK, *unreachable, "--output-dir", str(output)]
    )

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert not output.exists()
