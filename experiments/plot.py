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
import textwrap
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


def read_table(path: Path) -> list[dict]:
    """A bytes_both_ways_*.csv with its byte and accuracy columns as numbers."""
    table = read(path)
    for row in table:
        for column in (
            "total_bytes_to_target",
            "upload_bytes_to_target",
            "download_bytes_to_target",
        ):
            row[column] = int(row[column]) if row[column] else ""
        row["final_accuracy"] = float(row["final_accuracy"])
    return table


def bytes_both_ways(path: Path, figures: Path = FIGURES) -> Path:
    """Stacked bars: MB to the target, download then upload, per method."""
    table = read_table(path)
    setting, metric, target = (
        table[0]["setting"],
        table[0]["metric"],
        table[0]["target"],
    )
    figure, axes = plt.subplots(figsize=(10, 0.5 * len(table) + 1.6))
    labels = [textwrap.fill(r["label"], 44) for r in table][::-1]
    widest = max(
        (r["total_bytes_to_target"] / 1e6 for r in table if r["reached_round"]),
        default=1.0,
    )
    for index, row in enumerate(table[::-1]):
        if not row["reached_round"]:
            axes.text(
                0.01 * widest,
                index,
                f"not reached in {row['rounds_run']} rounds",
                va="center",
                fontsize=8,
            )
            continue
        up = row["upload_bytes_to_target"] / 1e6
        down = row["download_bytes_to_target"] / 1e6
        axes.barh(index, down, color="tab:blue", label="download")
        axes.barh(index, up, left=down, color="tab:orange", label="upload")
        ratio = row["ratio_to_dense_float32"] or row["ratio_to_subfedavg_float32"]
        reference = "dense f32" if row["ratio_to_dense_float32"] else "Sub-FedAvg f32"
        axes.text(
            up + down,
            index,
            f" {up + down:,.1f} MB, round {row['reached_round']} "
            f"({ratio}x below {reference})",
            va="center",
            fontsize=8,
        )
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_ylim(-0.8, len(labels) - 0.4)
    axes.set_xlim(0, widest * 1.9)
    axes.set_xlabel("MB to the target, both directions")
    axes.set_title(f"{setting}: bytes to {metric.replace('_', ' ')} {target}")
    handles, names = axes.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), loc="lower right", fontsize=8)
    axes.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    return save(figure, path.stem, figures)


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
    """Accuracy vs round per split (its first seed), a colour per algorithm.

    Personal accuracy solid, personalized dotted, central dashed.
    """
    rows = read(path)
    outputs = []
    for split in dict.fromkeys(r["split"] for r in rows):
        seed = next(r["seed"] for r in rows if r["split"] == split)
        figure, axes = plt.subplots(figsize=(6, 4))
        for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
            points = [
                r
                for r in rows
                if r["split"] == split
                and r["seed"] == seed
                and r["algorithm"] == algorithm
            ]
            if not points:
                continue
            rounds = [int(r["round"]) for r in points]
            color = None
            for column, style, name in (
                ("personal_accuracy", "-o", "personal"),
                ("personalized_accuracy", ":", "personalized"),
                ("central_accuracy", "--", "central"),
            ):
                (line,) = axes.plot(
                    rounds,
                    [float(r[column]) for r in points],
                    style,
                    color=color,
                    markersize=3,
                    lw=1.2 if name == "personal" else 0.8,
                    label=f"{algorithm}, {name}",
                )
                color = line.get_color()
        axes.set_xlabel("round")
        axes.set_ylabel("test accuracy")
        axes.set_title(
            f"lenet5, Fashion-MNIST, {split.replace('_', ' alpha ')}, seed {seed}",
            fontsize=9,
        )
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=6)
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


def _jeurkar_rows(rows: list[dict], setup: str, pruning: str, scope: str):
    """A setting's rows with the dense (rate 0) row first."""
    chosen = [
        r
        for r in rows
        if r["setup"] == setup
        and (
            (r["pruning"] == pruning and r["scope"] == scope) or r["pruning"] == "none"
        )
    ]
    return sorted(chosen, key=lambda r: float(r["rate"]))


JEURKAR_PANELS = (
    ("unstructured", "paper", "unstructured (global, all parameters)"),
    ("structured", "paper", "structured (per layer, logits pruned)"),
    ("structured", "logits kept", "structured, logits kept"),
)


def jeurkar_curves(path: Path, figures: Path = FIGURES) -> list[Path]:
    """The paper's Figures 8 and 10: accuracy vs round, a line per rate."""
    rows = read(path)
    outputs = []
    for setup in dict.fromkeys(r["setup"] for r in rows):
        panels_wanted = [
            p
            for p in JEURKAR_PANELS
            if any(
                r["setup"] == setup and (r["pruning"], r["scope"]) == p[:2]
                for r in rows
            )
        ]
        figure, panels = plt.subplots(
            1, len(panels_wanted), figsize=(4.5 * len(panels_wanted), 4), sharey=True
        )
        panels = panels if len(panels_wanted) > 1 else [panels]
        colors = plt.cm.viridis([i / 10 for i in range(10)])
        for axes, (pruning, scope, title) in zip(panels, panels_wanted, strict=True):
            for row_group in _group_by_rate(_jeurkar_rows(rows, setup, pruning, scope)):
                rate = float(row_group[0]["rate"])
                axes.plot(
                    [int(r["round"]) for r in row_group],
                    [float(r["central_accuracy"]) for r in row_group],
                    color="k" if rate == 0 else colors[round(rate * 10)],
                    ls="--" if rate == 0 else "-",
                    lw=1,
                    label="0% (dense)" if rate == 0 else f"{rate:.0%}",
                )
            axes.set_title(f"{title}\n{setup}", fontsize=9)
            axes.set_xlabel("round")
            axes.grid(alpha=0.3)
        panels[0].set_ylabel("central test accuracy")
        panels[-1].legend(fontsize=7, ncol=2, title="pruning rate")
        figure.tight_layout()
        outputs.append(save(figure, f"jeurkar_curves_{setup}", figures))
    return outputs


def jeurkar_resnet12_curves(
    path: Path, paper_path: Path, figures: Path = FIGURES
) -> Path:
    """Our ResNet12 rows' accuracy by round beside the paper's own logs.

    Solid: ours (Fashion-MNIST, as-run); dotted: ours at a smaller width
    multiplier (the rows run at less than full width to fit the machine);
    dashed, the same colour: the paper's notebooks' logged central accuracy
    (MNIST), for the rates we have run.
    """
    rows = [r for r in read(path) if r["setup"] == "as-run" and r["scope"] == "paper"]
    paper = read(paper_path)
    colors = plt.cm.viridis([i / 10 for i in range(10)])
    figure, panels = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for axes, pruning in zip(panels, ("unstructured", "structured"), strict=True):
        chosen = _jeurkar_rows(rows, "as-run", pruning, "paper")
        for multiplier in sorted({_width(r) for r in chosen}, reverse=True):
            for group in _group_by_rate([r for r in chosen if _width(r) == multiplier]):
                rate = float(group[0]["rate"])
                color = "k" if rate == 0 else colors[round(rate * 10)]
                label = "0% (dense)" if rate == 0 else f"{rate:.0%}"
                axes.plot(
                    [int(r["round"]) for r in group],
                    [float(r["central_accuracy"]) for r in group],
                    color=color,
                    lw=1.2,
                    ls="-" if multiplier == 1.0 else ":",
                    label=label
                    if multiplier == 1.0
                    else f"{label}, width {multiplier:g}",
                )
        for rate in sorted({float(r["rate"]) for r in chosen}):
            color = "k" if rate == 0 else colors[round(rate * 10)]
            theirs = [
                r
                for r in paper
                if r["notebook"] == pruning and float(r["rate"]) == rate
            ]
            axes.plot(
                [int(r["round"]) for r in theirs],
                [float(r["central_accuracy"]) for r in theirs],
                color=color,
                ls="--",
                lw=1,
            )
        narrower = any(_width(r) != 1.0 for r in chosen)
        axes.set_title(
            f"ResNet12 {pruning}: ours (Fashion-MNIST) solid"
            + (" (dotted: narrower)" if narrower else "")
            + ",\nthe paper's logs (MNIST) dashed",
            fontsize=9,
        )
        axes.set_xlabel("round")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("central test accuracy")
    # One key for both panels, below them: inside, it hid the curves.
    rates = {}
    for axes in panels:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            rates.setdefault(label, handle)
    figure.legend(
        list(rates.values()),
        list(rates.keys()),
        loc="lower center",
        ncol=len(rates),
        fontsize=7,
        title="pruning rate",
        title_fontsize=7,
    )
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    return save(figure, "jeurkar_resnet12_curves", figures)


def _width(row: dict) -> float:
    """A row's width multiplier (1.0 where the results have no such column)."""
    return float(row.get("width") or 1.0)


def _group_by_rate(rows: list[dict]) -> list[list[dict]]:
    groups: dict[float, list[dict]] = {}
    for row in rows:
        groups.setdefault(float(row["rate"]), []).append(row)
    return [sorted(g, key=lambda r: int(r["round"])) for _, g in sorted(groups.items())]


def jeurkar_table(path: Path, figures: Path = FIGURES) -> Path:
    """Table 1 beside ours: best accuracy per rate; bytes and rounds to target."""
    rows = read(path)
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    figure, (accuracy_axes, rounds_axes, bytes_axes) = plt.subplots(
        1, 3, figsize=(15, 4)
    )
    styles = {"as-run": "-", "as-described": ":"}
    for pruning, color in (("unstructured", "C0"), ("structured", "C3")):
        chosen = _jeurkar_rows(rows, setups[0], pruning, "paper")
        rates = [float(r["rate"]) for r in chosen]
        accuracy_axes.plot(
            rates,
            [float(r["paper_accuracy"]) for r in chosen],
            "s--",
            color=color,
            alpha=0.5,
            label=f"paper (MNIST), {pruning}",
        )
        for setup in setups:
            chosen = _jeurkar_rows(rows, setup, pruning, "paper")
            accuracy_axes.plot(
                [float(r["rate"]) for r in chosen],
                [float(r["best_accuracy"]) for r in chosen],
                "o" + styles.get(setup, "-"),
                color=color,
                label=f"ours, {setup}, {pruning}",
            )
            rounds_axes.plot(
                [float(r["rate"]) for r in chosen],
                [int(r["target_round"]) if r["target_round"] else None for r in chosen],
                "o" + styles.get(setup, "-"),
                color=color,
                label=f"{setup}, {pruning}",
            )
    for setup in setups:
        for pruning, scope, color in (
            ("unstructured", "paper", "C0"),
            ("structured", "logits kept", "C2"),
        ):
            chosen = _jeurkar_rows(rows, setup, pruning, scope)
            if len(chosen) < 2:
                continue
            for column, label, marker in (
                ("npz_bytes_to_target", "CSR .npz", "s"),
                ("bytes_to_target", "tffprune", "o"),
            ):
                bytes_axes.plot(
                    [float(r["rate"]) for r in chosen],
                    [int(r[column]) / 2**20 if r[column] else None for r in chosen],
                    marker + styles.get(setup, "-"),
                    color=color,
                    mfc="none" if label == "CSR .npz" else color,
                    label=f"{label}, {setup}, {pruning}"
                    + (", logits kept" if scope != "paper" else ""),
                )
    accuracy_axes.set_title("best central accuracy in 25 rounds", fontsize=9)
    accuracy_axes.set_ylabel("accuracy")
    # jeurkar_table1.py's TARGET; the paper's 85% is for MNIST.
    rounds_axes.set_title("first round at central accuracy 0.70", fontsize=9)
    rounds_axes.set_ylabel("round (missing: never)")
    bytes_axes.set_title("bytes to accuracy 0.70, both directions", fontsize=9)
    bytes_axes.set_ylabel("MiB")
    for axes in (accuracy_axes, rounds_axes, bytes_axes):
        axes.set_xlabel("pruning rate")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return save(figure, "jeurkar_table1", figures)


SERVER_STEPS = {"sgd": "FedAvg step", "sgdm": "FedAvgM", "adam": "FedAdam"}


def server_optimizers_curves(path: Path, figures: Path = FIGURES) -> Path:
    """Central accuracy per round, one line per server optimizer and rate."""
    rows = read(path)
    figure, axis = plt.subplots(figsize=(7, 4.2))
    styles = {"sgd": "-", "sgdm": "--", "adam": ":"}
    keys = dict.fromkeys((r["optimizer"], r["server_learning_rate"]) for r in rows)
    for optimizer, rate in keys:
        points = [
            r
            for r in rows
            if (r["optimizer"], r["server_learning_rate"]) == (optimizer, rate)
        ]
        axis.plot(
            [int(r["round"]) for r in points],
            [float(r["central_accuracy"]) for r in points],
            styles[optimizer],
            marker=".",
            label=f"{SERVER_STEPS[optimizer]}, server lr {float(rate):g}",
        )
    axis.axhline(0.80, color="grey", linewidth=0.8)
    axis.set_xlabel("round")
    axis.set_ylabel("central accuracy")
    axis.set_title("fc, IID Fashion-MNIST, Sub-FedAvg 50%: server optimizers")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return save(figure, "server_optimizers", figures)


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
    for comparison in sorted(results.glob("bytes_both_ways_*.csv")):
        print(f"wrote {bytes_both_ways(comparison, figures)}")
    structured = results / "structured_vs_unstructured_curves.csv"
    if structured.exists():
        for output in structured_curves(structured, figures):
            print(f"wrote {output}")
    jeurkar = results / "jeurkar_table1.csv"
    if jeurkar.exists():
        print(f"wrote {jeurkar_table(jeurkar, figures)}")
        for output in jeurkar_curves(results / "jeurkar_table1_curves.csv", figures):
            print(f"wrote {output}")
    resnet = results / "jeurkar_resnet12_curves.csv"
    if resnet.exists():
        paper = results / "jeurkar_resnet12_paper_curves.csv"
        print(f"wrote {jeurkar_resnet12_curves(resnet, paper, figures)}")
    servers = results / "server_optimizers_curves.csv"
    if servers.exists():
        print(f"wrote {server_optimizers_curves(servers, figures)}")
    curves = results / "personalization_curves.csv"
    if curves.exists():
        for output in personalization_curves(curves, figures):
            print(f"wrote {output}")


if __name__ == "__main__":
    main()
