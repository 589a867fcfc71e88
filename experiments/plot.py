"""Figures for experiments/README.md, drawn only from the committed CSV files.

Usage:
    uv run python experiments/plot.py

Reads experiments/results/*.csv and writes experiments/figures/*.png.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FIGURES = Path(__file__).parent / "figures"


def read(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def sparsity_sweep(path: Path) -> Path:
    rows = read(path)
    figure, (accuracy_axes, size_axes) = plt.subplots(1, 2, figsize=(10, 4))
    dense = [r for r in rows if r["method"] == "dense"]
    for setting, style in (("centralized", "-"), ("federated", "--")):
        for method, marker in (("weight", "o"), ("unit", "s")):
            points = sorted(
                (
                    float(r["sparsity"]),
                    float(r["accuracy"]),
                    int(r["tflite_dynamic_zipped_bytes"]),
                )
                for r in rows
                if r["setting"] == setting and r["method"] == method
            )
            if not points:
                continue
            label = f"{method} pruning, {setting}"
            accuracy_axes.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                style,
                marker=marker,
                label=label,
            )
            size_axes.plot(
                [p[0] for p in points],
                [p[2] / 1e3 for p in points],
                style,
                marker=marker,
                label=label,
            )
    if dense:
        accuracy_axes.axhline(
            float(dense[0]["accuracy"]),
            color="gray",
            lw=0.8,
            label="dense, centralized",
        )
    accuracy_axes.set_xlabel("sparsity")
    accuracy_axes.set_ylabel("test accuracy")
    accuracy_axes.grid(alpha=0.3)
    accuracy_axes.legend(fontsize=8)
    size_axes.set_xlabel("sparsity")
    size_axes.set_ylabel("TFLite (dynamic range), zipped, KB")
    size_axes.set_yscale("log")
    size_axes.grid(alpha=0.3)
    figure.suptitle(
        f"fc 784-1000-1000-500-200-10, {path.stem.split('_', 2)[-1]}", fontsize=10
    )
    figure.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    output = FIGURES / f"{path.stem}.png"
    figure.savefig(output, dpi=80)
    plt.close(figure)
    return output


def main() -> None:
    for path in sorted(RESULTS.glob("sparsity_sweep_*.csv")):
        print(f"wrote {sparsity_sweep(path)}")


if __name__ == "__main__":
    main()
