"""Readers for the on-disk formats image data sets come in.

Three formats, each read strictly: a file that is truncated, corrupt or of the
wrong kind raises `DataError` naming the file, never returns a wrong array.

* IDX (LeCun's MNIST format, also Fashion-MNIST), raw or gzip-compressed:
  a 4-byte magic ``0x00 0x00 <dtype> <ndim>``, ``ndim`` big-endian uint32
  dimensions, then the data.
* Keras ``.npz`` archives with ``x_train, y_train, x_test, y_test``.
* CIFAR-10 "python version" batches (pickled dicts with ``data`` and
  ``labels``), unpickled with an allow-list: a batch file cannot run code.
"""

from __future__ import annotations

import gzip
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

# IDX type codes -> NumPy dtypes (big-endian where it matters).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """A data set cannot be found, or a data file is invalid."""


# The only callables a CIFAR-10 batch's pickle names: NumPy's array
# reconstructor (under its NumPy 1 and NumPy 2 module names), the array type
# and the dtype type, and `_codecs.encode`, which protocol 0-2 pickles written
# by Python 3 use to rebuild bytes. Dicts, lists, str and int need no global.
_CIFAR_GLOBALS = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a callable outside the CIFAR batch allow-list."""


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR-10 batch holds.

    `pickle.Unpickler` resolves every callable a pickle names through
    `find_class`; refusing all but NumPy's array reconstruction means a crafted
    file (``__reduce__`` returning ``os.system``) cannot run anything.
    """

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise _RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def _read_bytes(path: Path) -> bytes:
    """Reads a file, decompressing it when it is gzip (by magic, not by name)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from error
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise DataError(
                f"{path} is a truncated or corrupt gzip file ({error}); "
                "delete it and provide a fresh copy"
            ) from error
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (raw or gzip) into an array.

    Args:
        path: Path of the ``*-idx?-ubyte`` file, optionally ``.gz``.

    Returns:
        An array with the dimensions and dtype recorded in the file header.

    Raises:
        DataError: If the file is unreadable, has a bad header, or its payload
            length does not match the header's dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path} is not an IDX file: only {len(data)} bytes")
    zero, type_code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{path} is not an IDX file: bad magic number {data[:4].hex()}")
    header_length = 4 + 4 * ndim
    if len(data) < header_length:
        raise DataError(f"{path} is truncated inside its IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data[4:header_length], ">u4"))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = len(data) - header_length
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise DataError(
            f"{path} is {problem}: header {shape} needs {expected} data bytes, "
            f"file has {actual}"
        )
    array = np.frombuffer(data, dtype, offset=header_length).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Writes an array as an IDX file (gzip when the name ends in ``.gz``).

    Args:
        path: Destination path.
        array: A uint8 array (the only type the image data sets use).

    Raises:
        ValueError: If the array is not uint8 or has no dimensions.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim == 0:
        raise ValueError(
            f"write_idx expects a uint8 array with >= 1 dimension, got "
            f"{array.dtype} with shape {array.shape}"
        )
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Reads a Keras data set archive with ``x_train, y_train, x_test, y_test``.

    Args:
        path: Path of the ``.npz`` file.

    Returns:
        The four arrays by name.

    Raises:
        DataError: If the archive is unreadable or lacks one of the four keys.
    """
    path = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    arrays = read_npz_arrays(path)
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}; a Keras data set .npz "
            f"holds {', '.join(keys)}"
        )
    return {key: arrays[key] for key in keys}


def read_npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, by name; pickled objects refused.

    Raises:
        DataError: If the archive is unreadable, or an array holds Python
            objects (``dtype=object``: loading them unpickles, which can run
            code), naming the array.
    """
    path = Path(path)
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as error:
                    if "allow_pickle" not in str(error):
                        raise
                    raise DataError(
                        f"{path}: array {key!r} holds pickled Python objects, "
                        "refused (unpickling can run code); save plain numeric "
                        "arrays, e.g. np.savez(path, x_train=np.asarray(x, "
                        "np.float32), ...)"
                    ) from None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(
            f"{path} is a truncated or corrupt .npz file: {error}"
        ) from error
    return arrays


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one CIFAR-10 python batch file.

    The batch is a pickled dict (``data``: uint8 (N, 3072) in channel-major
    order, ``labels``: N ints), the format distributed by the data set's
    authors and cached by Keras. It is unpickled with an allow-list (dicts,
    lists, bytes, str, int and NumPy arrays): a file naming any other callable
    is refused before anything in it is built, so a batch file cannot run code.

    Args:
        path: Path of ``data_batch_i`` or ``test_batch``.

    Returns:
        Images as uint8 (N, 32, 32, 3) and labels as int64 (N,).

    Raises:
        DataError: If the file is unreadable, not a CIFAR-10 batch, or names
            a callable a CIFAR-10 batch does not hold.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            batch = _CifarUnpickler(handle, encoding="bytes").load()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from error
    except _RefusedGlobal as error:
        raise DataError(
            f"{path} is not a CIFAR-10 batch: it asks to run {error}, refused "
            "(a batch holds only a dict of arrays, lists and strings); replace "
            "it with the data set's original file"
        ) from error
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
    ) as error:
        raise DataError(
            f"{path} is a truncated or corrupt CIFAR batch: {error}"
        ) from error
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch (no dict inside)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} is not a CIFAR-10 batch (no data/labels keys)")
    data = np.asarray(data)
    labels = np.asarray(labels, np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: CIFAR-10 data must be uint8 (N, 3072), got {data.dtype} "
            f"{data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels
