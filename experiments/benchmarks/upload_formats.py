"""What low-bit updates with error feedback cost a round, against today's round.

Times, in one process and interleaved round by round (so the machine's noise
falls on all of them alike), Sub-FedAvg rounds with 50% weight pruning in
these communication settings:

* ``float32``: float32 values both ways, no residuals (the round before
  low-bit updates existed; the baseline);
* ``int8 down, int8 up``: no error feedback;
* ``int8 down, int4/int2/int1 up + EF``: each client reads its residual from
  its file and writes the new one inside the round
  (`tffprune.fl.residual_store`);
* ``int4 down, int2 up + EF``: the fewest bytes of experiment 5 at 50%.

Prints the median seconds per round after warm-up, each median's ratio to
the baseline's, and the median of the round-by-round ratios (each round
against the baseline round just before it, which trained the same clients on
the same data). Target (issue "Fewer bytes both ways"): error feedback with low-bit
values at most 1.10x the baseline.

Usage:
    uv run python experiments/benchmarks/upload_formats.py [--model fc]
        [--rounds 6] [--warmup 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.fl.runtime import LocalRuntime
from tffprune.fl.training import Trainer

SETTINGS = {
    "float32 both ways (baseline)": dict(),
    "int8 down, int8 up, no EF": dict(
        download_values="int8", upload_values="int8", error_feedback=False
    ),
    "int8 down, int4 up + EF": dict(download_values="int8", upload_values="int4"),
    "int8 down, int2 up + EF": dict(download_values="int8", upload_values="int2"),
    "int8 down, int1 up + EF": dict(download_values="int8", upload_values="int1"),
    "int4 down, int2 up + EF": dict(download_values="int4", upload_values="int2"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fc")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    arguments = parser.parse_args()
    data = build_federated_data(load_dataset("fashion_mnist"), 100, "iid", seed=0)
    common = dict(
        model=arguments.model,
        num_clients=100,
        clients_per_round=10,
        rounds=10_000,
        eval_every=10_000,
        batch_size=32,
        method="weight",
        sparsity=0.5,
    )
    seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with LocalRuntime():
        trainers = {
            name: Trainer(TrainConfig(**common, **changes), data)
            for name, changes in SETTINGS.items()
        }
        for index in range(arguments.warmup + arguments.rounds):
            for name, trainer in trainers.items():
                started = time.perf_counter()
                trainer.run_round()
                if index >= arguments.warmup:
                    seconds[name].append(time.perf_counter() - started)
    baseline_seconds = seconds["float32 both ways (baseline)"]
    baseline = statistics.median(baseline_seconds)
    print(
        f"{arguments.model}, Sub-FedAvg weight 50%, 10 clients x 480 examples, "
        f"1 epoch, batch 32; median of {arguments.rounds} interleaved rounds "
        f"after {arguments.warmup} warm-up; last column: median of the ratios "
        "to the baseline round run just before (the same clients and data)"
    )
    for name, values in seconds.items():
        median = statistics.median(values)
        paired = statistics.median(
            v / b for v, b in zip(values, baseline_seconds, strict=True)
        )
        print(
            f"{name:<32} {median:6.2f} s/round  {median / baseline:.2f}x  {paired:.2f}x"
        )


if __name__ == "__main__":
    main()
