"""Where clients keep their error-feedback residuals between rounds.

A client's residual (what its lossy upload dropped,
`tffprune.compression.error_feedback`) is the client's own state: the server
never needs it. So it does not travel through the server's side of the round.
Each sampled client's work reads its residual from a file and writes its new
one to another, inside the round's TFF computation (`tffprune.fl.client`);
the driver only hands out file names. Moving the residuals into and out of
the TFF call instead (2 bytes per weight per client, through TFF's
serialization and gRPC) cost 20-30% of a round (experiments/README.md,
"Round time with error feedback").

One file per client per round it took part in, ``c{client}_r{round}.residual``
in the store's directory: the dense float16 residual of every weight,
flattened and concatenated in weight order, as a serialized ``TensorProto``
(`tf.io.serialize_tensor`). A name is never reused, so a file a checkpoint
refers to is never overwritten: a run resumed from its checkpoint (or the
previous one) reads exactly what that checkpoint saw, and a round killed
half-way leaves only files nothing refers to. `ResidualStore.collect`
deletes those.

The directory must be reachable under the same path from every TFF worker
(local workers always are; remote workers need a shared file system).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tffprune.compression.error_feedback import RESIDUAL_DTYPE
from tffprune.reporting.files import process_directory, write_bytes_atomic

SUFFIX = ".residual"


def read_tensors(path: tf.Tensor, shapes: Sequence[tuple[int, ...]]) -> list:
    """A residual file's tensors, in TensorFlow (zeros when ``path`` is "").

    Args:
        path: Scalar ``tf.string``: the file, or "" for a client without one.
        shapes: The weights' shapes.

    Returns:
        float16 tensors, one per shape.
    """
    total = int(sum(int(np.prod(s)) for s in shapes))

    def read():
        return tf.io.parse_tensor(tf.io.read_file(path), tf.float16)

    def zeros():
        return tf.zeros([total], tf.float16)

    flat = tf.cond(tf.strings.length(path) > 0, read, zeros)
    flat = tf.ensure_shape(tf.reshape(flat, [total]), [total])
    sizes = [int(np.prod(s)) for s in shapes]
    pieces = tf.split(flat, sizes) if sizes else []
    return [tf.reshape(p, s) for p, s in zip(pieces, shapes, strict=True)]


def write_tensors(path: tf.Tensor, tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """Writes float16 tensors as one residual file, in TensorFlow.

    Returns:
        A scalar ``True`` that exists only once the file is written (make
        the round's result depend on it).
    """
    flat = tf.concat([tf.reshape(tf.cast(t, tf.float16), [-1]) for t in tensors], 0)
    write = tf.io.write_file(path, tf.io.serialize_tensor(flat))
    with tf.control_dependencies([write]):
        return tf.constant(True)


class ResidualStore:
    """The directory of residual files and the names in it.

    Args:
        directory: Where the files go, created when the first one is (so a
            run without error feedback has none); None: a temporary
            directory, removed when the store is garbage-collected or the
            interpreter exits (and, if the process is killed before, by the
            next one: `tffprune.reporting.files.process_directory`).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._temporary = None
        self._directory = None if directory is None else Path(directory).resolve()

    @property
    def directory(self) -> Path:
        """The directory of the files."""
        if self._directory is None:
            self._temporary = process_directory("residuals")
            self._directory = Path(self._temporary.name)
        return self._directory

    @staticmethod
    def name(client: int, round_number: int) -> str:
        """The file name of ``client``'s residual written in ``round_number``."""
        return f"c{int(client)}_r{int(round_number)}{SUFFIX}"

    def path(self, name: str | None) -> str:
        """The file's full path, as the round reads or writes it ("" for None)."""
        if not name:
            return ""
        self.directory.mkdir(parents=True, exist_ok=True)
        return str(self.directory / name)

    def read(self, name: str, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """A residual file's arrays (float16), one per shape.

        Raises:
            FileNotFoundError: If the file is missing.
            ValueError: If it does not hold one entry per weight entry.
        """
        data = (self.directory / name).read_bytes()
        flat = tf.io.parse_tensor(data, tf.float16).numpy()
        sizes = [int(np.prod(s)) for s in shapes]
        if flat.shape != (sum(sizes),):
            raise ValueError(
                f"residual file {name} holds {flat.size} values, the model {sum(sizes)}"
            )
        pieces = np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
        return [p.reshape(s) for p, s in zip(pieces, shapes, strict=True)]

    def write(self, name: str, arrays: Sequence[np.ndarray]) -> None:
        """Writes arrays as a residual file (atomically), as the round does."""
        flat = np.concatenate(
            [np.asarray(a, RESIDUAL_DTYPE).ravel() for a in arrays]
            or [np.zeros(0, RESIDUAL_DTYPE)]
        )
        data = tf.io.serialize_tensor(tf.constant(flat)).numpy()
        write_bytes_atomic(self.directory / name, data)

    def missing(self, names: Iterable[str | None]) -> list[str]:
        """Those of ``names`` with no file."""
        return [n for n in names if n and not (self.directory / n).is_file()]

    def nbytes(self, names: Iterable[str | None]) -> int:
        """Bytes the named files take on disk."""
        return sum((self.directory / n).stat().st_size for n in names if n)

    def sync(self, names: Iterable[str | None]) -> None:
        """Flushes the named files to disk (before a checkpoint names them)."""
        for name in names:
            if not name:
                continue
            descriptor = os.open(self.directory / name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def collect(self, keep: Iterable[str | None]) -> list[str]:
        """Deletes the residual files not in ``keep``; returns their names."""
        kept = {n for n in keep if n}
        removed = []
        if self._directory is None:
            return removed
        for path in self._directory.glob(f"*{SUFFIX}"):
            if path.name not in kept:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return sorted(removed)
