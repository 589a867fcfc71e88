"""Plots of a run's metrics (matplotlib, headless)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tffprune.reporting.files import atomic_path  # noqa: E402


def _series(rows: Sequence[dict], column: str) -> tuple[list[float], list[float]]:
    points = [(r["round"], r[column]) for r in rows if r.get(column) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _plot(
    rows: Sequence[dict],
    series: Sequence[tuple[str, str]],
    ylabel: str,
    title: str,
    path: Path,
    scale: float = 1.0,
) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    for column, label in series:
        x, y = _series(rows, column)
        if x:
            axes.plot(x, [v * scale for v in y], marker="o", markersize=3, label=label)
    axes.set_xlabel("round")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path


def plot_run(rows: Sequence[dict], output_dir: str | Path, title: str) -> list[Path]:
    """Writes ``accuracy.png`` and ``bytes.png`` for a run's metrics rows.

    Returns:
        The paths written.
    """
    output_dir = Path(output_dir)
    accuracy = [
        ("central_accuracy", "central (global model)"),
        ("personalized_accuracy", "personalized (global x client mask)"),
        ("personal_accuracy", "personal (each client's own model)"),
        ("finetuned_personalized_accuracy", "global (x mask) + fine-tuning"),
        ("finetuned_personal_accuracy", "own model + fine-tuning"),
    ]
    traffic = [
        ("upload_bytes", "upload (encoded)"),
        ("upload_bytes_dense", "upload if dense float32"),
        ("upload_bytes_csr", "upload as SciPy CSR"),
        ("download_bytes", "download (broadcast)"),
    ]
    return [
        _plot(rows, accuracy, "accuracy", title, output_dir / "accuracy.png"),
        _plot(
            rows,
            traffic,
            "MB per round (all sampled clients)",
            title,
            output_dir / "bytes.png",
            scale=1e-6,
        ),
    ]


def plot_sweep(
    results: Sequence, path: str | Path, target: float, metric: str, note: str = ""
) -> Path:
    """Bytes to reach the target accuracy vs sparsity, one line per method.

    Args:
        results: `tffprune.sweep.SweepResult` items (the dense baseline is
            drawn as a horizontal line).
        path: The PNG to write.
        target: The target accuracy (for the title).
        metric: The accuracy metric (for the title).
        note: What sets this sweep apart, appended to the title (e.g. "int8
            uploads, 40 rounds").

    Returns:
        The path written.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    for result in results:
        if result.method == "none" and result.bytes_to_target is not None:
            axes.axhline(
                result.bytes_to_target / 1e6,
                color="gray",
                linestyle="--",
                label="dense FedAvg",
            )
    methods = sorted({r.method for r in results if r.method != "none"})
    # Missed points sit on the x axis; distinct markers keep overlaps visible.
    for method, miss_marker in zip(methods, itertools.cycle("x+12")):
        points = sorted(
            (r.sparsity, r.bytes_to_target)
            for r in results
            if r.method == method and r.bytes_to_target is not None
        )
        missed = [
            r.sparsity
            for r in results
            if r.method == method and r.bytes_to_target is None
        ]
        (line,) = axes.plot(
            [p[0] for p in points],
            [p[1] / 1e6 for p in points],
            marker="o",
            label=method,
        )
        if missed:
            axes.plot(
                missed,
                [0] * len(missed),
                linestyle="none",
                marker=miss_marker,
                markersize=9,
                clip_on=False,
                color=line.get_color(),
                label=f"{method}: target not reached",
            )
    axes.set_xlabel("sparsity")
    axes.set_ylabel("MB uploaded until the target is reached")
    title = f"{metric.replace('_', ' ')} >= {target:g}"
    axes.set_title(f"{title}, {note}" if note else title, fontsize=9)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path
