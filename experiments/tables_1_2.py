"""Singh & Raj (2023) Tables 1 and 2, reproduced with `tfmot_cnn`.

Table 1: zipped Keras model bytes and accuracy of the dense baseline, "prune a
trained network" and "prune from scratch". Table 2: the same models converted
to TFLite with quantization. The paper's numbers match the tfmot pruning
tutorial's small CNN (Conv2D 12 3x3 -> MaxPool -> Dense 10, 20,410 parameters),
so that is the model used here; the whole model is pruned, logits included, as
in the tutorial.

Usage:
    uv run python experiments/tables_1_2.py [--dataset fashion_mnist] [--quick]
    uv run python experiments/tables_1_2.py --seed 1 \
        --output experiments/results/seeds/tables_1_2_fashion_mnist_seed1.csv

Writes experiments/results/tables_1_2_<dataset>.csv and prints a Markdown table
with the paper's numbers beside ours.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from tffprune.data import load_dataset
from tffprune.export import sizes, tflite, verify
from tffprune.models import build_model
from tffprune.pruning import PruningPolicy
from tffprune.pruning.centralized import prune_trained, train_dense, train_from_scratch

# Paper (MNIST): zipped Keras bytes, accuracy; TFLite (zipped) bytes, accuracy.
PAPER = {
    "baseline": (78039, 0.9802, 17820, 0.9807),
    "prune-trained": (48338, 0.9802, 13430, 0.9806),
    "from-scratch": (48883, 0.9700, 13224, 0.9704),
}


def measure(name, model, data, representative):
    keras_raw, keras_zipped = sizes.keras_zipped_size(model)
    row = {
        "workflow": name,
        "keras_bytes": keras_raw,
        "keras_zipped_bytes": keras_zipped,
    }
    logits = model.predict(data.x_test, batch_size=1024, verbose=0)
    row["keras_accuracy"] = verify.accuracy(logits, data.y_test)
    for mode in ("dynamic", "int8"):
        model_bytes = tflite.convert(model, mode, representative_images=representative)
        row[f"tflite_{mode}_bytes"] = len(model_bytes)
        row[f"tflite_{mode}_zipped_bytes"] = sizes.zipped_bytes_size(model_bytes)
        row[f"tflite_{mode}_accuracy"] = verify.accuracy(
            verify.tflite_outputs(model_bytes, data.x_test), data.y_test
        )
    return row


def _beside(ours: float, paper: float | None, form: str) -> str:
    """Our value, with the paper's in parentheses when it has one."""
    return format(ours, form) + ("" if paper is None else f" ({paper:{form}})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5,000 examples, 1 epoch")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="initial weights and batch order (committed: 0)",
    )
    arguments = parser.parse_args()
    data = load_dataset(arguments.dataset)
    x, y = data.x_train, data.y_train
    epochs, fine_tune = arguments.epochs, arguments.fine_tune_epochs
    if arguments.quick:
        x, y, epochs, fine_tune = x[:5000], y[:5000], 1, 1
    representative = x[:300]
    policy = PruningPolicy(prune_logits=True)

    shape = data.input_shape
    baseline = train_dense(
        build_model("tfmot_cnn", shape, 10, seed=arguments.seed),
        x,
        y,
        data.x_test,
        data.y_test,
        epochs=epochs,
    )
    rows = [
        {"sparsity": 0.0, **measure("baseline", baseline.model, data, representative)}
    ]
    for sparsity in arguments.sparsities:
        trained = prune_trained(
            baseline.model,
            x,
            y,
            data.x_test,
            data.y_test,
            sparsity,
            epochs=fine_tune,
            policy=policy,
        )
        scratch = train_from_scratch(
            build_model("tfmot_cnn", shape, 10, seed=arguments.seed),
            x,
            y,
            data.x_test,
            data.y_test,
            sparsity,
            epochs=epochs,
            policy=policy,
        )
        for name, result in (("prune-trained", trained), ("from-scratch", scratch)):
            row = measure(name, result.model, data, representative)
            rows.append({"sparsity": round(result.sparsity.overall_sparsity, 4), **row})

    output = arguments.output or Path(
        f"experiments/results/tables_1_2_{arguments.dataset}.csv"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {output}\n")
    print(
        "| workflow | sparsity | Keras zipped (paper) | Keras acc. (paper) | "
        "TFLite dynamic zipped (paper) | TFLite dyn. acc. (paper) | TFLite dynamic "
        "raw | TFLite int8 raw / zipped | int8 acc. |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        # The paper's tables are the dense model and 50% sparsity only.
        in_paper = row["workflow"] == "baseline" or abs(row["sparsity"] - 0.5) < 0.01
        paper = PAPER[row["workflow"]] if in_paper else (None,) * 4
        print(
            f"| {row['workflow']} | {row['sparsity']:.2f} "
            f"| {_beside(row['keras_zipped_bytes'], paper[0], ',')} "
            f"| {_beside(row['keras_accuracy'], paper[1], '.4f')} "
            f"| {_beside(row['tflite_dynamic_zipped_bytes'], paper[2], ',')} "
            f"| {_beside(row['tflite_dynamic_accuracy'], paper[3], '.4f')} "
            f"| {row['tflite_dynamic_bytes']:,} "
            f"| {row['tflite_int8_bytes']:,} / {row['tflite_int8_zipped_bytes']:,} "
            f"| {row['tflite_int8_accuracy']:.4f} |"
        )


if __name__ == "__main__":
    main()
