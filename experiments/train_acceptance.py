"""Acceptance runs of federated training on real Fashion-MNIST (issue: training).

1. Pathological non-IID (`shards`, 2 per client), 100 clients, 10 per round,
   `lenet5`, 50 rounds, Sub-FedAvg's local settings (5 epochs, batch 10,
   SGD lr 0.01 momentum 0.5): FedAvg (+ one epoch of local fine-tuning) vs
   Sub-FedAvg with 50% weight pruning and with 50% hybrid pruning.
2. IID, 100 clients, 10 per round, `fc`, 20 rounds: Sub-FedAvg with 50% weight
   pruning vs dense FedAvg (central accuracy should be within 1 point).

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

from tffprune.config import TrainConfig
from tffprune.fl.run import run_training

SHARDS = dict(
    model="lenet5",
    partition="shards",
    shards_per_client=2,
    num_clients=100,
    clients_per_round=10,
    rounds=50,
    local_epochs=5,
    batch_size=10,
    client_learning_rate=0.01,
    client_momentum=0.5,
    eval_every=5,
)
IID = dict(
    model="fc",
    partition="iid",
    num_clients=100,
    clients_per_round=10,
    rounds=20,
    local_epochs=1,
    batch_size=32,
    client_learning_rate=0.05,
    client_momentum=0.5,
    eval_every=5,
)
RUNS = {
    "shards_fedavg": dict(
        SHARDS, aggregation="fedavg", method="none", finetune_baseline=True
    ),
    "shards_subfedavg_weight50": dict(
        SHARDS, aggregation="subfedavg", method="weight", sparsity=0.5
    ),
    "shards_subfedavg_hybrid50": dict(
        SHARDS, aggregation="subfedavg", method="hybrid", sparsity=0.5
    ),
    "iid_fedavg_dense": dict(IID, aggregation="fedavg", method="none"),
    "iid_subfedavg_weight50": dict(
        IID, aggregation="subfedavg", method="weight", sparsity=0.5
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 20 clients")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/acceptance"))
    parser.add_argument("--only", nargs="*", help="run only these configurations")
    arguments = parser.parse_args()
    rows = []
    for name, settings in RUNS.items():
        if arguments.only and name not in arguments.only:
            continue
        if arguments.quick:
            settings = dict(
                settings,
                rounds=2,
                num_clients=20,
                clients_per_round=4,
                local_epochs=1,
                max_examples=4000,
                eval_every=1,
            )
        config = TrainConfig(**settings)
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
