"""`tffprune worker` + `tffprune train --workers` on 127.0.0.1."""

import csv
import signal
import subprocess
import sys
import time

import numpy as np
import portpicker
import pytest

pytestmark = pytest.mark.slow


def _start_worker(tmp_path, port):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tffprune.cli",
            "worker",
            "--port",
            str(port),
            "--log",
            str(tmp_path / f"worker_{port}.log"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert f"listening on 0.0.0.0:{port}" in line, process.stderr.read()
    return process


def _stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        assert "TFF worker stopped" in process.communicate(timeout=30)[0]


def _train(output_dir, *extra, rounds=2):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tffprune.cli",
            "train",
            "--quiet",
            "--dataset",
            "digits",
            "--model",
            "tfmot_cnn",
            "--method",
            "none",
            "--aggregation",
            "fedavg",
            "--num-clients",
            "6",
            "--clients-per-round",
            "4",
            "--rounds",
            str(rounds),
            "--seed",
            "4",
            "--output-dir",
            str(output_dir),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _metrics(path):
    with (path / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_two_workers_give_the_local_result(tmp_path):
    ports = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    workers = [_start_worker(tmp_path, port) for port in ports]
    try:
        remote = _train(
            tmp_path / "remote", "--workers", ",".join(f"127.0.0.1:{p}" for p in ports)
        )
    finally:
        for worker in workers:
            _stop(worker)
    local = _train(tmp_path / "local")

    assert remote.returncode == 0, remote.stderr[-2000:]
    assert local.returncode == 0, local.stderr[-2000:]
    for want, got in zip(
        _metrics(tmp_path / "local"), _metrics(tmp_path / "remote"), strict=True
    ):
        for column in (
            "central_accuracy",
            "central_loss",
            "train_loss",
            "upload_bytes",
        ):
            assert float(got[column]) == pytest.approx(float(want[column]), rel=1e-4)


def test_sub_fedavg_over_two_workers_keeps_each_clients_mask(tmp_path):
    """Shares of clients over workers change only the order of float sums.

    After one round every client's mask equals the local run's and the
    weights differ by float summation order only (1.5e-8 measured). TFF's own
    mergeable context returned the clients' outputs in the order the workers
    finished, giving clients each other's masks whenever the second share
    finished first (tests/fl/test_mergeable.py forces that order).
    """
    ports = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    pruning = ("--aggregation", "subfedavg", "--method", "weight", "--sparsity", "0.5")
    workers = [_start_worker(tmp_path, port) for port in ports]
    try:
        remote = _train(
            tmp_path / "remote",
            *pruning,
            "--workers",
            ",".join(f"127.0.0.1:{p}" for p in ports),
            rounds=1,
        )
    finally:
        for worker in workers:
            _stop(worker)
    local = _train(tmp_path / "local", *pruning, rounds=1)

    assert remote.returncode == 0, remote.stderr[-2000:]
    assert local.returncode == 0, local.stderr[-2000:]
    with (
        np.load(tmp_path / "remote" / "checkpoint.npz") as got,
        np.load(tmp_path / "local" / "checkpoint.npz") as want,
    ):
        masks = [k for k in want.files if k.startswith("mask_")]
        assert masks and sorted(got.files) == sorted(want.files)
        for key in masks:  # every client's mask, by client
            np.testing.assert_array_equal(got[key], want[key])
        for key in (k for k in want.files if k.startswith("server_")):
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)


def test_unreachable_worker_is_a_clear_error(tmp_path):
    port = portpicker.pick_unused_port()
    started = time.monotonic()

    result = _train(
        tmp_path / "run", "--workers", f"127.0.0.1:{port}", "--worker-timeout", "3"
    )

    assert result.returncode == 1
    assert f"TFF worker at 127.0.0.1:{port} did not answer within 3 s" in result.stderr
    # 3 s connect timeout plus start-up (importing TensorFlow: up to a minute
    # on a loaded 2-core machine); waiting for a worker that never comes
    # would run into the run's own 600 s timeout.
    assert time.monotonic() - started < 120


def test_worker_killed_mid_run_stops_cleanly_then_resume(tmp_path):
    port = portpicker.pick_unused_port()
    worker = _start_worker(tmp_path, port)
    output = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "tffprune.cli",
        "train",
        "--quiet",
        "--dataset",
        "fashion_mnist",
        "--model",
        "lenet5",
        "--num-clients",
        "8",
        "--clients-per-round",
        "4",
        "--rounds",
        "40",
        "--max-examples",
        "4000",
        "--workers",
        f"127.0.0.1:{port}",
        "--output-dir",
        str(output),
    ]
    training = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not (output / "checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (output / "checkpoint.npz").exists()
        worker.send_signal(signal.SIGKILL)  # its worker_binary dies with it
        killed_at = time.monotonic()
        _, stderr = training.communicate(timeout=60)
        assert time.monotonic() - killed_at < 30
    finally:
        training.kill()
        worker.kill()
    assert training.returncode == 1
    assert f"TFF worker 127.0.0.1:{port} stopped answering" in stderr
    done = len(_metrics(output))

    worker = _start_worker(tmp_path, port)
    try:
        resumed = subprocess.run(
            [*command[:-1], str(output), "--resume", "--rounds", str(done + 1)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        _stop(worker)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(_metrics(output)) == done + 1


def test_fedpm_over_two_workers_gives_the_local_result(tmp_path):
    """Each client's samples come from its own seed, wherever it trains."""
    ports = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    fedpm = ("--aggregation", "fedpm")
    workers = [_start_worker(tmp_path, port) for port in ports]
    try:
        remote = _train(
            tmp_path / "remote",
            *fedpm,
            "--workers",
            ",".join(f"127.0.0.1:{p}" for p in ports),
        )
    finally:
        for worker in workers:
            _stop(worker)
    local = _train(tmp_path / "local", *fedpm)

    assert remote.returncode == 0, remote.stderr[-2000:]
    assert local.returncode == 0, local.stderr[-2000:]
    for want, got in zip(
        _metrics(tmp_path / "local"), _metrics(tmp_path / "remote"), strict=True
    ):
        # The same sampled masks: the same range-coded bytes, to the byte.
        assert got["upload_bytes"] == want["upload_bytes"]
        assert got["download_bytes"] == want["download_bytes"]
        assert got["central_accuracy"] == want["central_accuracy"]
    with (
        np.load(tmp_path / "remote" / "checkpoint.npz") as got,
        np.load(tmp_path / "local" / "checkpoint.npz") as want,
    ):
        for key in (k for k in want.files if k.startswith("server_")):
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)
