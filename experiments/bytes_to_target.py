"""Experiment 5: the fewest bytes, both directions, that reach a target accuracy.

Default (the comparison): in one run, trains each row of a setting for the
same number of rounds and counts the bytes, upload plus download, of the
rounds up to the first that reaches the target:

* ``fc_iid``: fc on IID Fashion-MNIST (100 clients, 10 per round, 1 epoch of
  batch 32 at lr 0.1, configs/sweep_fc.toml), central accuracy 0.80, 40
  rounds;
* ``lenet5_shards``: LeNet-5 on the 2-shards split (configs/shards.toml: 5
  epochs of batch 10 at lr 0.01), personalized accuracy 0.95, 50 rounds.

Rows: the baselines (dense FedAvg in float32; dense FedAvg with TFF's 8-bit
``compression_aggregator`` scheme, counted as TFF sends it: 8 bits for tensors
of 20,000 entries or more, float32 else, the model down in float32; FedAvg
with Jeurkar et al.'s pruning and SciPy CSR both ways; Sub-FedAvg with float32
values as it was before low-bit updates) and ours (Sub-FedAvg, int8 or int4
values down, 2- or 1-bit updates up with error feedback; on IID data new
clients start from the server's subnetwork) and, on fc, FedPM (masks over a
seeded random network: its probabilities down, value-table coded, sampled
masks up, range-coded). FedPM rows with more local epochs than the
setting's come with the setting's reference (dense float32 FedAvg on fc,
Sub-FedAvg float32 on shards) trained for as many epochs: more local work
takes the reference to the target in fewer rounds too, and
``ratio_same_epochs`` compares at equal local work (``--only`` adds the
reference rows of the chosen rows' epochs). Each row's bytes are the columns
of its metrics.csv named in BASELINES, FEDPM and OURS.

Usage:
    uv run python experiments/bytes_to_target.py            # both, about 5 h (estimate)
    uv run python experiments/bytes_to_target.py --setting fc_iid
    uv run python experiments/bytes_to_target.py --setting fc_iid --only FedPM
    uv run python experiments/bytes_to_target.py --setting fc_iid --only "20 epochs"
    uv run python experiments/bytes_to_target.py --quick         # smoke test
    uv run python experiments/bytes_to_target.py --replot --setting fc_iid
    uv run python experiments/bytes_to_target.py --sweep [--with NAME]

Writes results/bytes_both_ways_SETTING.csv, figures/bytes_both_ways_SETTING.png
and prints the README table. ``--sweep`` runs the older experiment instead:
`tffprune sweep` over weight/unit at sparsities 0.5-0.95 on
configs/sweep_fc.toml, ranked by upload bytes (the papers' view; results
bytes_to_target[_NAME].csv; ``--with NAME`` applies configs/NAME.toml on top).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
from pathlib import Path

from common import CONFIGS, RESULTS, configuration
from plot import FIGURES, bytes_both_ways, read_table

from tffprune.run import run_training
from tffprune.sweep import bytes_to_target, run_sweep

SWEEP_TARGET = 0.80
METHODS = ("weight", "unit")
SPARSITIES = (0.5, 0.8, 0.9, 0.95)

# label: (configuration changes, upload bytes column, download bytes column)
BASELINES = {
    "dense FedAvg, float32": (
        dict(aggregation="fedavg", method="none"),
        "upload_bytes",
        "download_bytes",
    ),
    "dense FedAvg, TFF 8-bit aggregator": (
        dict(
            aggregation="fedavg",
            method="none",
            upload_values="int8",
            error_feedback=False,
        ),
        "upload_bytes_tff_8bit",
        "download_bytes_dense",
    ),
    "FedAvg + pruning 50%, SciPy CSR (Jeurkar et al.)": (
        dict(
            aggregation="fedavg",
            method="global-weight",
            sparsity=0.5,
            prune_logits=True,
            prune_biases=True,
        ),
        "upload_bytes_csr",
        "download_bytes_csr",
    ),
    "Sub-FedAvg 50%, float32 (before)": (
        dict(aggregation="subfedavg", method="weight", sparsity=0.5),
        "upload_bytes",
        "download_bytes",
    ),
}


BASELINE = "dense FedAvg, float32"
BEFORE = "Sub-FedAvg 50%, float32 (before)"
# The reference a setting's target is set against (its 20x or 32x).
REFERENCE = {"fc_iid": BASELINE, "lenet5_shards": BEFORE}


def _ours(sparsity: float, download: str, upload: str, new_clients: str) -> tuple:
    first = ", new clients get the subnetwork" if new_clients == "subnetwork" else ""
    label = f"Sub-FedAvg {sparsity:.0%}, {download} down, {upload} up + EF{first}"
    changes = dict(
        aggregation="subfedavg",
        method="weight",
        sparsity=sparsity,
        download_values=download,
        upload_values=upload,
        new_clients=new_clients,
    )
    return label, (changes, "upload_bytes", "download_bytes")


def _fedpm(probability_bits: int, local_epochs: int, own: bool = False) -> tuple:
    down = "float32" if probability_bits == 32 else f"{probability_bits}-bit"
    label = (
        f"FedPM, {down} probabilities down (coded), masks up, "
        f"{local_epochs} epoch{'s' if local_epochs > 1 else ''}"
    )
    changes = dict(
        aggregation="fedpm",
        client_optimizer="adam",
        client_learning_rate=0.1,
        probability_bits=probability_bits,
        local_epochs=local_epochs,
    )
    if not own:
        return label, (changes, "upload_bytes", "download_bytes")
    changes["personal_models"] = True
    label += ", own masks"
    return label, (changes, "upload_bytes", "download_bytes", "personal_accuracy")


def _same_epochs(reference: str, local_epochs: int) -> tuple:
    """A reference row trained for ``local_epochs`` instead of the setting's."""
    changes, up, down = BASELINES[reference]
    label = f"{reference}, {local_epochs} epochs"
    return label, ({**changes, "local_epochs": local_epochs}, up, down)


# FedPM (Isik et al., 2023): masks over a seeded network, Adam at 0.1 over the
# scores as its code; the download is coded (`tffprune.fl.fedpm`). On shards,
# each client's own network (the seed's weights at the mask it last uploaded)
# is measured on its own test data (``personal_accuracy``): FedPM's
# counterpart of Sub-FedAvg's personalized accuracy (the server's weights at
# the client's own mask).
FEDPM = {
    "fc_iid": dict(
        [
            *(
                _fedpm(bits, epochs)
                for bits, epochs in (
                    (32, 1),
                    (2, 1),
                    (32, 3),
                    (32, 5),
                    (32, 10),
                    (32, 20),
                )
            ),
            # More local work helps dense FedAvg too: its rows with the
            # epochs of FedPM's give the ratio at equal local work.
            *(_same_epochs(BASELINE, epochs) for epochs in (5, 10, 20)),
        ]
    ),
    "lenet5_shards": dict(
        [
            *(_fedpm(bits, 5, own=True) for bits in (32, 2, 1)),
            *(_fedpm(bits, 10, own=True) for bits in (2, 1)),
            _same_epochs(BEFORE, 10),
        ]
    ),
}

# Under IID data a new client loses nothing by starting from the server's
# subnetwork; under shards it would lose its personal mask (it starts at the
# target and never prunes by its own data), so there new clients get the
# whole model, as in the reference code.
OURS = {
    "fc_iid": dict(
        _ours(sparsity, download, upload, "subnetwork")
        for sparsity, download, upload in (
            (0.5, "int8", "int2"),
            (0.5, "int4", "int2"),
            (0.5, "int4", "int1"),
            (0.8, "int4", "int2"),
            (0.9, "int4", "int2"),
        )
    ),
    "lenet5_shards": dict(
        _ours(sparsity, download, upload, "dense")
        for sparsity, download, upload in (
            (0.5, "int8", "int2"),
            (0.5, "int4", "int2"),
            (0.5, "int4", "int1"),
            (0.8, "int4", "int2"),
        )
    ),
}
# setting: (config files, metric, target, rounds)
SETTINGS = {
    "fc_iid": (("sweep_fc",), "central_accuracy", 0.80, 40),
    "lenet5_shards": (("shards",), "personalized_accuracy", 0.95, 50),
}
COLUMNS = (
    "setting",
    "label",
    "metric",
    "target",
    "reached_round",
    "upload_bytes_to_target",
    "download_bytes_to_target",
    "total_bytes_to_target",
    "ratio_to_dense_float32",
    "ratio_to_subfedavg_float32",
    "local_epochs",
    "ratio_same_epochs",
    "final_accuracy",
    "best_accuracy",
    "rounds_run",
    "median_upload_bound_ratio",
    "median_download_bound_ratio",
    "run_dir",
)


def _read_rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float:
    return float("nan") if text in ("", None) else float(text)


def measure(rows: list[dict], metric: str, target: float, up: str, down: str) -> dict:
    """Bytes to the target from a run's metrics rows (pure)."""
    parsed = [
        {
            "round": int(r["round"]),
            metric: _number(r[metric]),
            "up": int(float(r[up])),
            "down": int(float(r[down])),
            "total": int(float(r[up])) + int(float(r[down])),
        }
        for r in rows
    ]
    reached = bytes_to_target(parsed, target, metric, "total")
    upload = bytes_to_target(parsed, target, metric, "up")
    accuracies = [r[metric] for r in parsed if r[metric] == r[metric]]
    ratios = {
        name: [_number(r[name]) for r in rows if r[name] not in ("", "nan")]
        for name in ("upload_bound_ratio", "download_bound_ratio")
    }
    return {
        "reached_round": reached[0] if reached else "",
        "upload_bytes_to_target": upload[1] if reached else "",
        "download_bytes_to_target": reached[1] - upload[1] if reached else "",
        "total_bytes_to_target": reached[1] if reached else "",
        "final_accuracy": accuracies[-1] if accuracies else "",
        "best_accuracy": max(accuracies) if accuracies else "",
        "rounds_run": len(parsed),
        **{
            f"median_{name}": round(statistics.median(values), 4) if values else ""
            for name, values in ratios.items()
        },
    }


def setting_rows(setting: str) -> dict[str, tuple]:
    """Every row of ``setting``: label -> (changes, up column, down column, ...)."""
    return {**BASELINES, **FEDPM.get(setting, {}), **OURS[setting]}


def row_labels(setting: str, only: str | None = None) -> list[str]:
    """The rows to train: all, or the two references and those holding ``only``.

    With ``only``, the setting's reference rows trained for the local epochs
    of the chosen rows come too, so that every ratio at equal local work has
    its reference in the same run.
    """
    rows = setting_rows(setting)
    if only is None:
        return list(rows)
    chosen = [label for label in rows if only in label]
    epochs = {rows[label][0].get("local_epochs") for label in chosen}
    chosen += [
        label
        for label, (changes, *_) in rows.items()
        if label.startswith(f"{REFERENCE[setting]}, ")
        and changes["local_epochs"] in epochs
        and label not in chosen
    ]
    return [BASELINE, BEFORE, *chosen]


def compare(
    setting: str,
    quick: bool,
    output_dir: Path,
    results: Path,
    only: str | None = None,
) -> Path:
    """Trains every row of ``setting`` and writes its table and figure.

    With ``only``, the rows whose label holds it and the two reference rows,
    written to ``bytes_both_ways_SETTING_ONLY.csv``.
    """
    names, metric, target, rounds = SETTINGS[setting]
    if quick:
        target = 0.3
    table = []
    rows = setting_rows(setting)
    labels = row_labels(setting, only)
    if quick:  # the reference and our smallest
        labels = [BASELINE, labels[-1]]
    for label in labels:
        # A row may name its own accuracy (FedPM's own masks on shards).
        changes, up, down, *own_metric = rows[label]
        row_metric = own_metric[0] if own_metric else metric
        config = configuration(*names, quick=quick, rounds=rounds, eval_every=1)
        config = config.replace(**changes)
        if quick:
            config = config.replace(rounds=2, eval_every=1)
        run_dir = output_dir / setting / _slug(label)
        run_training(config, run_dir, overwrite=True, progress=False)
        row = measure(_read_rows(run_dir / "metrics.csv"), row_metric, target, up, down)
        table.append(
            dict(
                setting=setting,
                label=label,
                metric=row_metric,
                target=target,
                local_epochs=config.local_epochs,
                **row,
            )
        )
        table[-1]["run_dir"] = str(run_dir)
        print(f"{setting} {label}: {_summary(table[-1])}", flush=True)
    for baseline, column in (
        (BASELINE, "ratio_to_dense_float32"),
        (BEFORE, "ratio_to_subfedavg_float32"),
    ):
        reference = next((r for r in table if r["label"] == baseline), {})
        for row in table:
            row[column] = _ratio(reference, row)
    same = {
        r["local_epochs"]: r
        for r in table
        if r["label"] == REFERENCE[setting]
        or r["label"].startswith(f"{REFERENCE[setting]}, ")
    }
    for row in table:
        row["ratio_same_epochs"] = _ratio(same.get(row["local_epochs"]), row)
    results.mkdir(parents=True, exist_ok=True)
    suffix = f"_{_slug(only)}" if only is not None else ""
    path = results / f"bytes_both_ways_{setting}{suffix}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {path}")
    print(f"wrote {bytes_both_ways(path, FIGURES if not quick else results)}")
    print(markdown(table))
    return path


def _ratio(reference: dict | None, row: dict) -> float | str:
    """How many times fewer bytes to the target ``row`` took than ``reference``."""
    both = (
        row["total_bytes_to_target"],
        (reference or {}).get("total_bytes_to_target"),
    )
    return round(both[1] / both[0], 2) if all(both) else ""


def _slug(label: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in label.lower())
    return "_".join(part for part in keep.split("_") if part)


def _summary(row: dict) -> str:
    if row["reached_round"] == "":
        best = row["best_accuracy"]
        best = f"{best:.4f}" if best != "" else "none: never evaluated"
        return f"not reached in {row['rounds_run']} rounds (best {best})"
    return (
        f"round {row['reached_round']}, "
        f"{row['total_bytes_to_target'] / 1e6:.1f} MB "
        f"(up {row['upload_bytes_to_target'] / 1e6:.1f}, "
        f"down {row['download_bytes_to_target'] / 1e6:.1f}), "
        f"final {row['final_accuracy']:.4f}"
    )


def _times(ratio) -> str:
    return f"{ratio}x" if ratio not in ("", None) else "-"


def markdown(table: list[dict]) -> str:
    """The README table of one setting."""
    lines = [
        "| method | round | up MB | down MB | total MB | x below dense f32 "
        "| x below Sub-FedAvg f32 | x below the reference, same epochs | final acc. "
        "| bound ratio up / down |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        if row["reached_round"] == "":
            cells = ["not reached", "", "", "", "", "", ""]
        else:
            cells = [
                str(row["reached_round"]),
                f"{row['upload_bytes_to_target'] / 1e6:.1f}",
                f"{row['download_bytes_to_target'] / 1e6:.1f}",
                f"{row['total_bytes_to_target'] / 1e6:.1f}",
                _times(row["ratio_to_dense_float32"]),
                _times(row["ratio_to_subfedavg_float32"]),
                _times(row.get("ratio_same_epochs")),
            ]
        bounds = (
            f"{row['median_upload_bound_ratio']} / {row['median_download_bound_ratio']}"
        )
        lines.append(
            f"| {row['label']} | "
            + " | ".join(cells)
            + f" | {row['final_accuracy']:.4f} | {bounds} |"
        )
    return "\n".join(lines)


def replot(results: Path, settings: list[str]) -> None:
    """Redraws the figures and reprints the tables from the results files."""
    for setting in settings:
        path = results / f"bytes_both_ways_{setting}.csv"
        print(f"wrote {bytes_both_ways(path, FIGURES)}")
        print(markdown(read_table(path)))


def sweep(arguments: argparse.Namespace) -> None:
    """The older experiment: `tffprune sweep`, ranked by upload bytes."""
    stem = "_".join(["bytes_to_target", *arguments.overrides])
    output_dir = arguments.output_dir or Path("runs") / stem
    base = configuration("sweep_fc", *arguments.overrides, quick=arguments.quick)
    _, winner = run_sweep(
        base,
        0.3 if arguments.quick else SWEEP_TARGET,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke test")
    parser.add_argument(
        "--setting", nargs="+", choices=sorted(SETTINGS), default=sorted(SETTINGS)
    )
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="only the rows whose label holds TEXT (and the two references)",
    )
    parser.add_argument("--sweep", action="store_true", help="the older sweep")
    parser.add_argument(
        "--with",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="NAME",
        choices=sorted(p.stem for p in CONFIGS.glob("*.toml")),
        help="--sweep: configs/NAME.toml applied on top of sweep_fc.toml",
    )
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="--sweep: continue")
    parser.add_argument(
        "--replot", action="store_true", help="figures and tables from --results"
    )
    arguments = parser.parse_args()
    if arguments.replot:
        replot(arguments.results, arguments.setting)
        return
    if arguments.sweep:
        sweep(arguments)
        return
    output_dir = arguments.output_dir or Path("runs") / "bytes_both_ways"
    for setting in arguments.setting:
        compare(setting, arguments.quick, output_dir, arguments.results, arguments.only)


if __name__ == "__main__":
    main()
