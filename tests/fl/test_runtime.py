"""The TFF runtime tffprune starts must end with it, whatever way it ends."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import tensorflow_federated as tff
    from tffprune.fl.runtime import ensure_runtime

    runtime = ensure_runtime()

    @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
    def total_and_values(values):
        return tff.federated_sum(values), values

    total, values = total_and_values([2.0, 4.0, 6.0, 8.0])
    worker_pid = runtime._started[0].process.pid
    print(f"RESULT {total} {values} WORKER {worker_pid}", flush=True)
    if "--hang" in sys.argv:
        time.sleep(600)
    """
)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of a dead parent is reaped by init quickly; treat it as gone.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def _wait_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not _alive(pid):
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_pipe_closes_and_worker_ends_on_normal_exit():
    # stdout is a pipe: if the worker inherited it, communicate() would hang.
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    line = next(
        row for row in completed.stdout.splitlines() if row.startswith("RESULT")
    )
    assert line.startswith("RESULT 20.0 [2.0, 4.0, 6.0, 8.0]")
    assert _wait_gone(int(line.split()[-1]))


@pytest.mark.slow
def test_worker_dies_when_parent_is_killed_hard():
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "--hang"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("RESULT") and time.monotonic() < deadline:
            line = process.stdout.readline()
        worker_pid = int(line.split()[-1])
        assert _alive(worker_pid)

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        assert _wait_gone(worker_pid)
        # The pipe reaches end-of-file: nobody else holds it.
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.stdout.close()


def test_the_watchdog_probes_every_two_seconds_not_in_a_busy_loop():
    from tffprune.fl.runtime import LocalRuntime

    with LocalRuntime() as runtime:
        worker = runtime.worker_pids[0]
        cpu_before = time.process_time()
        time.sleep(6)
        cpu = time.process_time() - cpu_before
        open_files = len(os.listdir(f"/proc/{worker}/fd"))

    # Three probes in 6 s, each one short connection. A busy loop spent a core
    # and left the worker thousands of connections ("Too many open files").
    assert cpu < 1.0
    assert open_files < 50


def test_a_local_worker_that_dies_is_reported_not_waited_for():
    from tffprune.fl.runtime import LocalRuntime
    from tffprune.fl.workers import WorkerLostError

    started = time.monotonic()
    with (
        pytest.raises(WorkerLostError, match="local TFF worker"),
        LocalRuntime() as runtime,
    ):
        os.kill(runtime.worker_pids[0], signal.SIGKILL)
        time.sleep(30)  # the watchdog interrupts this within ~2 s
    assert time.monotonic() - started < 25


CALLER_CONTEXT_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    import tensorflow_federated as tff
    import tffprune.learning
    from tffprune.fl import runtime
    from tffprune.fl.workers import connect, start_worker

    # The caller's own context, on a worker of their own (not a LocalRuntime).
    worker = start_worker()
    try:
        context = runtime._sync_context(connect(worker.address))
        tff.framework.set_default_context(context)

        def model_fn():
            return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])

        spec = (tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32))
        process = tffprune.learning.build_fedavg(model_fn, spec)
        state = process.initialize()
        kept = tff.framework.get_context_stack().current is context
        print("KEPT", kept, "OURS", runtime._default_runtime is not None,
              "WEIGHTS", len(state.global_model_weights), flush=True)
    finally:
        worker.stop()
    """
)


@pytest.mark.slow
def test_a_context_the_caller_installed_runs_the_computations():
    """TFF users who install their own context keep it; no worker of ours starts."""
    completed = subprocess.run(
        [sys.executable, "-c", CALLER_CONTEXT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "KEPT True OURS False WEIGHTS 2" in completed.stdout
