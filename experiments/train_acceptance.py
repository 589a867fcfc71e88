"""Acceptance runs of federated training on real Fashion-MNIST (issue: training).

Settings: experiments/configs/defaults.toml plus shards.toml / iid_fc.toml.

1. Pathological non-IID (`shards`, 2 per client), 100 clients, 10 per round,
   `lenet5`, 50 rounds, Sub-FedAvg's local settings (5 epochs, batch 10,
   SGD lr 0.01 momentum 0.5): FedAvg (+ one epoch of local fine-tuning) vs
   Sub-FedAvg with 50% weight pruning and with 50% hybrid pruning.
2. IID, 100 clients, 10 per round, `fc`, 20 rounds, the same local settings:
   Sub-FedAvg and FedAvg with 50% weight pruning (Jeurkar et al.) vs dense
   FedAvg (central accuracy should be within 1 point).

Usage:
    uv run python experiments/train_acceptance.py            # full (about 40 min)
    uv run python experiments/train_acceptance.py --quick    # 2 rounds, smoke test

Writes one run directory per configuration under --output-dir and a table
`acceptance.csv` there.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from common import configuration

from tffprune.run import run_training

# (configs/ file, overrides) per run.
RUNS = {
    "shards_fedavg": (
        "shards",
        dict(aggregation="fedavg", method="none", finetune_baseline=True),
    ),
    "shards_subfedavg_weight50": (
        "shards",
        dict(aggregation="subfedavg", method="weight", sparsity=0.5),
    ),
    "shards_subfedavg_hybrid50": (
        "shards",
        dict(aggregation="subfedavg", method="hybrid", sparsity=0.5),
    ),
    "iid_fedavg_dense": ("iid_fc", dict(aggregation="fedavg", method="none")),
    "iid_subfedavg_weight50": (
        "iid_fc",
        dict(aggregation="subfedavg", method="weight", sparsity=0.5),
    ),
    "iid_fedavg_weight50": (
        "iid_fc",
        dict(aggregation="fedavg", method="weight", sparsity=0.5),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 20 clients")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/acceptance"))
    parser.add_argument("--only", nargs="*", help="run only these configurations")
    arguments = parser.parse_args()
    rows = []
    for name, (split, settings) in RUNS.items():
        if arguments.only and name not in arguments.only:
            continue
        config = configuration(split, quick=arguments.quick, **settings)
        print(f"== {name}", flush=True)
        summary = run_training(
            config, arguments.output_dir / name, overwrite=True, progress=False
        )
        final = summary["final"]
        rows.append(
            {
                "run": name,
                "rounds": summary["rounds_completed"],
                "central_accuracy": round(final["central_accuracy"], 4),
                "central_sparsity": round(final["central_sparsity"], 4),
                "central_accuracy_unpruned": round(
                    final["central_accuracy_unpruned"], 4
                ),
                "personalized_accuracy": round(final["personalized_accuracy"], 4),
                "finetuned_personalized_accuracy": round(
                    final.get("finetuned_personalized_accuracy", float("nan")), 4
                ),
                "final_client_sparsity": round(
                    summary["final_client_sparsity"]["mean"], 4
                ),
                "total_upload_mb": round(summary["total_upload_bytes"] / 1e6, 2),
                "total_upload_dense_mb": round(
                    summary["total_upload_bytes_dense"] / 1e6, 2
                ),
                "seconds": round(summary["total_seconds"], 1),
            }
        )
        print(rows[-1], flush=True)
    table = arguments.output_dir / "acceptance.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {table}")


if __name__ == "__main__":
    main()
