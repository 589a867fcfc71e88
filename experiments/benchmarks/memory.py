"""Does memory stay flat over hundreds of federated rounds?

Runs `subfedavg` with 50% weight pruning and int8 uploads on a small
configuration (Fashion-MNIST subset, `tfmot_cnn`, 20 clients, 5 per round) for
300 rounds in one process, and records after every round the resident memory
(VmRSS) of this driver process and of the TFF worker it started. Prints the
growth from round 20 to the last round (target: under 10%) and writes the
per-round series as CSV.

Usage:
    uv run python experiments/benchmarks/memory.py [--rounds 300]
        [--output experiments/results/memory_benchmark.csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.runtime import LocalRuntime
from tffprune.fl.training import Trainer


def resident_mib(pid: int) -> float:
    """VmRSS of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--baseline-round", type=int, default=20)
    parser.add_argument(
        "--output", type=Path, default=Path("experiments/results/memory_benchmark.csv")
    )
    arguments = parser.parse_args()
    if not 1 <= arguments.baseline_round < arguments.rounds:
        parser.error("--baseline-round must be in [1, --rounds)")
    config = TrainConfig(
        model="tfmot_cnn",
        num_clients=20,
        clients_per_round=5,
        rounds=arguments.rounds,
        aggregation="subfedavg",
        method="weight",
        sparsity=0.5,
        upload_values="int8",
        max_examples=6000,
        # Every code path (evaluation included) runs before the baseline round.
        eval_every=10,
    )
    data = build_federated_data(
        load_dataset("fashion_mnist"), 20, "iid", seed=0, max_examples=6000
    )
    rows = []
    started = time.perf_counter()
    with LocalRuntime() as runtime:
        (worker,) = runtime.worker_pids
        trainer = Trainer(config, data)
        for round_number in range(1, arguments.rounds + 1):
            trainer.run_round()
            rows.append(
                {
                    "round": round_number,
                    "driver_mib": round(resident_mib(os.getpid()), 1),
                    "worker_mib": round(resident_mib(worker), 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            if round_number % 50 == 0:
                print(rows[-1], flush=True)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    with arguments.output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    first, last = rows[arguments.baseline_round - 1], rows[-1]
    for column in ("driver_mib", "worker_mib"):
        growth = last[column] / first[column] - 1
        print(
            f"{column[:-4]:<7} round {first['round']}: {first[column]:8.1f} MiB  "
            f"round {last['round']}: {last[column]:8.1f} MiB  growth {growth:+.1%}"
        )
    total_first = first["driver_mib"] + first["worker_mib"]
    total_last = last["driver_mib"] + last["worker_mib"]
    print(
        f"both    growth {total_last / total_first - 1:+.1%}; wrote {arguments.output}"
    )


if __name__ == "__main__":
    main()
