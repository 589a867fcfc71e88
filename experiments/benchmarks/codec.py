"""Upload codec benchmark: sizes and speed.

Sizes against the information bound, SciPy CSR and dense float32, and
encode+decode time against one epoch of client training.

Usage:
    uv run python experiments/benchmarks/codec.py [--repeats 5]

Prints one table; targets (issue: upload encoding):
  * fc at 90% weight sparsity, int8 values (int4, int2, int1 printed too):
    within 1.15x of the bound over the pruned tensors, and >= 20x smaller
    than dense float32 for the whole update;
  * at low sparsity never more than dense float32;
  * encode + decode well under one epoch of the client's training.
"""

from __future__ import annotations

import argparse
import statistics
import time

import tensorflow as tf

from tffprune.compression import baselines, decode, encode
from tffprune.data import build_federated_data, load_dataset
from tffprune.data.pipeline import batched_dataset
from tffprune.fl.client import build_client_train_fn
from tffprune.learning.optimizers import build_optimizer
from tffprune.models import build_model
from tffprune.pruning import PruningPolicy, build_masks


def fc_update(sparsity: float, seed: int = 0):
    model = build_model("fc", (28, 28, 1), 10, seed=seed)
    weights = [w.numpy() for w in model.trainable_weights]
    targets = PruningPolicy().select(model)
    masks = build_masks(weights, targets, "weight", sparsity)
    pruned_indices = [t.index for t in targets]
    return model, weights, masks, pruned_indices


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()

    print("fc (2,388,710 parameters), weight pruning of all kernels but the logits")
    print(
        f"{'sparsity':>8} {'values':>7} {'bytes':>10} {'dense/ours':>10} "
        f"{'csr/ours':>8} {'bound':>6} {'bound(pruned)':>13}"
    )
    rows = []
    for sparsity in (0.0, 0.01, 0.05, 0.1, 0.5, 0.8, 0.9, 0.95, 0.99):
        model, weights, masks, pruned = fc_update(sparsity)
        dense = 4 * sum(w.size for w in weights)
        csr = baselines.csr_bytes(masks)
        for value_format in ("float32", "int8", "int4", "int2", "int1"):
            payload = encode(weights, masks, value_format)
            whole_bound = baselines.information_bound_bits(masks, value_format) / 8
            pruned_payload = encode(
                [weights[i] for i in pruned], [masks[i] for i in pruned], value_format
            )
            pruned_bound = (
                baselines.information_bound_bits(
                    [masks[i] for i in pruned], value_format
                )
                / 8
            )
            rows.append((sparsity, value_format, len(payload), dense))
            print(
                f"{sparsity:>8.2f} {value_format:>7} {len(payload):>10,} "
                f"{dense / len(payload):>10.2f} {csr / len(payload):>8.2f} "
                f"{len(payload) / whole_bound:>6.3f} "
                f"{len(pruned_payload) / pruned_bound:>13.3f}"
            )
    never_larger = all(
        size <= dense + 200
        for _, value_format, size, dense in rows
        if value_format == "float32"
    )
    print(f"float32 payload never more than dense (+ headers): {never_larger}")

    # Time: encode + decode of a 90%/int8 update vs one epoch of client training.
    _, weights, masks, _ = fc_update(0.9)
    codec_seconds = []
    for _ in range(arguments.repeats):
        started = time.perf_counter()
        decode(encode(weights, masks, "int8"))
        codec_seconds.append(time.perf_counter() - started)
    data = build_federated_data(load_dataset("fashion_mnist"), 100, "iid", seed=0)
    images, labels = data.client_train(0)
    train = build_client_train_fn(
        lambda: build_model("fc", (28, 28, 1), 10), build_optimizer("sgdm", 0.05, 0.5)
    )
    float_masks = [tf.constant(m, tf.float32) for m in masks]
    tensors = [tf.constant(w) for w in weights]
    train(tensors, [], float_masks, batched_dataset(images, labels, 32))  # trace
    train_seconds = []
    for _ in range(arguments.repeats):
        started = time.perf_counter()
        train(
            tensors,
            [],
            float_masks,
            batched_dataset(images, labels, 32, shuffle_seed=1),
        )
        train_seconds.append(time.perf_counter() - started)
    codec, epoch = statistics.median(codec_seconds), statistics.median(train_seconds)
    print(
        f"encode+decode (90%, int8) median {codec * 1000:.1f} ms; one epoch of client "
        f"training ({labels.size} examples, batch 32) median {epoch * 1000:.1f} ms; "
        f"ratio {codec / epoch:.3f}"
    )


if __name__ == "__main__":
    main()
