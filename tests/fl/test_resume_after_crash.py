"""kill -9 in the middle of training, then --resume: same result as no crash."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

TIMING_COLUMNS = {"round_seconds"}


def _command(output_dir, *extra):
    return [
        sys.executable,
        "-m",
        "tffprune.cli",
        "train",
        "--quiet",
        "--dataset",
        "fashion_mnist",
        "--model",
        "lenet5",
        "--method",
        "weight",
        "--sparsity",
        "0.5",
        "--schedule",
        "polynomial",
        "--partition",
        "shards",
        "--num-clients",
        "8",
        "--clients-per-round",
        "4",
        "--rounds",
        "6",
        "--max-examples",
        "4000",
        "--batch-size",
        "16",
        "--eval-every",
        "2",
        "--seed",
        "11",
        "--output-dir",
        str(output_dir),
        *extra,
    ]


def _rows(path):
    with path.open() as handle:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS}
            for row in csv.DictReader(handle)
        ]


@pytest.fixture
def beside():
    """Starts a command beside the test's own; kills it if the test ends first."""
    started = []

    def start(command):
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


# 1-bit updates with error feedback: the clients' residuals must survive too.
LOW_BITS = ("--upload-values", "int1", "--download-values", "int8")


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path, worker_pids, beside):
    workers_before = worker_pids()
    # The uninterrupted run trains beside the one to be killed (2 cores).
    reference = beside(_command(tmp_path / "reference", *LOW_BITS))

    crashed = tmp_path / "crashed"
    process = subprocess.Popen(
        _command(crashed, *LOW_BITS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = crashed / "metrics.csv"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break  # two rounds recorded: the third is under way
        if process.poll() is not None:
            pytest.fail("training finished before it could be killed")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert len(_rows(metrics)) < 6
    with np.load(crashed / "checkpoint.npz") as checkpoint:
        meta = json.loads(checkpoint["meta"].tobytes())
    named = {name for name in meta["residual_files"] if name}
    assert named  # the clients' residuals survive in files the checkpoint names
    assert named <= {path.name for path in (crashed / "residuals").iterdir()}

    resumed = subprocess.run(
        _command(crashed, "--resume", *LOW_BITS),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, stderr = reference.communicate(timeout=900)
    assert reference.returncode == 0, stderr[-2000:]

    expected, actual = _rows(tmp_path / "reference" / "metrics.csv"), _rows(metrics)
    assert [r["round"] for r in actual] == ["1", "2", "3", "4", "5", "6"]
    for want, got in zip(expected, actual, strict=True):
        for column, value in want.items():
            if value == "":
                assert got[column] == ""
            else:
                assert float(got[column]) == pytest.approx(
                    float(value), rel=1e-4, abs=1e-6
                )
    first = tf.keras.models.load_model(tmp_path / "reference" / "global_model.keras")
    second = tf.keras.models.load_model(crashed / "global_model.keras")
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # The killed run's worker died with it (PR_SET_PDEATHSIG); none are left.
    time.sleep(0.5)
    assert worker_pids() <= workers_before


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_the_checkpoint(tmp_path, worker_pids):
    workers_before = worker_pids()
    output = tmp_path / "run"
    process = subprocess.Popen(
        _command(output), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 600
    while not (output / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)  # returns: no pipe held open

    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert (output / "checkpoint.npz").exists()
    time.sleep(0.5)
    assert worker_pids() <= workers_before


def _digits_command(output_dir, *extra):
    return [
        sys.executable,
        "-m",
        "tffprune.cli",
        "train",
        "--quiet",
        "--dataset",
        "digits",
        "--model",
        "tfmot_cnn",
        "--num-clients",
        "6",
        "--clients-per-round",
        "3",
        "--sparsity",
        "0.5",
        "--rounds",
        "24",  # room for 3 interruptions of 1-3 rounds each
        "--seed",
        "3",
        "--output-dir",
        str(output_dir),
        *extra,
    ]


def _checkpoint_round(path):
    with np.load(path) as archive:
        return json.loads(archive["meta"].tobytes())["round"]


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_at_random_moments(tmp_path, worker_pids, beside):
    """Like a terminal's Ctrl-C: SIGINT to every process of the run's group."""
    workers_before = worker_pids()
    # The uninterrupted run trains beside the interrupted one (2 cores).
    reference = beside(_digits_command(tmp_path / "reference"))
    run, metrics = tmp_path / "run", tmp_path / "run" / "metrics.csv"
    moments = random.Random(0)
    interrupted = 0
    while True:
        written = len(_rows(metrics)) if metrics.exists() else 0
        resume = ["--resume"] if (run / "checkpoint.npz").exists() else []
        process = subprocess.Popen(
            _digits_command(run, *resume),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group, as a shell's job
        )
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and len(_rows(metrics)) > written:
                break  # training: a new round is recorded
            time.sleep(0.02)
        time.sleep(moments.uniform(0.0, 0.6))  # somewhere in the next round(s)
        if process.poll() is None and interrupted < 3:  # then let it finish
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
        if process.returncode == 0:
            break
        interrupted += 1
        assert process.returncode == 130, stderr[-2000:]
        assert "interrupted" in stderr and "Traceback" not in stderr
        # The last finished round is in the checkpoint.
        assert _checkpoint_round(run / "checkpoint.npz") == len(_rows(metrics))
    assert interrupted == 3
    _, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr[-2000:]

    expected, actual = _rows(tmp_path / "reference" / "metrics.csv"), _rows(metrics)
    assert [r["round"] for r in actual] == [str(r) for r in range(1, 25)]
    for want, got in zip(expected, actual, strict=True):
        for column, value in want.items():
            if value == "":
                assert got[column] == ""
            else:
                assert float(got[column]) == pytest.approx(
                    float(value), rel=1e-4, abs=1e-6
                )
    time.sleep(0.5)
    assert worker_pids() <= workers_before


@pytest.mark.slow
def test_sigterm_finishes_the_round_and_checkpoints_it(tmp_path, worker_pids):
    workers_before = worker_pids()
    run, metrics = tmp_path / "run", tmp_path / "run" / "metrics.csv"
    process = subprocess.Popen(
        _digits_command(run, "--rounds", "200"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not metrics.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)  # as a scheduler or `kill` stops a job
    _, stderr = process.communicate(timeout=120)

    # 128 + 15, the shell's convention for a job ended by SIGTERM.
    assert process.returncode == 143, stderr[-2000:]
    assert "SIGTERM: stopping after this round" in stderr
    assert "interrupted (SIGTERM): stopped after round" in stderr
    assert "Traceback" not in stderr
    assert _checkpoint_round(run / "checkpoint.npz") == len(_rows(metrics)) < 200
    time.sleep(0.5)
    assert worker_pids() <= workers_before


@pytest.mark.slow
def test_sigterm_during_start_up_ends_the_run_cleanly(tmp_path, worker_pids):
    """Before the first round: 143, no traceback, the directory free again."""
    workers_before = worker_pids()
    run = tmp_path / "run"
    process = subprocess.Popen(
        _digits_command(run, "--rounds", "200"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (run / "clients.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 143, stderr[-2000:]
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
    time.sleep(0.5)
    assert worker_pids() <= workers_before
    # Nothing holds the directory: a plain rerun of the same command starts.
    rerun = subprocess.run(
        _digits_command(run, "--rounds", "1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]


@pytest.mark.slow
def test_kill_9_before_the_first_checkpoint_leaves_a_directory_a_rerun_takes(
    tmp_path, worker_pids
):
    """kill -9 after clients.csv: no checkpoint, so a plain rerun starts afresh."""
    workers_before = worker_pids()
    run = tmp_path / "run"
    process = subprocess.Popen(
        _digits_command(run, "--rounds", "200"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (run / "clients.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert not (run / "checkpoint.npz").exists()

    rerun = subprocess.run(
        _digits_command(run, "--rounds", "1"),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "removed, starting afresh" in rerun.stdout + rerun.stderr
    assert (run / "summary.json").is_file()
    time.sleep(0.5)
    assert worker_pids() <= workers_before
