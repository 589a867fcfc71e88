"""TFF's C++ worker processes: started, reached and stopped, without TFF.

The ``worker_binary`` shipped in the TFF wheel, as a child process whose
lifetime tffprune owns (`start_worker`: output to a log file or nowhere, killed
by the kernel if its parent dies), reached over gRPC (`connect`), and served
in the foreground by ``tffprune worker`` (`serve_worker`). Nothing here
imports TFF or TensorFlow, so the worker command starts in about a second and
ends as soon as its worker does; the execution contexts over these workers
are `tffprune.fl.runtime`'s.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import portpicker

GRPC_MAX_MESSAGE_BYTES = 2 * 1000 * 1000 * 1000
GRPC_CHANNEL_OPTIONS = (
    ("grpc.max_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
)
_PR_SET_PDEATHSIG = 1


class RuntimeStartError(RuntimeError):
    """A TFF worker could not be started or reached."""


class WorkerLostError(RuntimeError):
    """A remote TFF worker stopped answering in the middle of a run."""


def worker_binary_path() -> Path:
    """Path of the C++ worker shipped inside the installed TFF wheel.

    Raises:
        RuntimeStartError: If the installed TFF has no worker binary.
    """
    # Found without importing TFF (and TensorFlow): `tffprune worker` starts
    # in a second and stops at once.
    spec = importlib.util.find_spec("tensorflow_federated")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeStartError("tensorflow-federated is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "data" / "worker_binary"
    if not path.is_file():
        raise RuntimeStartError(f"TFF worker binary not found at {path}")
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Asks the kernel to SIGKILL this process when its parent dies.

    Only where ``setpriv`` is missing: Python code between ``fork`` and
    ``exec`` in a process with TensorFlow's and gRPC's threads can crash the
    child (a segfault in ``_execute_child`` was seen once in CI).
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _with_parent_death_signal(arguments: list[str]) -> tuple[list[str], object]:
    """``(arguments, preexec_fn)`` for a child the kernel kills with its parent.

    util-linux's ``setpriv --pdeathsig KILL`` sets ``PR_SET_PDEATHSIG`` and
    execs the command in place (same process id), so no Python code runs in
    the forked child; without ``setpriv``, `_die_with_parent` does it.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return arguments, _die_with_parent
    return [setpriv, "--pdeathsig", "KILL", "--", *arguments], None


@dataclasses.dataclass
class WorkerProcess:
    """A ``worker_binary`` child process listening on ``port``."""

    process: subprocess.Popen
    port: int
    log_path: Path | None

    @property
    def address(self) -> str:
        """``host:port`` to connect to."""
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the worker: SIGINT, then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_worker(
    port: int | None = None,
    log_path: str | Path | None = None,
    max_concurrent_computation_calls: int = -1,
    die_with_parent: bool = True,
    inherit_output: bool = False,
) -> WorkerProcess:
    """Starts a TFF C++ worker as a child of this process.

    Args:
        port: Port to listen on; a free one when ``None``.
        log_path: File for the worker's output; discarded when ``None``.
        max_concurrent_computation_calls: Passed to the worker; non-positive
            means no limit.
        die_with_parent: Whether the kernel should kill the worker when this
            process dies (Linux ``PR_SET_PDEATHSIG``).
        inherit_output: Write to this process's stdout/stderr instead (for a
            foreground ``tffprune worker``; never for library use).

    Returns:
        The running worker (not yet known to be ready; see `connect`).
    """
    port = port or portpicker.pick_unused_port()
    arguments = [
        str(worker_binary_path()),
        f"--port={port}",
        f"--max_concurrent_computation_calls={max_concurrent_computation_calls}",
    ]
    preexec = None
    if die_with_parent:
        arguments, preexec = _with_parent_death_signal(arguments)
    if inherit_output:
        output = None
    elif log_path is None:
        output = subprocess.DEVNULL
    else:
        log_path = Path(log_path)
        output = log_path.open("ab")
    # glibc gives each of the worker's many threads its own malloc arena; the
    # arenas fragment and the worker's memory crept up by 22% over 300 rounds
    # (experiments/benchmarks/memory.py). Two arenas keep it within 7%.
    environment = {**os.environ}
    environment.setdefault("MALLOC_ARENA_MAX", "2")
    try:
        process = subprocess.Popen(
            arguments,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=None if inherit_output else subprocess.STDOUT,
            preexec_fn=preexec,
            close_fds=True,
            # Its own session: a Ctrl-C in the terminal reaches the run, which
            # finishes its round, not the worker in the middle of it.
            start_new_session=True,
        )
    finally:
        if log_path is not None and not inherit_output:
            output.close()
    return WorkerProcess(process=process, port=port, log_path=log_path)


def connect(address: str, timeout: float = 30.0) -> grpc.Channel:
    """Opens a gRPC channel to a worker and waits until it is ready.

    Raises:
        RuntimeStartError: If the worker does not answer within ``timeout``.
    """
    channel = grpc.insecure_channel(address, options=list(GRPC_CHANNEL_OPTIONS))
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError as error:
        channel.close()
        raise RuntimeStartError(
            f"TFF worker at {address} did not answer within {timeout:.0f} s"
        ) from error
    return channel


SECURITY_NOTE = (
    "WARNING: the TFF worker listens on every interface and its gRPC has no "
    "authentication or encryption. Anyone who can reach this port can run "
    "computations here: keep it reachable only by your driver (private network, "
    "firewall rule, or an SSH tunnel), never from the internet."
)


def serve_worker(port: int, log_path: str | Path | None = None) -> int:
    """Runs a worker in the foreground until SIGINT/SIGTERM; returns its exit code.

    Args:
        port: Port to listen on (every interface).
        log_path: File for the worker's output; the terminal when ``None``.

    Raises:
        RuntimeStartError: If the port is taken or the worker does not come up.
    """
    if not portpicker.is_port_free(port):
        raise RuntimeStartError(f"port {port} is already in use")
    worker = start_worker(port=port, log_path=log_path, inherit_output=log_path is None)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        connect(f"127.0.0.1:{port}", timeout=30.0)
        print(
            f"TFF worker {worker.process.pid} listening on 0.0.0.0:{port}", flush=True
        )
        print(SECURITY_NOTE, file=sys.stderr, flush=True)
        while not stopping and worker.process.poll() is None:
            time.sleep(0.2)
    finally:
        worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("TFF worker stopped", flush=True)
    return 0
