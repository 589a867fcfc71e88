"""Round time against clients per round, and memory over 100 rounds, at 1,000 clients.

Fashion-MNIST split IID over 1,000 clients (48 training and 12 test examples
each), the README's main job otherwise (fc, Sub-FedAvg, weight pruning 50%).
In one process:

* the median round time, after 2 warm-up rounds, with 10, 50 and 100 clients
  per round; read two ways: seconds per client (proportional: the same per
  client), and the least-squares line through the round times (linear: a
  fixed part a round plus the same per client) with the largest deviation of
  a measured round from it;
* then 100 rounds at 100 clients per round, evaluating every 10, with the
  resident memory (VmRSS) of the driver and the TFF worker after each round:
  growth from round 20 to round 100. A Sub-FedAvg client keeps its mask on
  the driver once sampled (one bit per weight since 2026-12-07, 0.3 MB for
  fc; one byte before), so the driver grows with the clients seen; the
  clients seen are printed beside it.

Memory: the TFF worker holds about 100 MB a client of a round for fc (100
clients per round: about 11 GiB by extrapolation; experiments/README.md).

Usage:
    uv run python experiments/benchmarks/scale.py [--rounds 100]
        [--per-round 10 50 100] [--output experiments/results/scale.csv]
        [--no-memory]

Targets (#32): round time linear in clients per round within 15%; memory at
most 5% growth from round 20 to round 100.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import numpy as np
from memory import resident_mib  # same directory

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.runtime import LocalRuntime
from tffprune.fl.training import Trainer

CLIENTS = 1_000


def _config(per_round: int, rounds: int, eval_every: int) -> TrainConfig:
    return TrainConfig(
        num_clients=CLIENTS,
        clients_per_round=per_round,
        rounds=rounds,
        eval_every=eval_every,
    )


def linearity(data, per_round: list[int], rounds: int = 3, warmup: int = 2) -> None:
    """Median round time per clients per round, and per client."""
    per_client = []
    for clients in per_round:
        trainer = Trainer(_config(clients, 1_000, 1_000), data)
        seconds = []
        for index in range(warmup + rounds):
            started = time.perf_counter()
            trainer.run_round()
            if index >= warmup:
                seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        per_client.append(median / clients)
        print(
            f"{clients:>4} clients per round: {median:6.2f} s a round, "
            f"{1000 * median / clients:6.1f} ms a client",
            flush=True,
        )
    spread = max(per_client) / min(per_client) - 1
    print(f"seconds per client: largest {spread:+.1%} over the smallest", flush=True)
    rounds_seconds = [s * c for s, c in zip(per_client, per_round, strict=True)]
    slope, intercept = np.polyfit(per_round, rounds_seconds, 1)
    deviation = max(
        abs(intercept + slope * c - s) / s
        for c, s in zip(per_round, rounds_seconds, strict=True)
    )
    print(
        f"least-squares line: {intercept:.2f} s + {1000 * slope:.1f} ms a client; "
        f"largest deviation of a round from it {deviation:.1%}",
        flush=True,
    )


def memory(data, rounds: int, worker: int, output: Path) -> None:
    """Resident memory over ``rounds`` rounds of 100 clients."""
    trainer = Trainer(_config(100, rounds, 10), data)
    rows, started = [], time.perf_counter()
    for round_number in range(1, rounds + 1):
        trainer.run_round()
        rows.append(
            {
                "round": round_number,
                "driver_mib": round(resident_mib(os.getpid()), 1),
                "worker_mib": round(resident_mib(worker), 1),
                "clients_seen": sum(c.mask is not None for c in trainer.state.clients),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        if round_number % 10 == 0:
            print(rows[-1], flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    first, last = rows[min(19, rounds - 1)], rows[-1]
    for column in ("driver_mib", "worker_mib"):
        growth = last[column] / first[column] - 1
        print(
            f"{column[:-4]:<7} round {first['round']}: {first[column]:8.1f} MiB "
            f"({first['clients_seen']} clients seen), round {last['round']}: "
            f"{last[column]:8.1f} MiB ({last['clients_seen']}), growth {growth:+.1%}"
        )
    print(f"wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--per-round", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument(
        "--output", type=Path, default=Path("experiments/results/scale.csv")
    )
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="Only the round times (about 4 minutes), not the 100 rounds.",
    )
    arguments = parser.parse_args()
    data = build_federated_data(load_dataset("fashion_mnist"), CLIENTS, "iid", seed=0)
    with LocalRuntime() as runtime:
        (worker,) = runtime.worker_pids
        linearity(data, arguments.per_round)
        if arguments.memory:
            memory(data, arguments.rounds, worker, arguments.output)


if __name__ == "__main__":
    main()
