"""The TFF runtime: C++ workers whose lifetime tffprune owns.

Importing TFF installs a default context that, on the first computation,
starts the C++ ``worker_binary`` shipped in the TFF wheel with the parent's
stdout/stderr and stops it only from a ``__del__`` that does not run reliably
at interpreter exit. The orphaned worker keeps the parent's pipes open, so
``tffprune train ... | tail`` never returns.

This module builds the same execution context from the same pieces, but starts
the worker itself:

* its output goes to a log file (or nowhere), never to the parent's pipes;
* it is started with ``PR_SET_PDEATHSIG`` so the kernel kills it if the parent
  dies, even by ``kill -9``;
* `LocalRuntime.stop` (also run at exit) sends SIGINT, then SIGKILL.

Remote workers (``tffprune worker`` on other hosts) are reached with the same
context built over their addresses.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc
import tensorflow as tf
import tensorflow_federated as tff
from tensorflow_federated.python.core.environments.tensorflow_backend import (
    tensorflow_tree_transformations,
)
from tensorflow_federated.python.core.impl.computation import computation_impl
from tensorflow_federated.python.core.impl.context_stack import context_stack_impl

from tffprune.fl.mergeable import OrderedMergeableContext
from tffprune.fl.workers import (
    WorkerLostError,
    WorkerProcess,
    connect,
    start_worker,
)


def _release_tff_default_context() -> None:
    """Drops TFF's import-time default context while the interpreter is whole.

    That context's service manager has a ``__del__`` that, if it only runs
    during interpreter teardown, fails on the already-unloaded ``subprocess``
    module and prints a traceback at exit. Releasing it from an ``atexit``
    handler lets it be collected cleanly first.
    """
    import gc

    from tensorflow_federated.python.core.impl.context_stack import (
        set_default_context as tff_default_context,
    )

    tff_default_context.set_no_default_context()
    gc.collect()


# Registered at import, so it runs after every runtime's own atexit stop().
atexit.register(_release_tff_default_context)


def _executor_factory(channel: grpc.Channel) -> tff.framework.ExecutorFactory:
    stub = tff.framework.RemoteExecutorGrpcStub(channel)

    def executor_fn(cardinalities):
        if cardinalities.get(tff.CLIENTS) is None:
            cardinalities[tff.CLIENTS] = 0
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    return tff.framework.ResourceManagingExecutorFactory(executor_fn)


def to_native(
    computation: computation_impl.ConcreteComputation,
) -> computation_impl.ConcreteComputation:
    """TFF's ``desugar_and_transform_to_native``, without its Grappler pass on CPU.

    TFF's compiler runs Grappler in Python (aggressive constant folding,
    arithmetic, loop and memory rewrites) over every TensorFlow computation
    before sending it, so that dataset ops are inlined where a GPU would
    otherwise receive them. The worker's TensorFlow runtime optimizes each
    graph again when it first runs it. Without a GPU the first pass only
    costs start-up: compiling a round's ``next`` took 1.7-2.1 s against
    0.8-0.9 s for LeNet-5, 13.5-16.2 s against 5.6-6.0 s for ResNet-12.
    """
    if tf.config.list_physical_devices("GPU"):
        return tff.backends.native.desugar_and_transform_to_native(computation)
    desugared, _ = tensorflow_tree_transformations.replace_intrinsics_with_bodies(
        computation.to_building_block()
    )
    return tff.backends.native.transform_to_native_form(
        computation_impl.ConcreteComputation(
            computation_proto=desugared.proto,
            context_stack=context_stack_impl.context_stack,
        )
    )


def _sync_context(channel: grpc.Channel):
    return tff.framework.SyncExecutionContext(
        executor_fn=_executor_factory(channel),
        compiler_fn=to_native,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result,
    )


def _async_context(channel: grpc.Channel):
    return tff.framework.AsyncExecutionContext(
        executor_fn=_executor_factory(channel),
        compiler_fn=to_native,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result,
    )


class LocalRuntime:
    """TFF execution on workers this object starts (local) or reaches (remote).

    Use as a context manager; on exit (and at interpreter exit) every worker it
    started is stopped and TFF's default context is put back.

    Args:
        workers: ``host:port`` addresses of running workers; when empty, one
            local worker is started.
        log_path: File for a local worker's output.
        connect_timeout: Seconds to wait for each worker to answer.
    """

    def __init__(
        self,
        workers: Sequence[str] = (),
        log_path: str | Path | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self._addresses = list(workers)
        self._log_path = log_path
        self._connect_timeout = connect_timeout
        self._started: list[WorkerProcess] = []
        self._channels: list[grpc.Channel] = []
        self._previous_context = None
        self._context = None
        self._watchdog: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self._lost: str | None = None
        self._previous_handler = None

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers this runtime started (not remote ones)."""
        return [worker.process.pid for worker in self._started]

    def start(self) -> LocalRuntime:
        """Starts or connects to the workers and installs the TFF context."""
        atexit.register(self.stop)
        if not self._addresses:
            worker = start_worker(log_path=self._log_path)
            self._started.append(worker)
            self._addresses = [worker.address]
        try:
            for address in self._addresses:
                self._channels.append(connect(address, self._connect_timeout))
        except BaseException:
            self.stop()
            raise
        stack = tff.framework.get_context_stack()
        self._previous_context = stack.current
        if len(self._channels) == 1:
            context = _sync_context(self._channels[0])
        else:
            # TFF's own mergeable context returns clients out of order.
            context = OrderedMergeableContext(
                [_async_context(channel) for channel in self._channels]
            )
        tff.framework.set_default_context(context)
        _MANAGED_CONTEXTS.add(id(context))
        self._context = context
        self._start_watchdog()
        return self

    # A TFF call to a worker that died blocks forever inside TFF's event loop.
    # A watchdog thread probes each address (and sees a local worker's process
    # end at once); when one is lost it signals the main thread, whose handler
    # raises `WorkerLostError` out of the blocked call.
    _PROBE_SECONDS = 2.0
    _FAILURES_BEFORE_LOST = 3

    def _start_watchdog(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_handler = signal.signal(signal.SIGUSR1, self._on_lost)
        self._stop_watching.clear()
        self._watchdog = threading.Thread(
            target=self._watch, name="tffprune-worker-watchdog", daemon=True
        )
        self._watchdog.start()

    def _on_lost(self, signum: int, frame: object) -> None:
        if self._lost in [worker.address for worker in self._started]:
            raise WorkerLostError(
                f"the local TFF worker ({self._lost}) ended during the run; the "
                "last checkpoint is intact: rerun with --resume"
            )
        raise WorkerLostError(
            f"TFF worker {self._lost} stopped answering; the run was stopped. The "
            "last checkpoint is intact: restart the worker and rerun with --resume"
        )

    def _lose(self, address: str) -> None:
        self._lost = address
        self._stop_watching.set()
        os.kill(os.getpid(), signal.SIGUSR1)

    def _watch(self) -> None:
        failures = dict.fromkeys(self._addresses, 0)
        # wait() returns at once when stopped: no busy loop (a set "watching"
        # event here once probed the worker thousands of times a second).
        while not self._stop_watching.wait(self._PROBE_SECONDS):
            for worker in self._started:
                if (
                    worker.process.poll() is not None
                    and not self._stop_watching.is_set()
                ):
                    self._lose(worker.address)
                    return
            for address in self._addresses:
                host, _, port = address.rpartition(":")
                try:
                    with socket.create_connection((host, int(port)), timeout=2.0):
                        failures[address] = 0
                except OSError:
                    failures[address] += 1
                if (
                    failures[address] >= self._FAILURES_BEFORE_LOST
                    and not self._stop_watching.is_set()
                ):
                    self._lose(address)
                    return

    def stop(self) -> None:
        """Stops every worker this runtime started; idempotent."""
        self._stop_watching.set()
        if self._previous_handler is not None:
            signal.signal(signal.SIGUSR1, self._previous_handler)
            self._previous_handler = None
        if self._context is not None:
            _MANAGED_CONTEXTS.discard(id(self._context))
            self._context = None
        if self._previous_context is not None:
            tff.framework.set_default_context(self._previous_context)
            self._previous_context = None
        self._channels.clear()
        # Channels are dropped, not closed: TFF's stub polls their connectivity
        # from a thread that raises if the channel is closed under it.
        self._channels.clear()
        while self._started:
            self._started.pop().stop()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_default_runtime: LocalRuntime | None = None
_MANAGED_CONTEXTS: set[int] = set()
# The context TFF installs when it is imported (a local worker it starts on
# first use and never stops). A context current now that is neither this one
# nor ours was installed by the caller, after importing tffprune.
_TFF_IMPORT_CONTEXT = id(tff.framework.get_context_stack().current)


def managed_context_installed() -> bool:
    """Whether TFF's current context is one this module built."""
    return id(tff.framework.get_context_stack().current) in _MANAGED_CONTEXTS


def caller_context_installed() -> bool:
    """Whether the caller installed a TFF context of their own.

    True if the current context is neither TFF's import-time default nor one
    this module built (say ``tff.backends.native.
    set_sync_local_cpp_execution_context(...)`` or a remote one, called
    after importing tffprune).
    """
    current = id(tff.framework.get_context_stack().current)
    return current != _TFF_IMPORT_CONTEXT and current not in _MANAGED_CONTEXTS


def ensure_runtime() -> LocalRuntime | None:
    """Makes sure TFF computations run on a worker that is stopped at exit.

    If a `LocalRuntime` context is installed, or a context the caller
    installed themselves (`caller_context_installed`), nothing changes: that
    context runs the computations. Otherwise one process-wide local runtime
    is started (once) and installed, so that TFF's own self-orphaning default
    worker is never started; it is stopped at interpreter exit. Library
    entry points call this.

    Returns:
        The process-wide runtime, or ``None`` if another context is kept.
    """
    global _default_runtime
    if managed_context_installed():
        return _default_runtime
    if caller_context_installed():
        return None
    if _default_runtime is None or _default_runtime._context is None:
        _default_runtime = LocalRuntime().start()
    else:
        tff.framework.set_default_context(_default_runtime._context)
    return _default_runtime
