"""Figures for experiments/README.md, drawn only from the committed CSV files.

Usage:
    uv run python experiments/plot.py
    uv run python experiments/plot.py --figures /tmp/figures   # elsewhere

Reads experiments/results/*.csv (--results) and writes
experiments/figures/*.png (--figures).
"""

from __future__ import annotations

import argparse
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


def save(figure, name: str, figures: Path) -> Path:
    """Writes a figure to <figures>/<name>.png (small: 80 dpi) and closes it."""
    figures.mkdir(parents=True, exist_ok=True)
    output = figures / f"{name}.png"
    figure.savefig(output, dpi=80)
    plt.close(figure)
    return output


def sparsity_sweep(path: Path, figures: Path = FIGURES) -> Path:
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
    return save(figure, path.stem, figures)


def personalization_curves(path: Path, figures: Path = FIGURES) -> list[Path]:
    """Accuracy vs round per split: personalized (solid) and central (dashed)."""
    rows = read(path)
    outputs = []
    for split in dict.fromkeys(r["split"] for r in rows):
        figure, axes = plt.subplots(figsize=(6, 4))
        for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
            points = [
                r for r in rows if r["split"] == split and r["algorithm"] == algorithm
            ]
            if not points:
                continue
            rounds = [int(r["round"]) for r in points]
            (line,) = axes.plot(
                rounds,
                [float(r["personalized_accuracy"]) for r in points],
                marker="o",
                markersize=3,
                label=f"{algorithm}, personalized",
            )
            if algorithm != "fedavg_finetune1":  # same global model as fedavg
                axes.plot(
                    rounds,
                    [float(r["central_accuracy"]) for r in points],
                    "--",
                    color=line.get_color(),
                    lw=0.8,
                    label=f"{algorithm}, central",
                )
        axes.set_xlabel("round")
        axes.set_ylabel("test accuracy")
        axes.set_title(f"lenet5, Fashion-MNIST, {split.replace('_', ' alpha ')}")
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        outputs.append(save(figure, f"personalization_{split}", figures))
    return outputs


def bytes_to_target(path: Path, figures: Path = FIGURES) -> Path:
    """The sweep's bytes-to-target vs sparsity figure, from its CSV."""
    from tffprune.reporting.plots import plot_sweep
    from tffprune.sweep import SweepResult

    def number(text: str, kind: type):
        return None if text == "" else kind(text)

    results = [
        SweepResult(
            method=r["method"],
            sparsity=float(r["sparsity"]),
            reached_round=number(r["reached_round"], int),
            bytes_to_target=number(r["bytes_to_target"], int),
            best_accuracy=float(r["best_accuracy"]),
            rounds_run=int(r["rounds_run"]),
            total_upload_bytes=int(r["total_upload_bytes"]),
            run_dir=r["run_dir"],
        )
        for r in read(path)
    ]
    figures.mkdir(parents=True, exist_ok=True)
    # bytes_to_target_int8_uploads_40_rounds.csv -> "int8 uploads 40 rounds"
    note = path.stem.removeprefix("bytes_to_target").strip("_").replace("_", " ")
    return plot_sweep(
        results, figures / f"{path.stem}.png", 0.80, "central_accuracy", note
    )


def structured_curves(path: Path, figures: Path = FIGURES) -> list[Path]:
    """Accuracy vs round per model: one panel per method, a line per sparsity."""
    rows = read(path)
    outputs = []
    for model in dict.fromkeys(r["model"] for r in rows):
        figure, panels = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        dense = [r for r in rows if r["model"] == model and r["method"] == "none"]
        for axes, method in zip(panels, ("channel", "global-weight"), strict=True):
            chosen = [r for r in rows if r["model"] == model and r["method"] == method]
            sparsities = sorted({float(r["sparsity"]) for r in chosen})
            colors = plt.cm.viridis([i / max(len(sparsities), 1) for i in range(10)])
            for index, sparsity in enumerate(sparsities):
                points = [r for r in chosen if float(r["sparsity"]) == sparsity]
                axes.plot(
                    [int(r["round"]) for r in points],
                    [float(r["central_accuracy"]) for r in points],
                    color=colors[index],
                    lw=1,
                    label=f"{sparsity:.0%}",
                )
            if dense:
                axes.plot(
                    [int(r["round"]) for r in dense],
                    [float(r["central_accuracy"]) for r in dense],
                    "k--",
                    lw=1,
                    label="dense",
                )
            axes.set_title(f"{model}, {method} pruning", fontsize=9)
            axes.set_xlabel("round")
            axes.grid(alpha=0.3)
            axes.legend(fontsize=7, ncol=2)
        panels[0].set_ylabel("central test accuracy")
        figure.tight_layout()
        outputs.append(save(figure, f"structured_vs_unstructured_{model}", figures))
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--figures", type=Path, default=FIGURES)
    arguments = parser.parse_args()
    results, figures = arguments.results, arguments.figures
    for path in sorted(results.glob("sparsity_sweep_*.csv")):
        print(f"wrote {sparsity_sweep(path, figures)}")
    for sweep in sorted(results.glob("bytes_to_target*.csv")):
        print(f"wrote {bytes_to_target(sweep, figures)}")
    structured = results / "structured_vs_unstructured_curves.csv"
    if structured.exists():
        for output in structured_curves(structured, figures):
            print(f"wrote {output}")
    curves = results / "personalization_curves.csv"
    if curves.exists():
        for output in personalization_curves(curves, figures):
            print(f"wrote {output}")


if __name__ == "__main__":
    main()
