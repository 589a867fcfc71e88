"""Suite-wide guard: no test may leave a TFF worker process behind.

Also the fixtures about processes: the TFF workers alive, a process id that
has ended.
"""

import os
import subprocess
import sys
import time

import pytest
import tensorflow_federated

# Imported first thing in every test process (each pytest-xdist worker too):
# it registers the exit hook that releases TFF's import-time default context,
# whose own clean-up otherwise prints a traceback at interpreter exit.
from tffprune.fl import runtime

# Workers of this checkout's environment only (a second checkout's test run
# on the same machine has its own).
TFF_DIRECTORY = os.path.dirname(tensorflow_federated.__file__).encode()
# Under pytest-xdist each worker guards only the processes it started.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _started_by_this_session(environment: list[bytes]) -> bool:
    """Whether a process inherited this test session's environment."""
    if not any(v.startswith(b"PYTEST_CURRENT_TEST=") for v in environment):
        return False
    if XDIST_WORKER is None:
        return True
    return f"PYTEST_XDIST_WORKER={XDIST_WORKER}".encode() in environment


def _worker_pids():
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environment = handle.read().split(b"\0")
            from_tests = _started_by_this_session(environment)
        except OSError:
            continue
        # Only workers started by this test session (they inherit pytest's
        # environment), not those of other jobs on a shared machine.
        if TFF_DIRECTORY in command and state != "Z" and from_tests:
            pids.add(int(entry))
    return pids


@pytest.fixture
def worker_pids():
    """Returns a function listing live TFF workers started by this test session."""
    return _worker_pids


@pytest.fixture
def ended_pid() -> int:
    """The process id of a process that has ended (as if it had been killed)."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(ended.stdout)


@pytest.fixture(scope="session", autouse=True)
def no_orphaned_tff_workers():
    before = _worker_pids()
    yield
    if runtime._default_runtime is not None:
        runtime._default_runtime.stop()
    deadline = time.monotonic() + 10
    left = _worker_pids() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _worker_pids() - before
    assert not left, f"TFF worker processes left running: {sorted(left)}"
