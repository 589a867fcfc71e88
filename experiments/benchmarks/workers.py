"""Rounds per second with local execution, one worker and two workers.

Starts `tffprune worker` processes on 127.0.0.1 itself, times the same rounds
three ways in one run (median seconds per round after warm-up rounds), prints
the table, and stops every worker it started.

Usage:
    uv run python experiments/benchmarks/workers.py [--rounds 6] [--model lenet5]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

import portpicker
from round_overhead import tffprune_round_seconds  # same directory

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.runtime import LocalRuntime


def start_worker(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tffprune.cli",
            "worker",
            "--port",
            str(port),
            "--log",
            "/dev/null",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    process.stdout.readline()  # "listening on ..."
    return process


def time_rounds(config, data, workers, rounds, warmup):
    with LocalRuntime(workers):
        return tffprune_round_seconds(config, data, rounds, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clients-per-round", type=int, default=10)
    arguments = parser.parse_args()
    config = TrainConfig(
        model=arguments.model,
        method="weight",
        sparsity=0.5,
        num_clients=100,
        clients_per_round=arguments.clients_per_round,
        rounds=arguments.rounds + arguments.warmup,
        eval_every=10_000,
    )
    data = build_federated_data(load_dataset("fashion_mnist"), 100, "iid", seed=0)
    ports = [portpicker.pick_unused_port() for _ in range(2)]
    workers = [start_worker(port) for port in ports]
    try:
        results = {
            "local (worker started by tffprune)": time_rounds(
                config, data, (), arguments.rounds, arguments.warmup
            ),
            "1 remote worker": time_rounds(
                config,
                data,
                (f"127.0.0.1:{ports[0]}",),
                arguments.rounds,
                arguments.warmup,
            ),
            "2 remote workers": time_rounds(
                config,
                data,
                tuple(f"127.0.0.1:{p}" for p in ports),
                arguments.rounds,
                arguments.warmup,
            ),
        }
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    local = results["local (worker started by tffprune)"]
    print(
        f"{arguments.model}, {arguments.clients_per_round} clients per round, "
        f"median of {arguments.rounds} rounds after {arguments.warmup} warm-up"
    )
    print(f"{'execution':<36} {'s/round':>8} {'rounds/s':>9} {'vs local':>9}")
    for name, seconds in results.items():
        print(
            f"{name:<36} {seconds:>8.2f} {1 / seconds:>9.2f} {local / seconds:>8.2f}x"
        )


if __name__ == "__main__":
    main()
