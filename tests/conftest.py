"""Suite-wide guard: no test may leave a TFF worker process behind."""

import os
import time

import pytest
import tensorflow_federated

# Workers of this checkout's environment only (a second checkout's test run
# on the same machine has its own).
TFF_DIRECTORY = os.path.dirname(tensorflow_federated.__file__).encode()


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
                from_tests = b"PYTEST_CURRENT_TEST=" in handle.read()
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


@pytest.fixture(scope="session", autouse=True)
def no_orphaned_tff_workers():
    before = _worker_pids()
    yield
    from tffprune.fl import runtime

    if runtime._default_runtime is not None:
        runtime._default_runtime.stop()
    deadline = time.monotonic() + 10
    left = _worker_pids() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _worker_pids() - before
    assert not left, f"TFF worker processes left running: {sorted(left)}"
