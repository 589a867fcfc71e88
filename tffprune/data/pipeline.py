"""tf.data pipelines for one client's examples (TensorFlow, no TFF)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def batched_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle_seed: int | None = None,
    epochs: int = 1,
) -> tf.data.Dataset:
    """Builds a batched dataset of ``(images, labels)``, shuffled per epoch.

    Args:
        images: float32 images, shape (N, ...).
        labels: int32 labels, shape (N,).
        batch_size: Batch size (>= 1); the last batch may be smaller.
        shuffle_seed: Seed for the shuffle; ``None`` keeps the order (for
            evaluation). The same seed gives the same order, so a round is
            reproducible.
        epochs: Number of passes over the data (>= 1).

    Returns:
        A ``tf.data.Dataset`` yielding ``(images, labels)`` batches.

    Raises:
        ValueError: If ``batch_size`` or ``epochs`` is below 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(
            max(len(labels), 1), seed=shuffle_seed, reshuffle_each_iteration=True
        )
    return dataset.repeat(epochs).batch(batch_size)
