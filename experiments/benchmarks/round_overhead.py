"""What a federated round costs beyond the training inside it.

Times, in one process, the same rounds three ways and prints median seconds per
round (after warm-up) and ratios:

* plain TensorFlow: the same clients' training (`build_client_train_fn`, the
  same batches and SGD-momentum) called directly, and FedAvg in NumPy;
* tffprune `fedavg` (dense) on the TFF runtime;
* tffprune `subfedavg` with 50% pruning and int8 uploads, for each pruning
  method (weight, global-weight, unit, channel, hybrid): every method runs
  inside the round's one TFF computation.

The rounds after warm-up must not retrace any client function: the counts
of traces (`tffprune.fl.client.TRACES`) before and after them are printed.

Usage:
    uv run python experiments/benchmarks/round_overhead.py [--models fc lenet5]
        [--methods weight unit] [--rounds 5] [--warmup 2]

Targets: fedavg / plain <= 1.15, subfedavg / plain <= 1.25 for every method.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.aggregation import fedavg
from tffprune.fl.client import TRACES, build_client_train_fn
from tffprune.fl.runtime import LocalRuntime
from tffprune.fl.training import Trainer
from tffprune.learning.optimizers import build_optimizer


def plain_round_seconds(trainer: Trainer, rounds: int, warmup: int) -> float:
    """Plain TF: same sampled clients and batches, NumPy FedAvg."""
    config = trainer.config
    train = build_client_train_fn(
        trainer.model_fn,
        build_optimizer(
            config.client_optimizer, config.client_learning_rate, config.client_momentum
        ),
    )
    weights = list(trainer.state.server_weights)
    ones = [
        tf.constant(np.ones(s, np.float32))
        for s in trainer.shapes[: trainer.num_trainable]
    ]
    rng = np.random.default_rng(config.seed)
    seconds = []
    for round_number in range(warmup + rounds):
        if round_number == warmup:
            traced = sum(TRACES.values())
        started = time.perf_counter()
        sampled = np.sort(
            rng.choice(config.num_clients, config.clients_per_round, False)
        )
        results, counts = [], []
        for client in sampled:
            dataset = trainer._client_dataset(int(client), round_number)
            trainable, non_trainable, count, _ = train(
                [tf.constant(w) for w in weights[: trainer.num_trainable]],
                [tf.constant(w) for w in weights[trainer.num_trainable :]],
                ones,
                dataset,
            )
            results.append(
                [w.numpy() for w in trainable] + [w.numpy() for w in non_trainable]
            )
            counts.append(int(count))
        weights = fedavg(weights, results, counts)
        if round_number >= warmup:
            seconds.append(time.perf_counter() - started)
    _check_no_retracing(traced)
    return statistics.median(seconds)


def _check_no_retracing(traced_before: int) -> None:
    retraced = sum(TRACES.values()) - traced_before
    if retraced:
        raise SystemExit(f"client functions retraced {retraced} times after warm-up")


def tffprune_round_seconds(
    config: TrainConfig, data, rounds: int, warmup: int
) -> float:
    trainer = Trainer(config, data)
    seconds = []
    for index in range(warmup + rounds):
        if index == warmup:
            traced = sum(TRACES.values())
        started = time.perf_counter()
        trainer.run_round()
        if index >= warmup:
            seconds.append(time.perf_counter() - started)
    _check_no_retracing(traced)
    return statistics.median(seconds)


def measure(model: str, methods: list[str], data, rounds: int, warmup: int) -> None:
    common = dict(
        model=model,
        num_clients=100,
        clients_per_round=10,
        rounds=10_000,
        eval_every=10_000,
        batch_size=32,
    )
    dense = TrainConfig(**common, aggregation="fedavg", method="none")
    print(
        f"{model}, 10 clients x 480 examples, 1 epoch, batch 32; median of "
        f"{rounds} rounds after {warmup} warm-up",
        flush=True,
    )
    plain = plain_round_seconds(Trainer(dense, data), rounds, warmup)
    _report("plain TensorFlow + NumPy FedAvg", plain, plain)
    _report(
        "tffprune fedavg (TFF)",
        tffprune_round_seconds(dense, data, rounds, warmup),
        plain,
    )
    for method in methods:
        pruned = TrainConfig(
            **common,
            aggregation="subfedavg",
            method=method,
            sparsity=0.5,
            upload_values="int8",
        )
        _report(
            f"tffprune subfedavg {method} 50% int8",
            tffprune_round_seconds(pruned, data, rounds, warmup),
            plain,
        )


def _report(name: str, seconds: float, plain: float) -> None:
    print(f"{name:<44} {seconds:6.2f} s/round  {seconds / plain:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fc", "lenet5"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["weight", "global-weight", "unit", "channel", "hybrid"],
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    arguments = parser.parse_args()
    data = build_federated_data(load_dataset("fashion_mnist"), 100, "iid", seed=0)
    with LocalRuntime():
        for model in arguments.models:
            measure(model, arguments.methods, data, arguments.rounds, arguments.warmup)
    print(f"client function traces in total: {dict(TRACES)}")


if __name__ == "__main__":
    main()
