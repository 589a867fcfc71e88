"""An advisory lock on a run directory, held while a run writes it.

A second run on the same directory (a plain rerun, ``--resume`` or
``--overwrite``) is refused while the first holds the lock, with the holder's
process id. The lock is ``fcntl.flock`` on ``OUTPUT/.tffprune.lock``: the
kernel releases it when its process ends in any way (kill -9 included), so a
stale lock file is simply taken over. The file holds the holder's pid, for
the message, and is removed when the run ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = ".tffprune.lock"


class DirectoryLockedError(ValueError):
    """Another process is writing the directory."""


class DirectoryLock:
    """The lock of one run directory (`acquire`, then `release`).

    Args:
        directory: The run directory.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._descriptor is not None

    def acquire(self, create: bool = True) -> None:
        """Takes the lock, or refuses naming the process that holds it.

        Args:
            create: Create the directory if it does not exist (else a
                missing directory is left alone and nothing is locked).

        Raises:
            DirectoryLockedError: If another process holds the lock.
        """
        if self.held:
            return
        if not self.directory.is_dir():
            if not create:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 64).decode(errors="replace").strip()
            os.close(descriptor)
            raise DirectoryLockedError(
                f"output directory {self.directory} is being written by another "
                f"run (pid {holder or 'unknown'}); wait for it to end or choose "
                "another --output-dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        """Removes the lock file and releases the lock (if held)."""
        if self._descriptor is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._descriptor)  # closing releases the flock
        self._descriptor = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
