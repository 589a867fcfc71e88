"""How a command stops on Ctrl-C and SIGTERM, and the exit status it gives.

A signal ends a command with 128 + its number, the shell's convention: 130
for Ctrl-C (SIGINT), 143 for SIGTERM (what ``kill`` and job schedulers
send). Both first stop the run cleanly: during rounds the current round
finishes and is checkpointed (`StopAfterRound`); elsewhere the signal
raises `Interrupted` where Python next runs, so ``finally`` blocks end the
workers and release the run directory.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal.

    Args:
        message: What was done and how to continue ("" for nothing to add).
        signal_number: The signal (`exit_status` is 128 + it).
    """

    def __init__(self, message: str = "", signal_number: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signal_number = int(signal_number)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number (130 for a plain KeyboardInterrupt)."""
    return 128 + getattr(interrupt, "signal_number", int(signal.SIGINT))


def signal_name(signal_number: int) -> str:
    """``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    if signal_number == signal.SIGINT:
        return "Ctrl-C"
    return signal.Signals(signal_number).name


@contextlib.contextmanager
def resume_hint(message: str, label: str = "") -> Iterator[None]:
    """Says how to continue when an interrupt leaves the block.

    A bare interrupt (Ctrl-C outside the rounds, say while the results are
    written) leaves as `Interrupted` with ``message`` and its signal; one
    that already says what was done passes unchanged. With ``label`` (a
    sweep's point), either message leaves prefixed ``"label: "``.
    """
    try:
        yield
    except KeyboardInterrupt as interrupt:
        if str(interrupt) and not label:
            raise
        text = str(interrupt) or message
        raise Interrupted(
            f"{label}: {text}" if label else text,
            getattr(interrupt, "signal_number", signal.SIGINT),
        ) from None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_RECEIVED: list[int] = []
"""Signals raised as `Interrupted` during this command (any of them may have
been swallowed by a library's ``except``: `raise_if_interrupted` raises it
again where it cannot be)."""


def _interrupt(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)
    raise Interrupted(signal_number=signum)


def raise_if_interrupted() -> None:
    """Raises the `Interrupted` a signal asked for if it has not ended us yet.

    An exception raised from a signal handler surfaces wherever Python runs
    next, and code there may swallow it (``logging``'s lock release prints
    "Exception ignored" and goes on). Checked where the run enters its rounds.
    """
    if _RECEIVED:
        raise Interrupted(signal_number=_RECEIVED[-1])


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise `Interrupted` for the duration (main thread).

    Python's default SIGTERM action kills the interpreter on the spot: no
    ``finally``, no ``atexit``, workers and locks left behind.
    """
    if not _in_main_thread():
        yield
        return
    _RECEIVED.clear()
    previous = {number: signal.signal(number, _interrupt) for number in SIGNALS}
    unraisable_hook = sys.unraisablehook

    def quiet_when_swallowed(unraisable) -> None:
        # An `Interrupted` Python could not raise (it landed in an at-fork
        # callback, a __del__): `raise_if_interrupted` raises it again.
        if not isinstance(unraisable.exc_value, Interrupted):
            unraisable_hook(unraisable)

    sys.unraisablehook = quiet_when_swallowed
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sys.unraisablehook = unraisable_hook
        _RECEIVED.clear()


class StopAfterRound:
    """Ctrl-C or SIGTERM during a round: finish it, checkpoint, then stop.

    A KeyboardInterrupt raised at an arbitrary point can land inside TensorFlow
    or TFF code that swallows it; a flag checked between rounds cannot be lost.
    A second signal stops at once.

    Attributes:
        requested: The signal asked for so far (0: none).
    """

    def __init__(self) -> None:
        self.requested = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            _interrupt(signum, frame)
        self.requested = signum
        print(
            f"\n{signal_name(signum)}: stopping after this round (again to stop now)",
            file=sys.stderr,
            flush=True,
        )

    def stop(self, message: str) -> Interrupted:
        """The `Interrupted` to raise once the round is saved."""
        return Interrupted(message, self.requested or signal.SIGINT)

    def __enter__(self) -> StopAfterRound:
        raise_if_interrupted()
        if _in_main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
