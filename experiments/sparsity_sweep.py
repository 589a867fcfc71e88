"""Experiment 1: Singh & Raj's sparsity sweep, weight vs unit pruning.

`fc` (784-1000-1000-500-200-10) at sparsities 0.25 ... 0.99, trained
federated with Sub-FedAvg (IID, 100 clients, 10 per round) and, for reference,
centralized with tfmot (prune a trained network). Per sparsity and method:
accuracy, zipped Keras size, TFLite (dynamic range) size, upload bytes per
round.

Usage:
    uv run python experiments/sparsity_sweep.py                 # about 50 min
    uv run python experiments/sparsity_sweep.py --quick         # 1 round, smoke test
    uv run python experiments/sparsity_sweep.py --only centralized --seed 1 \
        --output experiments/results/seeds/sparsity_sweep_centralized_seed1.csv
    uv run python experiments/plot.py                           # figures from the CSV

Writes experiments/results/sparsity_sweep_<dataset>.csv (one row per
setting, appended as each finishes, so an interrupted sweep keeps its rows).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np

from tffprune.config import TrainConfig
from tffprune.data import load_dataset
from tffprune.export import sizes, tflite
from tffprune.models import build_model
from tffprune.pruning import PruningPolicy, prune_model
from tffprune.pruning.centralized import prune_trained, train_dense
from tffprune.run import run_training

SPARSITIES = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
METHODS = ("weight", "unit")
COLUMNS = (
    "setting",
    "method",
    "sparsity",
    "measured_sparsity",
    "accuracy",
    "accuracy_before_global_prune",
    "keras_zipped_bytes",
    "tflite_dynamic_bytes",
    "tflite_dynamic_zipped_bytes",
    "upload_bytes_per_round",
    "upload_bytes_dense_per_round",
    "rounds",
    "epochs",
)


def model_sizes(model) -> dict:
    _, zipped = sizes.keras_zipped_size(model)
    model_bytes = tflite.convert(model, "dynamic")
    return {
        "keras_zipped_bytes": zipped,
        "tflite_dynamic_bytes": len(model_bytes),
        "tflite_dynamic_zipped_bytes": sizes.zipped_bytes_size(model_bytes),
    }


def append(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(row, flush=True)


def federated_config(
    dataset: str, method: str, sparsity: float, rounds: int, quick: bool = False
) -> TrainConfig:
    """The federated runs' settings: Sub-FedAvg, IID, 100 clients, 10 per round."""
    return TrainConfig(
        dataset=dataset,
        model="fc",
        method=method,
        sparsity=sparsity,
        aggregation="subfedavg",
        partition="iid",
        num_clients=100,
        clients_per_round=10,
        rounds=rounds,
        eval_every=rounds,
        client_learning_rate=0.1,
        client_momentum=0.5,
        max_examples=4000 if quick else None,
    )


def federated(args, data, method, sparsity, output: Path) -> None:
    config = federated_config(
        data.name, method, sparsity, args.rounds, args.quick
    ).replace(seed=args.seed)
    with tempfile.TemporaryDirectory() as directory:
        summary = run_training(config, Path(directory) / "run", progress=False)
        import tensorflow as tf

        model = tf.keras.models.load_model(
            Path(directory) / "run" / "global_model.keras"
        )
    # The exported global model is already pruned to the target (the run's
    # central model); pruning again with the same method changes nothing and
    # keeps this script correct for runs that export unpruned weights.
    prune_model(model, method, sparsity)
    logits = model.predict(data.x_test, batch_size=1024, verbose=0)
    pruned_accuracy = float(np.mean(np.argmax(logits, axis=1) == data.y_test))
    append(
        output,
        {
            "setting": "federated",
            "method": method,
            "sparsity": sparsity,
            "measured_sparsity": round(summary["final"]["sparsity"], 4),
            "accuracy": round(pruned_accuracy, 4),
            "accuracy_before_global_prune": round(
                summary["final"]["central_accuracy_unpruned"], 4
            ),
            **model_sizes(model),
            "upload_bytes_per_round": round(
                summary["total_upload_bytes"] / args.rounds
            ),
            "upload_bytes_dense_per_round": round(
                summary["total_upload_bytes_dense"] / args.rounds
            ),
            "rounds": args.rounds,
            "epochs": "",
        },
    )


def centralized(args, data, baseline, method, sparsity, output: Path) -> None:
    x, y = data.x_train, data.y_train
    if args.quick:
        x, y = x[:4000], y[:4000]
    if method == "weight":
        result = prune_trained(
            baseline,
            x,
            y,
            data.x_test,
            data.y_test,
            sparsity,
            epochs=args.fine_tune_epochs,
            policy=PruningPolicy(),
        )
        model, accuracy = result.model, result.test_accuracy
        measured = result.sparsity.prunable_sparsity
    else:
        # tfmot has no unit pruning: prune whole units by column norm, then
        # fine-tune with the masks held (same loop as the federated clients).
        import tensorflow as tf

        from tffprune.pruning.centralized import compile_for_classification

        model = tf.keras.models.clone_model(baseline)
        model.set_weights(baseline.get_weights())
        masks = prune_model(model, "unit", sparsity)
        compile_for_classification(model, 1e-3)
        mask_constants = [tf.constant(m, tf.float32) for m in masks]

        class HoldMasks(tf.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                for variable, mask in zip(
                    model.trainable_weights, mask_constants, strict=True
                ):
                    variable.assign(variable * mask)

        model.fit(
            x,
            y,
            epochs=args.fine_tune_epochs,
            batch_size=128,
            verbose=0,
            callbacks=[HoldMasks()],
        )
        accuracy = float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])
        from tffprune.pruning import model_sparsity

        measured = model_sparsity(model).prunable_sparsity
    append(
        output,
        {
            "setting": "centralized",
            "method": method,
            "sparsity": sparsity,
            "measured_sparsity": round(measured, 4),
            "accuracy": round(accuracy, 4),
            **model_sizes(model),
            "upload_bytes_per_round": "",
            "upload_bytes_dense_per_round": "",
            "rounds": "",
            "epochs": args.fine_tune_epochs,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--only", choices=("federated", "centralized"), default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="initial weights, batch order and client split (committed: 0)",
    )
    args = parser.parse_args()
    sparsities = (0.5, 0.9) if args.quick else SPARSITIES
    if args.quick:
        args.rounds, args.fine_tune_epochs = 1, 1
    output = args.output or Path(
        f"experiments/results/sparsity_sweep_{args.dataset}.csv"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset)
    if args.only in (None, "centralized"):
        x, y = (
            (data.x_train[:4000], data.y_train[:4000])
            if args.quick
            else (data.x_train, data.y_train)
        )
        baseline = train_dense(
            build_model("fc", data.input_shape, 10, seed=args.seed),
            x,
            y,
            data.x_test,
            data.y_test,
            epochs=1 if args.quick else 4,
        )
        append(
            output,
            {
                "setting": "centralized",
                "method": "dense",
                "sparsity": 0.0,
                "measured_sparsity": 0.0,
                "accuracy": round(baseline.test_accuracy, 4),
                **model_sizes(baseline.model),
                "upload_bytes_per_round": "",
                "upload_bytes_dense_per_round": "",
                "rounds": "",
                "epochs": 1 if args.quick else 4,
            },
        )
        for method in METHODS:
            for sparsity in sparsities:
                centralized(args, data, baseline.model, method, sparsity, output)
    if args.only in (None, "federated"):
        for method in METHODS:
            for sparsity in sparsities:
                federated(args, data, method, sparsity, output)


if __name__ == "__main__":
    main()
