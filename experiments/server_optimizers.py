"""Server optimizers: rounds to a target with FedAvg, FedAvgM and FedAdam steps.

fc on IID Fashion-MNIST (configs/sweep_fc.toml: 100 clients, 10 per round, 1
local epoch of batch 32 at lr 0.1), Sub-FedAvg with 50% weight pruning; only
the server's step changes (`--server-optimizer`, Reddi et al., 2021,
"Adaptive Federated Optimization"): ``sgd`` (at learning rate 1, plain
Sub-FedAvg), ``sgdm`` (momentum 0.9: FedAvgM) and ``adam`` (FedAdam), each
at three server learning rates. Every run evaluates each round and stops at
the first round whose central accuracy reaches 0.80 (or after 40 rounds).

Resumable: each finished row is appended to results/server_optimizers.csv as
it ends, and a rerun skips the rows already there (``--fresh`` starts over).

Usage:
    uv run python experiments/server_optimizers.py           # 9 runs, ~20 min
    uv run python experiments/server_optimizers.py --quick   # smoke test

Writes results/server_optimizers.csv (the rows) and
results/server_optimizers_curves.csv (accuracy per round), draws
figures/server_optimizers.png and prints the README table.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from common import RESULTS, configuration
from plot import FIGURES, SERVER_STEPS, server_optimizers_curves

from tffprune.run import run_training

TARGET = 0.80
ROUNDS = 40
# (optimizer, momentum, learning rates)
ROWS = (
    ("sgd", 0.0, (0.5, 1.0, 2.0)),
    ("sgdm", 0.9, (0.1, 0.3, 1.0)),
    ("adam", 0.0, (0.0003, 0.001, 0.003)),
)
NAMES = SERVER_STEPS
COLUMNS = (
    "optimizer",
    "server_learning_rate",
    "server_momentum",
    "reached_round",
    "total_bytes_to_target",
    "final_accuracy",
    "best_accuracy",
    "rounds_run",
    "seconds",
)


def _key(row: dict) -> tuple[str, float]:
    return row["optimizer"], float(row["server_learning_rate"])


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _append(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Appends rows (with a header if the file is new) and flushes them to disk."""
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def run_row(optimizer, momentum, learning_rate, quick, work_dir) -> tuple[dict, list]:
    """Trains one row to the target; returns its result and its curve."""
    config = configuration(
        "sweep_fc",
        quick=quick,
        rounds=ROUNDS,
        eval_every=1,
        method="weight",
        sparsity=0.5,
        server_optimizer=optimizer,
        server_learning_rate=learning_rate,
        server_momentum=momentum or 0.9,
    )
    run_dir = work_dir / f"{optimizer}_{learning_rate:g}"
    summary = run_training(
        config,
        run_dir,
        overwrite=True,
        progress=False,
        stop_at=("central_accuracy", TARGET),
    )
    with (run_dir / "metrics.csv").open(newline="") as handle:
        metrics = list(csv.DictReader(handle))
    accuracies = [
        (int(r["round"]), float(r["central_accuracy"]))
        for r in metrics
        if r["central_accuracy"] not in ("", "nan")
    ]
    reached = next((n for n, a in accuracies if a >= TARGET), None)
    total = (
        sum(int(float(r["total_bytes"])) for r in metrics if int(r["round"]) <= reached)
        if reached is not None
        else ""
    )
    row = dict(
        optimizer=optimizer,
        server_learning_rate=learning_rate,
        server_momentum=momentum if optimizer == "sgdm" else "",
        reached_round=reached if reached is not None else "",
        total_bytes_to_target=total,
        final_accuracy=round(accuracies[-1][1], 4),
        best_accuracy=round(max(a for _, a in accuracies), 4),
        rounds_run=len(metrics),
        seconds=round(summary["total_seconds"], 1),
    )
    curve = [
        dict(optimizer=optimizer, server_learning_rate=learning_rate, round=n,
             central_accuracy=a)
        for n, a in accuracies
    ]  # fmt: skip
    return row, curve


def markdown(rows: list[dict]) -> str:
    lines = [
        "| server step | server lr | rounds to 0.80 | MB to 0.80 | accuracy at stop |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        total = row["total_bytes_to_target"]
        lines.append(
            f"| {NAMES[row['optimizer']]} | {float(row['server_learning_rate']):g} | "
            f"{row['reached_round'] or 'not reached'} | "
            f"{float(total) / 1e6:.1f} | {row['best_accuracy']} |"
            if total
            else f"| {NAMES[row['optimizer']]} | "
            f"{float(row['server_learning_rate']):g} | not reached | | "
            f"{row['best_accuracy']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rows, 2 rounds")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier rows")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/server_optimizers"))
    parser.add_argument("--results", type=Path, default=None)
    arguments = parser.parse_args()
    results = arguments.results or (arguments.work_dir if arguments.quick else RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    rows_path = results / "server_optimizers.csv"
    curves_path = results / "server_optimizers_curves.csv"
    if arguments.fresh:
        rows_path.unlink(missing_ok=True)
        curves_path.unlink(missing_ok=True)
    plan = [
        (optimizer, momentum, rate)
        for optimizer, momentum, rates in ROWS
        for rate in rates
    ]
    if arguments.quick:
        plan = [("sgd", 0.0, 1.0), ("adam", 0.0, 0.001)]
    done = {_key(r) for r in _read(rows_path)}
    for optimizer, momentum, rate in plan:
        if (optimizer, rate) in done:
            print(f"{optimizer} {rate:g}: done earlier, skipped")
            continue
        row, curve = run_row(optimizer, momentum, rate, arguments.quick,
                             arguments.work_dir)  # fmt: skip
        _append(curves_path, tuple(curve[0]), curve)
        _append(rows_path, COLUMNS, [row])
        print(f"{optimizer} {rate:g}: {row}", flush=True)
    print(f"wrote {rows_path}")
    figures = results if arguments.quick else FIGURES
    print(f"wrote {server_optimizers_curves(curves_path, figures)}")
    print(markdown(_read(rows_path)))


if __name__ == "__main__":
    main()
