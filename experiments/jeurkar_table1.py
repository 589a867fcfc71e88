"""Experiment 3: Jeurkar et al. (2024), Table 1's MNIST rows, as they ran them.

Two of the paper's models (``--model``):

* ``simple_cnn`` (the default): its SimpleCNN (conv 6 5x5, pool, conv 16 5x5,
  pool, 120-84-10; 44,426 parameters), 25 rounds (the largest "Round" of its
  SimpleCNN rows);
* ``jeurkar_resnet12``: its "ResNet12" (12 basic blocks; 17,443,530
  parameters; `tffprune.models.builders`), to its notebooks' horizons: 15
  rounds unstructured (and dense), 50 structured. The abstract's rows (dense,
  80% unstructured, 30% structured) run first.

Both with its code's settings (configs/jeurkar_simple_cnn.toml): FedAvg, SGD
lr 0.01 momentum 0.9, 1 local epoch, batch 32, central accuracy every round;
inputs normalized with mean 0.1307 and std 0.3081, each client's data split
90/10 train/validation. Pruning after local training every round at 0-90% in
steps of 10:

* unstructured: one global L1 magnitude threshold over every weight *and
  bias*, logits layer included (PyTorch ``global_unstructured`` over all
  parameters): ``--method global-weight --prune-logits --prune-biases``;
* structured: per layer, whole output channels (Conv2D filters, Dense units),
  logits layer included. The ResNet: ``--method layer-channel
  --prune-logits``, the paper's code's own rule (each kernel alone by L1
  norm, biases and BatchNorm whole; PyTorch ``ln_structured(n=1, dim=0)``).
  SimpleCNN's rows were run before that method existed, with ``--method
  channel --prune-logits`` (L2 norm, a cut channel's bias dropped too; no
  residual sums or BatchNorm there). Also run with the logits kept
  (``--keep-logits``, tffprune's default), to show what pruning whole classes
  does.

Two set-ups (``--setups``):

* ``as-run``: what the paper's code ran: ``start_simulation(num_clients=2)``
  with ``fraction_fit=1.0``, so the same 2 clients, each a random 1/100 of the
  training set (600 images), trained every round;
* ``as-described``: what its text says: 100 IID clients of 600 images, 2
  sampled per round.

Bytes per client per round, both directions, with tffprune's codec (float32
values) and as SciPy CSR matrices of every tensor (the paper's format, also
for the dense model and for the server's model sent back), beside the paper's
"Data Size (MB)" column. Fashion-MNIST (`--dataset mnist` where its files
exist; not on this machine).

Usage:
    uv run python experiments/jeurkar_table1.py                  # ~50 min on 2 cores
    uv run python experiments/jeurkar_table1.py --setups as-run  # ~30 min
    uv run python experiments/jeurkar_table1.py --model jeurkar_resnet12 --setups as-run
    uv run python experiments/jeurkar_table1.py --quick          # smoke test
    uv run python experiments/jeurkar_table1.py --markdown       # the README's tables
    uv run python experiments/plot.py                            # the figures

Writes experiments/results/jeurkar_table1.csv and jeurkar_table1_curves.csv
(``jeurkar_resnet12.csv`` and ``_curves.csv`` for the ResNet) as each run
ends. The script resumes: a row already in the results is skipped (``--rerun``
runs it again), and a run stopped part way continues from its checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from common import RESULTS, configuration

from tffprune.compression import baselines
from tffprune.config import TrainConfig
from tffprune.data import from_client_arrays, load_dataset
from tffprune.reporting.metrics import read_metrics_csv, write_metrics_csv
from tffprune.run import run_training
from tffprune.stopping import Interrupted, signal_name

# The paper's Table 1, MNIST rows, rates 0.0 .. 0.9: SimpleCNN, then ResNet12.
PAPER_SIMPLE_CNN = {
    "structured": dict(
        accuracy=(0.92, 0.93, 0.82, 0.73, 0.61, 0.56, 0.42, 0.34, 0.16, 0.11),
        megabytes=(0.35, 0.31, 0.28, 0.25, 0.21, 0.18, 0.15, 0.11, 0.08, 0.05),
        round=(20, 24, 24, 25, 22, 23, 23, 24, 14, 1),
    ),
    "unstructured": dict(
        accuracy=(0.93, 0.93, 0.93, 0.93, 0.93, 0.93, 0.91, 0.90, 0.87, 0.32),
        megabytes=(0.35, 0.32, 0.28, 0.25, 0.21, 0.18, 0.15, 0.11, 0.08, 0.05),
        round=(22, 20, 22, 25, 23, 23, 21, 25, 25, 25),
    ),
}
PAPER_RESNET12 = {
    "structured": dict(
        accuracy=(0.97, 0.98, 0.87, 0.78, 0.64, 0.57, 0.44, 0.36, 0.23, 0.11),
        megabytes=(
            155.74,
            141.51,
            126.13,
            109.48,
            94.24,
            77.12,
            61.22,
            56.46,
            41.73,
            32.01,
        ),
        round=(29, 41, 25, 48, 38, 38, 49, 41, 29, 1),
    ),
    "unstructured": dict(
        accuracy=(0.97, 0.97, 0.97, 0.97, 0.96, 0.97, 0.96, 0.97, 0.97, 0.49),
        megabytes=(
            155.74,
            142.44,
            129.14,
            115.84,
            102.55,
            89.25,
            75.95,
            62.65,
            49.35,
            36.06,
        ),
        round=(15, 14, 10, 15, 15, 15, 15, 15, 15, 14),
    ),
}
MODELS = ("simple_cnn", "jeurkar_resnet12")
PAPER = {"simple_cnn": PAPER_SIMPLE_CNN, "jeurkar_resnet12": PAPER_RESNET12}
# Rounds per pruning kind: the paper's notebooks' num_rounds.
HORIZON = {
    "simple_cnn": {"none": 25, "structured": 25, "unstructured": 25},
    "jeurkar_resnet12": {"none": 15, "structured": 50, "unstructured": 15},
}
# The abstract's rows, run first: (pruning, rate).
ABSTRACT = (("none", 0.0), ("unstructured", 0.8), ("structured", 0.3))
RATES = tuple(round(0.1 * step, 1) for step in range(10))
MIB = 2**20  # the unit of the paper's "MB" (its sizes match .npz bytes / 2**20)
MEAN, STD = 0.1307, 0.3081  # the paper's transforms.Normalize
SETUPS = ("as-run", "as-described")
# (pruning, scope) -> tffprune options
VARIANTS = {
    ("unstructured", "paper"): dict(
        method="global-weight", prune_logits=True, prune_biases=True
    ),
    ("structured", "paper"): dict(method="channel", prune_logits=True),
    ("structured", "logits kept"): dict(method="channel", prune_logits=False),
}
# The paper's 85% (SimpleCNN) and 95% (ResNet12) are for MNIST; see the
# README for the choice on Fashion-MNIST.
TARGET = {"simple_cnn": 0.70, "jeurkar_resnet12": 0.80}
# ``width``: the ResNet's width multiplier (1.0 for SimpleCNN, and for rows
# written before the column existed).
KEY = ("dataset", "setup", "pruning", "scope", "rate", "width")
TABLE = (
    *KEY,
    "rounds",
    "best_accuracy",
    "best_round",
    "final_accuracy",
    "target_round",
    "measured_sparsity",
    "upload_bytes",
    "upload_bytes_csr",
    "download_bytes",
    "download_bytes_csr",
    "upload_bytes_npz",
    "download_bytes_npz",
    "bytes_to_target",
    "npz_bytes_to_target",
    "paper_accuracy",
    "paper_megabytes",
    "paper_round",
)
CURVES = (*KEY, "round", "central_accuracy")


def federated_data(dataset_name: str, setup: str, seed: int, quick: bool):
    """The paper's clients: 600 training images each, inputs normalized."""
    dataset = load_dataset(dataset_name)
    x_train = (dataset.x_train - MEAN) / STD
    x_test = (dataset.x_test - MEAN) / STD
    if quick:
        x_test, y_test = x_test[:500], dataset.y_test[:500]
    else:
        y_test = dataset.y_test
    rng = np.random.default_rng(seed)
    order = rng.permutation(dataset.y_train.size)
    per_client = dataset.y_train.size // 100
    clients = 2 if setup == "as-run" else (10 if quick else 100)
    parts = {
        str(c): order[c * per_client : (c + 1) * per_client] for c in range(clients)
    }
    return from_client_arrays(
        {c: (x_train[i], dataset.y_train[i]) for c, i in parts.items()},
        test=(x_test, y_test),
        num_classes=dataset.num_classes,
        seed=seed,
        client_test_fraction=0.1,
    )


def variant(model: str, pruning: str, scope: str) -> dict:
    """The tffprune options of a (pruning, scope) for a model."""
    options = dict(VARIANTS[(pruning, scope)])
    if model != "simple_cnn" and options["method"] == "channel":
        options["method"] = "layer-channel"
    return options


def run_config(
    dataset: str,
    pruning: str,
    scope: str,
    rate: float,
    num_clients: int,
    rounds: int = 25,
    seed: int = 0,
    model: str = "simple_cnn",
    width_multiplier: float = 1.0,
) -> TrainConfig:
    """One run's configuration (its data: `federated_data`)."""
    options = dict(
        dataset=dataset,
        num_clients=num_clients,
        rounds=rounds,
        seed=seed,
        model=model,
        width_multiplier=width_multiplier,
    )
    if pruning == "none":
        options.update(method="none", sparsity=0.0)
    else:
        options.update(variant(model, pruning, scope), sparsity=rate)
    return configuration("jeurkar_simple_cnn", **options)


def model_tensors(config: TrainConfig, data) -> tuple[list[tuple[int, ...]], int]:
    """The model's weights' shapes (every one is sent) and its BatchNorm layers."""
    from tffprune.models import build_model

    model = build_model(
        config.model,
        data.dataset.input_shape,
        data.dataset.num_classes,
        **config.model_options,
    )
    batch_norms = sum(
        isinstance(layer, tf.keras.layers.BatchNormalization) for layer in model.layers
    )
    return [tuple(w.shape) for w in model.weights], batch_norms


def plan(setups, quick: bool, model: str) -> list[tuple[str, str, str, float]]:
    """(setup, pruning, scope, rate) of every run; rate 0 once per setup.

    For the ResNet the abstract's rows come first (`ABSTRACT`; ``quick``: only
    those), then the rest by rate.
    """
    runs = []
    for setup in setups:
        runs.append((setup, "none", "paper", 0.0))
        for rate in RATES[1:]:
            for pruning, scope in VARIANTS:
                if setup == "as-described" and scope != "paper":
                    continue
                runs.append((setup, pruning, scope, rate))
    if model != "simple_cnn":

        def first(run: tuple) -> bool:
            return (run[1], run[3]) in ABSTRACT and run[2] == "paper"

        abstract = sorted(filter(first, runs), key=lambda r: ABSTRACT.index(r[1::2]))
        runs = abstract + [r for r in runs if not first(r)]
        return runs[:3] if quick else runs
    if quick:
        runs = [r for r in runs if r[3] in (0.0, 0.5)][:3]
    return runs


def width(row: dict) -> float:
    """A row's width multiplier (1.0 where the row has none)."""
    return float(row.get("width") or 1.0)


def _row_key(row: dict) -> tuple:
    return tuple(
        float(row[k]) if k == "rate" else width(row) if k == "width" else str(row[k])
        for k in KEY
    )


def _order(row: dict) -> tuple:
    return (
        row["dataset"],
        SETUPS.index(row["setup"]),
        ("none", "structured", "unstructured").index(row["pruning"]),
        row["scope"],
        float(row["rate"]),
        -width(row),
        int(row.get("round", 0)),
    )


def _kept_rows(path: Path, replaced: set[tuple]) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if _row_key(row) not in replaced]


def summarize(
    rows: list[dict],
    key: dict,
    clients_per_round: int,
    tensors: tuple[list[tuple[int, ...]], int],
    model: str = "simple_cnn",
) -> dict:
    """One table row from a run's metrics rows.

    Bytes are per client per round, but ``*to_target``: every byte of both
    directions until the round that first reached the model's `TARGET` (empty
    if none).
    ``*_npz``: what the paper's code sends for the same message
    (`baselines.jeurkar_message_bytes`; ``tensors``: `model_tensors`).
    """
    evaluated = [r for r in rows if r["central_accuracy"] is not None]
    best = max(evaluated, key=lambda r: r["central_accuracy"])  # first of ties
    reached = [r for r in evaluated if r["central_accuracy"] >= TARGET[model]]
    per_client_round = len(rows) * clients_per_round

    def mean_bytes(column: str) -> int:
        return round(sum(r[column] for r in rows) / per_client_round)

    # What the paper's files add to tffprune's CSR count (affine in it).
    files = baselines.jeurkar_message_bytes(*tensors, 0.0)
    until = rows[: int(reached[0]["round"])] if reached else []
    to_target = int(sum(r["upload_bytes"] + r["download_bytes"] for r in until))
    npz_to_target = int(
        sum(r["upload_bytes_csr"] + r["download_bytes_csr"] for r in until)
        + len(until) * 2 * clients_per_round * files
    )
    pruning = key["pruning"]
    paper = PAPER[model]["unstructured" if pruning == "none" else pruning]
    rate_index = RATES.index(key["rate"])
    return dict(
        key,
        rounds=len(rows),
        best_accuracy=round(best["central_accuracy"], 4),
        best_round=int(best["round"]),
        final_accuracy=round(evaluated[-1]["central_accuracy"], 4),
        target_round=int(reached[0]["round"]) if reached else "",
        measured_sparsity=round(rows[-1]["sparsity"], 4),
        upload_bytes=mean_bytes("upload_bytes"),
        upload_bytes_csr=mean_bytes("upload_bytes_csr"),
        download_bytes=mean_bytes("download_bytes"),
        download_bytes_csr=mean_bytes("download_bytes_csr"),
        upload_bytes_npz=mean_bytes("upload_bytes_csr") + files,
        download_bytes_npz=mean_bytes("download_bytes_csr") + files,
        bytes_to_target=to_target if reached else "",
        npz_bytes_to_target=npz_to_target if reached else "",
        paper_accuracy=paper["accuracy"][rate_index],
        paper_megabytes=paper["megabytes"][rate_index],
        paper_round=paper["round"][rate_index],
    )


def markdown(rows: list[dict], setup: str, model: str = "simple_cnn") -> list[str]:
    """Table 1 beside ours for one set-up: the README's table."""

    def find(pruning: str, scope: str, rate: float) -> dict | None:
        """The row at full width, else the widest one run."""
        found = [
            row
            for row in rows
            if (row["setup"], float(row["rate"])) == (setup, rate)
            and (
                row["pruning"] == "none"
                or (row["pruning"], row["scope"]) == (pruning, scope)
            )
        ]
        return max(found, key=width, default=None)

    def accuracy(row: dict | None) -> str:
        if row is None:
            return "-"
        text = f"{float(row['best_accuracy']):.2f} ({row['best_round']})"
        return text if width(row) == 1.0 else f"{text} at width {width(row):g}"

    def megabytes(row: dict | None, column: str, unit: float = 1e6) -> str:
        return "-" if row is None else f"{int(row[column]) / unit:.3f}"

    lines = [
        "| rate | unstructured: paper (round) | ours (round) "
        "| structured: paper (round) | ours, logits pruned | ours, logits kept "
        "| paper's Data Size | CSR .npz up, MiB | ours up, MiB "
        "| CSR .npz down, MiB | ours down, MiB |",
        "|" + "---|" * 11,
    ]
    for index, rate in enumerate(RATES):
        unstructured = find("unstructured", "paper", rate)
        structured = find("structured", "paper", rate)
        kept = find("structured", "logits kept", rate)
        if unstructured is None and structured is None:
            continue
        paper_u, paper_s = PAPER[model]["unstructured"], PAPER[model]["structured"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{rate:.0%}",
                    f"{paper_u['accuracy'][index]:.2f} ({paper_u['round'][index]})",
                    accuracy(unstructured),
                    f"{paper_s['accuracy'][index]:.2f} ({paper_s['round'][index]})",
                    accuracy(structured),
                    accuracy(kept) if rate > 0 else "",
                    f"{paper_u['megabytes'][index]:.2f}",
                    megabytes(unstructured, "upload_bytes_npz", MIB),
                    megabytes(unstructured, "upload_bytes", MIB),
                    megabytes(unstructured, "download_bytes_npz", MIB),
                    megabytes(unstructured, "download_bytes", MIB),
                ]
            )
            + " |"
        )
    return lines


def result_paths(results: Path, model: str) -> tuple[Path, Path]:
    """The table and curves files of a model's rows."""
    stem = "jeurkar_table1" if model == "simple_cnn" else model
    return results / f"{stem}.csv", results / f"{stem}_curves.csv"


def _train(config: TrainConfig, directory: Path, data) -> None:
    """Trains one row, continuing a run stopped part way (its checkpoint)."""
    partial = (directory / "checkpoint.npz").is_file() and not (
        directory / "summary.json"
    ).is_file()
    run_training(
        config,
        directory,
        resume=partial,
        overwrite=not partial,
        progress=False,
        data=data,
    )


def _parse_row(text: str) -> tuple[str, float]:
    """``pruning:rate`` (``unstructured:0.5``) as ``("unstructured", 0.5)``."""
    pruning, _, rate = text.partition(":")
    if pruning not in ("none", "structured", "unstructured") or not rate:
        raise SystemExit(
            f"--rows takes PRUNING:RATE (e.g. unstructured:0.5), got {text}"
        )
    return pruning, float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 3 runs")
    parser.add_argument("--model", choices=MODELS, default="simple_cnn")
    parser.add_argument(
        "--rounds", type=int, help="every row's rounds (default: the paper's)"
    )
    parser.add_argument(
        "--width-multiplier",
        type=float,
        help="the ResNet's widths (default 1.0; --quick: 0.125)",
    )
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=SETUPS)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/jeurkar_table1"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--rerun", action="store_true", help="run rows the results already hold"
    )
    parser.add_argument(
        "--max-runs", type=int, help="stop after this many rows (the plan's order)"
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="PRUNING:RATE",
        help="only these rows, e.g. unstructured:0.5 structured:0.3 none:0",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the README's tables from the results file and stop",
    )
    arguments = parser.parse_args()
    model = arguments.model
    if model == "simple_cnn" and arguments.width_multiplier:
        parser.error("--width-multiplier is the ResNet's; SimpleCNN has one width")
    multiplier = 1.0
    if model != "simple_cnn":
        multiplier = arguments.width_multiplier or (0.125 if arguments.quick else 1.0)
    table_path, curves_path = result_paths(arguments.results, model)
    if arguments.markdown:
        committed = _kept_rows(table_path, set())
        for setup in arguments.setups:
            print(f"\n{setup}:\n" + "\n".join(markdown(committed, setup, model)))
        return
    runs = plan(arguments.setups, arguments.quick, model)
    done = {_row_key(row) for row in _kept_rows(table_path, set())}
    if not arguments.rerun:
        runs = [
            run
            for run in runs
            if (arguments.dataset, *run[:3], run[3], multiplier) not in done
        ]
    if arguments.rows:
        wanted = {_parse_row(text) for text in arguments.rows}
        runs = [run for run in runs if (run[1], run[3]) in wanted]
    runs = runs[: arguments.max_runs]
    data = {
        setup: federated_data(arguments.dataset, setup, arguments.seed, arguments.quick)
        for setup in {run[0] for run in runs}
    }
    for setup, pruning, scope, rate in runs:
        rounds = arguments.rounds or HORIZON[model][pruning]
        config = run_config(
            arguments.dataset,
            pruning,
            scope,
            rate,
            data[setup].num_clients,
            2 if arguments.quick else rounds,
            arguments.seed,
            model,
            multiplier,
        )
        prefix = "" if model == "simple_cnn" else f"{model}_"
        name = f"{prefix}{setup}_{pruning}_{scope.replace(' ', '_')}_{rate:g}"
        if multiplier != 1.0:
            name += f"_width_{multiplier:g}"
        print(f"== {name}", flush=True)
        _train(config, arguments.output_dir / name, data[setup])
        rows = read_metrics_csv(arguments.output_dir / name / "metrics.csv")
        key = dict(
            dataset=arguments.dataset,
            setup=setup,
            pruning=pruning,
            scope=scope,
            rate=rate,
            width=multiplier,
        )
        row = summarize(rows, key, 2, model_tensors(config, data[setup]), model)
        curves = [
            dict(key, round=int(r["round"]), central_accuracy=r["central_accuracy"])
            for r in rows
            if r["central_accuracy"] is not None
        ]
        print(row, flush=True)
        # Each finished row is written at once, replacing an older one.
        replaced = {_row_key(row)}
        write_metrics_csv(
            table_path,
            sorted(_kept_rows(table_path, replaced) + [row], key=_order),
            TABLE,
        )
        write_metrics_csv(
            curves_path,
            sorted(_kept_rows(curves_path, replaced) + curves, key=_order),
            CURVES,
        )
    print(f"wrote {table_path}" if runs else f"{table_path} holds every row")


if __name__ == "__main__":
    try:
        main()
    except Interrupted as stop:
        what = str(stop) or f"{signal_name(stop.signal_number)}: stopped"
        print(f"{what}; run the same command again to continue", file=sys.stderr)
        sys.exit(128 + stop.signal_number)
