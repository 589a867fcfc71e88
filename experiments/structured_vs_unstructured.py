"""Experiment 3b: ResNet-12, structured vs unstructured client pruning.

Jeurkar et al. (2024)'s ResNet-12 on Fashion-MNIST at a quarter of its widths
(configs/resnet12_small.toml, so that it finishes on 2 cores; full scale:
--resnet-width 1.0, 8.0 M parameters, hours on 2 cores): 100 IID clients, 2
per round, 1 local epoch, SGD lr 0.01 momentum 0.9, FedAvg with client
pruning: channel (structured, per layer: whole output filters of each Conv2D
kernel by L2 norm, logits kept) vs global weight (unstructured: one magnitude
threshold over every kernel but the logits) at 0, 50 and 90%. Per setting:
accuracy vs rounds, the first evaluated round reaching 0.80, and upload bytes
per round with tffprune's codec and as SciPy CSR matrices. The paper's
SimpleCNN rows, with its own settings and pruning scope, are
jeurkar_table1.py's.

Usage:
    uv run python experiments/structured_vs_unstructured.py           # ~20 min
    uv run python experiments/structured_vs_unstructured.py --quick   # smoke test

Writes experiments/results/structured_vs_unstructured.csv and
structured_vs_unstructured_curves.csv after every run. A run replaces the
rows (and curve points) of the settings it ran and keeps every other row.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from common import RESULTS, configuration

from tffprune.reporting.metrics import read_metrics_csv, write_metrics_csv
from tffprune.run import run_training

TARGET = 0.80
RESNET_SPARSITIES = (0.0, 0.5, 0.9)
MODELS = ("resnet12",)
METHODS = ("none", "channel", "global-weight")
TABLE = (
    "model",
    "method",
    "sparsity",
    "rounds",
    "final_accuracy",
    "target_round",
    "upload_bytes_per_round",
    "upload_bytes_csr_per_round",
    "upload_bytes_dense_per_round",
    "measured_sparsity",
)
CURVES = ("model", "method", "sparsity", "round", "central_accuracy")


def settings(model: str, sparsity: float, rounds: int, quick: bool, width: float):
    points = []
    methods = ("channel", "global-weight") if sparsity > 0 else ("none",)
    for method in methods:
        overrides = dict(method=method, sparsity=sparsity, rounds=rounds)
        overrides["width_multiplier"] = width
        config = configuration("resnet12_small", quick=quick, **overrides)
        points.append((method, config.replace(eval_every=1 if quick else 5)))
    return points


def _setting(row: dict) -> tuple[str, str, float]:
    return row["model"], row["method"], float(row["sparsity"])


def _order(row: dict) -> tuple[int, float, int, int]:
    """By model, sparsity, method and round."""
    return (
        MODELS.index(row["model"]),
        float(row["sparsity"]),
        METHODS.index(row["method"]),
        int(row.get("round", 0)),
    )


def _kept_rows(path: Path, replaced: set[tuple[str, str, float]]) -> list[dict]:
    """The rows of an existing results file whose setting is not being rerun."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if _setting(row) not in replaced]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 2 settings")
    parser.add_argument("--resnet-rounds", type=int, default=60)
    parser.add_argument("--resnet-width", type=float, default=0.25)
    parser.add_argument(
        "--output-dir", type=Path, default=Path("runs/structured_vs_unstructured")
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    plan = [("resnet12", s, arguments.resnet_rounds) for s in RESNET_SPARSITIES]
    if arguments.quick:
        plan = [("resnet12", 0.5, 2)]
    runs = [
        (model, method, sparsity, config)
        for model, sparsity, rounds in plan
        for method, config in settings(
            model, sparsity, rounds, arguments.quick, arguments.resnet_width
        )
    ]
    replaced = {(model, method, sparsity) for model, method, sparsity, _ in runs}
    results = arguments.results
    kept_table = _kept_rows(results / "structured_vs_unstructured.csv", replaced)
    kept_curves = _kept_rows(
        results / "structured_vs_unstructured_curves.csv", replaced
    )
    table, curves = [], []
    for model, method, sparsity, config in runs:
        run_dir = arguments.output_dir / f"{model}_{method}_{sparsity:g}"
        print(f"== {model} {method} {sparsity:g}", flush=True)
        summary = run_training(config, run_dir, overwrite=True, progress=False)
        rows = read_metrics_csv(run_dir / "metrics.csv")
        evaluated = [r for r in rows if r["central_accuracy"] is not None]
        reached = [r for r in evaluated if r["central_accuracy"] >= TARGET]
        played = len(rows)
        table.append(
            dict(
                model=model,
                method=method,
                sparsity=sparsity,
                rounds=played,
                final_accuracy=round(summary["final"]["central_accuracy"], 4),
                target_round=int(reached[0]["round"]) if reached else "",
                upload_bytes_per_round=round(
                    sum(r["upload_bytes"] for r in rows) / played
                ),
                upload_bytes_csr_per_round=round(
                    sum(r["upload_bytes_csr"] for r in rows) / played
                ),
                upload_bytes_dense_per_round=round(
                    sum(r["upload_bytes_dense"] for r in rows) / played
                ),
                measured_sparsity=round(summary["final"]["sparsity"], 4),
            )
        )
        curves.extend(
            dict(
                model=model,
                method=method,
                sparsity=sparsity,
                round=int(r["round"]),
                central_accuracy=round(r["central_accuracy"], 4),
            )
            for r in evaluated
        )
        print(table[-1], flush=True)
        write_metrics_csv(
            results / "structured_vs_unstructured.csv",
            sorted(kept_table + table, key=_order),
            TABLE,
        )
        write_metrics_csv(
            results / "structured_vs_unstructured_curves.csv",
            sorted(kept_curves + curves, key=_order),
            CURVES,
        )
    print(f"wrote {arguments.results / 'structured_vs_unstructured.csv'}")


if __name__ == "__main__":
    main()
