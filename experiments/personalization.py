"""Experiment 4: personalization under non-IID data.

For each split, `shards` (2 per client) and `dirichlet` (alpha 0.1 and 0.5),
`lenet5`, 100 clients, 10 per round, 50 rounds, Sub-FedAvg's local settings
(experiments/configs): FedAvg, FedAvg + one epoch of local fine-tuning,
Sub-FedAvg with 50% unstructured (weight) pruning and with 50% hybrid
pruning. Reports personalized accuracy (mean over clients of their model on
their own test split), central accuracy, total upload bytes and final sparsity,
and writes the accuracy-vs-round curves.

Usage:
    uv run python experiments/personalization.py              # about 40 min
    uv run python experiments/personalization.py --quick      # smoke test
    uv run python experiments/plot.py                         # the figures

Writes experiments/results/personalization.csv (one row per algorithm and
split) and personalization_curves.csv (per round), after every run, so an
interrupted experiment keeps what it finished; run directories go to
--output-dir.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from common import RESULTS, configuration

from tffprune.reporting.metrics import read_metrics_csv, write_metrics_csv
from tffprune.run import run_training

SPLITS = ("shards", "dirichlet_0.1", "dirichlet_0.5")
ALGORITHMS = {
    "fedavg": dict(aggregation="fedavg", method="none", finetune_baseline=True),
    "subfedavg_weight50": dict(aggregation="subfedavg", method="weight", sparsity=0.5),
    "subfedavg_hybrid50": dict(aggregation="subfedavg", method="hybrid", sparsity=0.5),
}
TABLE = (
    "split",
    "algorithm",
    "personalized_accuracy",
    "central_accuracy",
    "total_upload_mb",
    "final_sparsity",
    "rounds",
)
CURVES = ("split", "algorithm", "round", "central_accuracy", "personalized_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 20 clients")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/personalization"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--splits", nargs="*", default=list(SPLITS), choices=SPLITS)
    arguments = parser.parse_args()
    table, curves = [], []
    for split in arguments.splits:
        for algorithm, settings in ALGORITHMS.items():
            config = configuration(split, quick=arguments.quick, **settings)
            run_dir = arguments.output_dir / f"{split}_{algorithm}"
            print(f"== {split} {algorithm}", flush=True)
            summary = run_training(config, run_dir, overwrite=True, progress=False)
            final = summary["final"]
            common = dict(
                split=split,
                total_upload_mb=round(summary["total_upload_bytes"] / 1e6, 2),
                final_sparsity=round(summary["final_client_sparsity"]["mean"], 4),
                rounds=summary["rounds_completed"],
            )
            table.append(
                dict(
                    common,
                    algorithm=algorithm,
                    personalized_accuracy=round(final["personalized_accuracy"], 4),
                    central_accuracy=round(final["central_accuracy"], 4),
                )
            )
            finetuned = final.get("finetuned_personalized_accuracy")
            if finetuned is not None and not math.isnan(finetuned):
                table.append(
                    dict(
                        common,
                        algorithm="fedavg_finetune1",
                        personalized_accuracy=round(finetuned, 4),
                        central_accuracy=round(final["central_accuracy"], 4),
                    )
                )
            for row in read_metrics_csv(run_dir / "metrics.csv"):
                if row["central_accuracy"] is None:
                    continue
                curves.append(
                    dict(
                        split=split,
                        algorithm=algorithm,
                        round=int(row["round"]),
                        central_accuracy=round(row["central_accuracy"], 4),
                        personalized_accuracy=round(row["personalized_accuracy"], 4),
                    )
                )
                if row.get("finetuned_personalized_accuracy") is not None:
                    curves.append(
                        dict(
                            split=split,
                            algorithm="fedavg_finetune1",
                            round=int(row["round"]),
                            central_accuracy=round(row["central_accuracy"], 4),
                            personalized_accuracy=round(
                                row["finetuned_personalized_accuracy"], 4
                            ),
                        )
                    )
            print(table[-1], flush=True)
            results = arguments.results
            write_metrics_csv(results / "personalization.csv", table, TABLE)
            write_metrics_csv(results / "personalization_curves.csv", curves, CURVES)
    print(f"wrote {arguments.results / 'personalization.csv'}")


if __name__ == "__main__":
    main()
