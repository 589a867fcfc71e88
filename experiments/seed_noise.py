"""Seed noise: one representative setting of every experiment, other seeds.

Every committed result is one run with ``seed = 0`` (the seed picks the data
split, the client sample of each round, the initial weights and the
shuffling). This script reruns one setting of each federated experiment with
other seeds, exactly as its experiment script configures it, and prints each
metric's committed seed-0 value beside the new ones, so the READMEs can say how
far a rerun may land from the committed number:

* exp1: sparsity_sweep.py, federated weight pruning 50% (central accuracy)
* exp3: jeurkar_table1.py, as run, unstructured 50% (best central accuracy
  in 25 rounds)
* acceptance: train_acceptance.py, shards LeNet-5 FedAvg (+ fine-tuning)
  and Sub-FedAvg weight 50% (personalized and central accuracy), IID fc
  dense FedAvg and Sub-FedAvg 50% (the 1-point target is on their
  difference). (Experiment 4, personalization.py, runs its own seeds:
  ``--seeds 0 1 2``.)
* exp5: bytes_to_target.py, dense and weight 50% (round and MB to reach 0.80)

Usage:
    uv run python experiments/seed_noise.py                # seeds 1 and 2, ~50 min
    uv run python experiments/seed_noise.py --seeds 0      # rerun the committed seed
    uv run python experiments/seed_noise.py --only exp1_weight50 --seeds 3 4
    uv run python experiments/seed_noise.py --quick        # smoke test

Writes experiments/results/seed_noise.csv (setting, metric, seed, value) after
every run; a run replaces the values of the (setting, seed) pairs it ran and
keeps every other one, so seeds can be added later.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
from collections.abc import Callable
from pathlib import Path

from common import RESULTS, configuration
from jeurkar_table1 import federated_data as jeurkar_data
from jeurkar_table1 import run_config as jeurkar_config
from sparsity_sweep import federated_config
from train_acceptance import RUNS

from tffprune.config import TrainConfig
from tffprune.data.partition import FederatedData
from tffprune.reporting.metrics import read_metrics_csv, write_metrics_csv
from tffprune.run import run_training
from tffprune.sweep import bytes_to_target

SWEEP_TARGET = 0.80
COLUMNS = ("setting", "metric", "seed", "value")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One experiment's setting, rerun with other seeds.

    Attributes:
        name: Short name (``--only``).
        config: The experiment's configuration, for ``quick`` or not.
        metrics: From the run's summary and metric rows, the values to record.
        committed: Per metric, where the committed seed-0 value is: results
            file, the column to read, and the values identifying its row.
        stop_at: Early stop, as the experiment uses it.
        data: ``data(quick, seed)``, for an experiment that builds its data
            itself (default: the configuration's data set and split).
    """

    name: str
    config: Callable[[bool], TrainConfig]
    metrics: Callable[[dict, list[dict]], dict[str, float]]
    committed: dict[str, tuple[str, str, dict[str, str]]]
    stop_at: tuple[str, float] | None = None
    data: Callable[[bool, int], FederatedData] | None = None


def _final(*names: str) -> Callable[[dict, list[dict]], dict[str, float]]:
    return lambda summary, rows: {name: summary["final"][name] for name in names}


def _best(name: str) -> Callable[[dict, list[dict]], dict[str, float]]:
    """The best value over the evaluated rounds (Jeurkar et al.'s Table 1)."""
    return lambda summary, rows: {
        name: max(r[name] for r in rows if r[name] is not None)
    }


def _to_target(summary: dict, rows: list[dict]) -> dict[str, float]:
    reached = bytes_to_target(rows, SWEEP_TARGET)
    if reached is None:
        return {"reached_round": float("nan"), "mb_to_target": float("nan")}
    return {"reached_round": reached[0], "mb_to_target": reached[1] / 1e6}


def _acceptance(run: str, metrics: tuple[str, ...] = ("central_accuracy",)) -> Setting:
    """A train_acceptance.py run; its committed final ``metrics``."""
    split, overrides = RUNS[run]
    return Setting(
        f"acceptance_{run}",
        lambda quick: configuration(split, quick=quick, **overrides),
        _final(*metrics),
        {metric: ("train_acceptance.csv", metric, dict(run=run)) for metric in metrics},
    )


def _sweep_point(method: str, sparsity: float) -> Setting:
    """A point of bytes_to_target.py's sweep: round and MB to reach 0.80."""
    where = dict(method=method, sparsity=str(sparsity))
    return Setting(
        "exp5_dense" if method == "none" else f"exp5_{method}{sparsity * 100:.0f}",
        lambda quick: configuration(
            "sweep_fc", quick=quick, method=method, sparsity=sparsity, eval_every=1
        ),
        _to_target,
        {
            "reached_round": ("bytes_to_target.csv", "reached_round", where),
            "mb_to_target": ("bytes_to_target.csv", "bytes_to_target", where),
        },
        stop_at=("central_accuracy", SWEEP_TARGET),
    )


SETTINGS = (
    Setting(
        "exp1_weight50",
        lambda quick: federated_config(
            "fashion_mnist", "weight", 0.5, rounds=1 if quick else 10, quick=quick
        ),
        _final("central_accuracy"),
        {
            "central_accuracy": (
                "sparsity_sweep_fashion_mnist.csv",
                "accuracy",
                dict(setting="federated", method="weight", sparsity="0.5"),
            )
        },
    ),
    Setting(
        "exp3_jeurkar_unstructured50",
        lambda quick: jeurkar_config(
            "fashion_mnist", "unstructured", "paper", 0.5, 2, 2 if quick else 25
        ),
        _best("central_accuracy"),
        {
            "central_accuracy": (
                "jeurkar_table1.csv",
                "best_accuracy",
                dict(
                    dataset="fashion_mnist",
                    setup="as-run",
                    pruning="unstructured",
                    scope="paper",
                    rate="0.5",
                ),
            )
        },
        data=lambda quick, seed: jeurkar_data("fashion_mnist", "as-run", seed, quick),
    ),
    _acceptance(
        "shards_fedavg",
        (
            "personalized_accuracy",
            "finetuned_personalized_accuracy",
            "central_accuracy",
        ),
    ),
    _acceptance(
        "shards_subfedavg_weight50", ("personalized_accuracy", "central_accuracy")
    ),
    _acceptance("iid_fedavg_dense"),
    _acceptance("iid_subfedavg_weight50"),
    _sweep_point("none", 0.0),
    _sweep_point("weight", 0.5),
)


def committed_value(
    results: Path, source: tuple[str, str, dict[str, str]]
) -> float | None:
    """The committed seed-0 value of a metric, or None if it is not there."""
    name, column, where = source
    path = results / name
    if not path.exists():
        return None
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if all(row.get(key) == value for key, value in where.items()):
                if row[column] in ("", "nan"):
                    return None
                value = float(row[column])
                return value / 1e6 if column == "bytes_to_target" else value
    return None


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def summary_lines(rows: list[dict], results: Path) -> list[str]:
    """A Markdown table: committed seed 0, every seed's value, mean and range."""
    seeds = sorted({int(row["seed"]) for row in rows})
    header = (
        "| setting | metric | committed (seed 0) | "
        + " | ".join(f"seed {seed}" for seed in seeds)
        + " | mean | max - min |"
    )
    lines = [header, "|" + "---|" * (5 + len(seeds))]
    by_setting = {setting.name: setting for setting in SETTINGS}
    keys = dict.fromkeys((row["setting"], row["metric"]) for row in rows)
    for name, metric in keys:
        values = {
            int(row["seed"]): float(row["value"])
            for row in rows
            if (row["setting"], row["metric"]) == (name, metric)
        }
        source = by_setting[name].committed.get(metric) if name in by_setting else None
        committed = committed_value(results, source) if source else None
        known = [value for value in values.values() if value == value]  # not NaN
        cells = [
            name,
            metric,
            "-" if committed is None else f"{committed:.4g}",
            *(f"{values[s]:.4g}" if s in values else "" for s in seeds),
            f"{statistics.fmean(known):.4g}" if known else "-",
            f"{max(known) - min(known):.4g}" if len(known) > 1 else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-2 rounds, 20 clients")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--only", nargs="+", choices=[setting.name for setting in SETTINGS]
    )
    parser.add_argument("--output-dir", type=Path, default=Path("runs/seed_noise"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    settings = [s for s in SETTINGS if not arguments.only or s.name in arguments.only]
    output = arguments.results / "seed_noise.csv"
    rerun = {(s.name, str(seed)) for s in settings for seed in arguments.seeds}
    table = [r for r in _read(output) if (r["setting"], r["seed"]) not in rerun]
    for seed in arguments.seeds:
        for setting in settings:
            config = setting.config(arguments.quick).replace(seed=seed)
            run_dir = arguments.output_dir / f"{setting.name}_seed{seed}"
            print(f"== {setting.name} seed {seed}", flush=True)
            data = setting.data(arguments.quick, seed) if setting.data else None
            summary = run_training(
                config,
                run_dir,
                overwrite=True,
                progress=False,
                stop_at=setting.stop_at,
                data=data,
            )
            values = setting.metrics(summary, read_metrics_csv(run_dir / "metrics.csv"))
            for metric, value in values.items():
                table.append(
                    dict(
                        setting=setting.name,
                        metric=metric,
                        seed=seed,
                        value=round(float(value), 4),
                    )
                )
                print(f"{metric} = {value:.4f}", flush=True)
            order = {s.name: index for index, s in enumerate(SETTINGS)}
            table.sort(
                key=lambda r: (order.get(r["setting"], len(order)), int(r["seed"]))
            )
            write_metrics_csv(output, table, COLUMNS)
    print("\n".join(summary_lines(table, arguments.results)))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
