"""Output directories, atomic file writes and a run's temporary directories.

Results are never half-written: every file is written to a temporary name in
the same directory and renamed into place (``os.replace`` is atomic on POSIX).
An existing, non-empty output directory is refused unless the caller resumes or
overwrites on purpose. A run's temporary directories (clients' files,
error-feedback residuals) carry its process id and its process-id namespace,
so that the next run removes those a killed one left (`process_directory`),
and never a live one of another container that shares the same /tmp.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tffprune.reporting.lock import LOCK_NAME

TEMPORARY_MARK = ".tffprune-tmp-"
"""In the name of every temporary file tffprune writes; what a killed write
leaves behind is removed on the next start (`remove_stale_temporaries`)."""


def process_directory(kind: str) -> tempfile.TemporaryDirectory:
    """A new temporary directory named after this process.

    ``tffprune-{kind}-{pid}.{namespace}-…``, ``namespace`` naming the
    process-id namespace the ``pid`` belongs to (`pid_namespace`). It is
    removed when the returned object is garbage-collected or the interpreter
    exits. A process killed outright (SIGKILL, a power cut) cannot remove its
    own: the next call for the same ``kind``, in any process of the same
    namespace, first removes those of processes that have ended
    (`remove_stale_directories`).

    Args:
        kind: What the directory holds (``clients``, ``residuals``).
    """
    remove_stale_directories(kind)
    owner = f"{os.getpid()}.{pid_namespace()}"
    return tempfile.TemporaryDirectory(prefix=f"tffprune-{kind}-{owner}-")


def pid_namespace() -> str:
    """A name for this process's process-id namespace, for a file name.

    Two containers that share a /tmp may each run a process 42. On Linux the
    namespace is the inode of ``/proc/self/ns/pid``; elsewhere the host name.
    """
    try:
        return f"ns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return "".join(ch if ch.isalnum() else "_" for ch in os.uname().nodename)


def remove_stale_directories(kind: str, root: str | Path | None = None) -> list[Path]:
    """Removes the `process_directory` directories of processes that have ended.

    Only those of this process-id namespace: whether a process of another
    one has ended cannot be told from here, so its directories stay.

    Args:
        kind: Their kind.
        root: Where to look (default: the system's temporary directory).

    Returns:
        The directories removed.
    """
    prefix = f"tffprune-{kind}-"
    namespace = pid_namespace()
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid, _, owner_namespace = (
            path.name[len(prefix) :].split("-", 1)[0].partition(".")
        )
        ours = owner_namespace == namespace
        if ours and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def file_stem(client_id: Hashable) -> str:
    """A file-name-safe, collision-free stem for a client id (``7``, ``"ann"``)."""
    text = str(client_id)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40]
    digest = hashlib.sha1(f"{type(client_id).__name__}:{text}".encode()).hexdigest()
    return f"c{safe}_{digest[:10]}"


class OutputDirectoryError(ValueError):
    """The output directory cannot be used as asked."""


def check_output_dir(
    path: str | Path, resume: bool = False, overwrite: bool = False
) -> None:
    """Checks that an output directory may be used, without creating it.

    Raises:
        OutputDirectoryError: As `prepare_output_dir`, for an existing path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirectoryError(f"output path {path} exists and is not a directory")
    held = any(p.name != LOCK_NAME for p in path.iterdir()) if path.is_dir() else False
    if held and not (resume or overwrite):
        raise OutputDirectoryError(
            f"output directory {path} already holds results; pass --resume to "
            "continue it or --overwrite to replace it"
        )
    if resume and not path.is_dir():
        raise OutputDirectoryError(f"cannot resume: {path} does not exist")


def prepare_output_dir(
    path: str | Path, resume: bool = False, overwrite: bool = False
) -> Path:
    """Creates or checks an output directory.

    Args:
        path: The directory.
        resume: Reuse an existing directory (its contents are kept).
        overwrite: Allow writing into an existing non-empty directory (files
            are replaced one by one as they are written).

    Returns:
        The directory path.

    Raises:
        OutputDirectoryError: If it exists, is not empty and neither flag is
            set, or if it cannot be created or written.
    """
    path = Path(path)
    check_output_dir(path, resume=resume, overwrite=overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        with tempfile.NamedTemporaryFile(dir=path, prefix=f".write{TEMPORARY_MARK}"):
            pass
    except OSError as error:
        raise OutputDirectoryError(
            f"cannot write to output directory {path}: {error.strerror}"
        ) from None
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Removes the temporary files killed writes left in ``directory``.

    Returns:
        The files removed.
    """
    removed = []
    for candidate in Path(directory).glob(f".*{TEMPORARY_MARK}*"):
        if candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it into place on success.

    The temporary name keeps the final suffix (Keras picks the format by it).
    On an exception the temporary file is removed and ``path`` is untouched;
    an ``OSError`` (a full disk) is raised again naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}{TEMPORARY_MARK}", suffix=path.suffix
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        try:
            yield temporary_path
        except OSError as error:  # name the file the user knows, not ours
            raise OSError(error.errno, error.strerror, str(path)) from error
        # mkstemp creates the file private (0600); give it the permissions a
        # plain open() would have, so results stay readable by others.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary_path, 0o666 & ~umask)
        os.replace(temporary_path, path)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes bytes atomically."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes text atomically."""
    write_bytes_atomic(path, text.encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Writes JSON (indented, NumPy values converted) atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def save_keras_model_atomic(model, path: str | Path) -> None:
    """Saves a Keras model (format by suffix, e.g. ``.keras``) atomically."""
    with atomic_path(path) as temporary:
        model.save(temporary)
