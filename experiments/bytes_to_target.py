"""Experiment 5: the fewest upload bytes that reach a target accuracy.

Runs `tffprune sweep` (`tffprune.sweep.run_sweep`) on configs/sweep_fc.toml:
`fc` on IID Fashion-MNIST with Sub-FedAvg, weight and unit pruning at
sparsities 0.5, 0.8, 0.9 and 0.95 plus the dense baseline, each trained until
the central accuracy first reaches the target (0.80) or 20 rounds pass.

Usage:
    uv run python experiments/bytes_to_target.py            # about 20 min
    uv run python experiments/bytes_to_target.py --with int8_uploads_40_rounds
    uv run python experiments/bytes_to_target.py --quick    # smoke test
    uv run python experiments/plot.py                       # the figures

``--with NAME`` applies configs/NAME.toml on top of sweep_fc.toml and names
the results after it (bytes_to_target_NAME.csv, ...).

The same from the command line (defaults.toml's other keys do not apply to
this sweep: sweep_fc.toml sets every one that differs from TrainConfig's):
    tffprune sweep --config experiments/configs/sweep_fc.toml
        --target-accuracy 0.8 --methods weight,unit --sparsities 0.5,0.8,0.9,0.95

Writes the sweep directory (--output-dir: sweep.csv, bytes_to_target.png,
best.toml, runs/) and copies the table and the winning configuration to
experiments/results/bytes_to_target[_NAME].csv and _best.toml.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import CONFIGS, RESULTS, configuration

from tffprune.sweep import run_sweep

TARGET = 0.80
METHODS = ("weight", "unit")
SPARSITIES = (0.5, 0.8, 0.9, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke test")
    parser.add_argument(
        "--with",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="NAME",
        choices=sorted(p.stem for p in CONFIGS.glob("*.toml")),
        help="configs/NAME.toml applied on top of sweep_fc.toml",
    )
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="continue a sweep")
    arguments = parser.parse_args()
    stem = "_".join(["bytes_to_target", *arguments.overrides])
    output_dir = arguments.output_dir or Path("runs") / stem
    base = configuration("sweep_fc", *arguments.overrides, quick=arguments.quick)
    _, winner = run_sweep(
        base,
        0.3 if arguments.quick else TARGET,
        output_dir,
        methods=METHODS,
        sparsities=(0.5,) if arguments.quick else SPARSITIES,
        resume=arguments.resume,
        overwrite=not arguments.resume,
        progress=False,
        rank="upload",  # the committed results rank by upload bytes
    )
    arguments.results.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(output_dir / "sweep.csv", arguments.results / f"{stem}.csv")
    if winner is not None:
        shutil.copyfile(
            output_dir / "best.toml", arguments.results / f"{stem}_best.toml"
        )
        print(
            f"winner: {winner.method} at {winner.sparsity:g}, "
            f"{winner.bytes_to_target:,} bytes in {winner.reached_round} rounds"
        )
    print(f"wrote {arguments.results / f'{stem}.csv'}")


if __name__ == "__main__":
    main()
