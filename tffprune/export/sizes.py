"""Model sizes as the tfmot pruning tutorial measures them.

The tutorial's ``get_gzipped_model_size`` writes the file into a zip archive
with ``ZIP_DEFLATED`` and reports the archive's size: pruning pays off on disk
only once the zeros are compressed. Keras models are saved without optimizer
state in HDF5, as the tutorial (and so Singh & Raj's Table 1) did.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import tensorflow as tf


def zipped_size(path: str | Path) -> int:
    """Bytes of a zip (deflate) archive holding just this file."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as directory:
        archive = Path(directory) / "model.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
            handle.write(path, arcname=path.name)
        return os.path.getsize(archive)


def zipped_bytes_size(data: bytes, name: str = "model.tflite") -> int:
    """`zipped_size` of in-memory bytes."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(data)
        return zipped_size(path)


def keras_zipped_size(model: tf.keras.Model) -> tuple[int, int]:
    """(raw, zipped) bytes of the model saved as HDF5 without optimizer.

    Keras's notes on this save (HDF5 is its legacy format; a compiled model's
    metrics are not built) are about a file nobody opens: they are kept off
    the user's terminal.
    """
    logger = tf.get_logger()
    level = logger.level
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path = Path(directory) / "model.h5"
        logger.setLevel(logging.ERROR)
        try:
            tf.keras.models.save_model(model, path, include_optimizer=False)
        finally:
            logger.setLevel(level)
        return os.path.getsize(path), zipped_size(path)
