"""TensorBoard event files of a run: its metrics, one scalar per round.

A run writes ``OUTPUT/tensorboard/`` as it goes (`EventWriter`), so
``tensorboard --logdir runs/`` shows every run under ``runs/`` side by side.
The scalars are the ``metrics.csv`` columns of each round, grouped
(`scalars`): accuracy, loss, sparsity, bytes (each way, both, cumulative,
and the dense and CSR baselines), clients and seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

GROUPS = {
    "accuracy": (
        "central_accuracy",
        "personalized_accuracy",
        "personal_accuracy",
        "finetuned_personalized_accuracy",
        "finetuned_personal_accuracy",
        "central_accuracy_unpruned",
    ),
    "loss": ("central_loss", "train_loss"),
    "sparsity": ("sparsity", "global_sparsity", "central_sparsity", "covered_fraction"),
    "bytes": (
        "upload_bytes",
        "download_bytes",
        "total_bytes",
        "total_bytes_cumulative",
        "upload_bytes_dense",
        "download_bytes_dense",
        "upload_bytes_csr",
        "download_bytes_csr",
        "upload_bound_ratio",
    ),
    "clients": ("clients_participating", "clients_rejected", "clients_dropped"),
    "time": ("round_seconds",),
}
DIRECTORY = "tensorboard"


def scalars(row: dict) -> list[tuple[str, float]]:
    """``(group/column, value)`` of a metrics row's finite values."""
    result = []
    for group, columns in GROUPS.items():
        for column in columns:
            value = row.get(column)
            if value is None or not math.isfinite(float(value)):
                continue
            result.append((f"{group}/{column}", float(value)))
    return result


class EventWriter:
    """Writes each round's metrics row as TensorBoard scalars.

    Args:
        directory: Where the event files go (created if missing).
    """

    def __init__(self, directory: str | Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(directory))

    def write(self, row: dict) -> None:
        """Writes one round's row at step ``row["round"]`` and flushes."""
        with self._writer.as_default(step=int(row["round"])):
            for tag, value in scalars(row):
                self._tf.summary.scalar(tag, value)
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file."""
        self._writer.close()
