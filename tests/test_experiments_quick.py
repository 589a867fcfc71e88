"""Every experiment script runs in its --quick mode, so none can rot."""

import contextlib
import csv
import io
import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(arguments):
    """Runs a script as ``python script args...`` would, in this process.

    In-process, the script's imports (TensorFlow, TFF: about 10 s a process)
    are paid once per test worker instead of once per script.
    """
    script = ROOT / arguments[0]
    output = io.StringIO()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *map(str, arguments[1:])]
    sys.path.insert(0, str(script.parent))
    try:
        with contextlib.chdir(ROOT), contextlib.redirect_stdout(output):
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return output.getvalue()


def test_train_acceptance_quick(tmp_path):
    output = _run(
        [
            "experiments/train_acceptance.py",
            "--quick",
            "--output-dir",
            str(tmp_path),
            "--only",
            "shards_subfedavg_weight50",
        ]
    )
    assert "wrote" in output
    assert (tmp_path / "acceptance.csv").read_text().count("\n") == 2


def test_tables_1_2_quick(tmp_path):
    output = _run(
        [
            "experiments/tables_1_2.py",
            "--quick",
            "--sparsities",
            "0.5",
            "--output",
            str(tmp_path / "tables.csv"),
        ]
    )
    assert "| prune-trained | 0.50 |" in output


def test_sparsity_sweep_quick(tmp_path):
    _run(
        [
            "experiments/sparsity_sweep.py",
            "--quick",
            "--only",
            "centralized",
            "--output",
            str(tmp_path / "sweep.csv"),
        ]
    )
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 2 * 2  # header, dense, 2 methods x 2 sparsities


def test_export_recipe_quick(tmp_path):
    output = _run(["tflite_export/recipe.py", "--quick", "--work-dir", str(tmp_path)])
    assert "| tfmot_cnn dense | float32 | " in output
    assert "| tfmot_cnn 80% | pruned int8 | " in output
    lut_row = next(line for line in output.splitlines() if "+ LUT |" in line)
    assert "4-bit" in lut_row


def test_personalization_quick(tmp_path):
    output = _run(
        [
            "experiments/personalization.py",
            "--quick",
            "--algorithms",
            "subfedavg_reference",
            "--output-dir",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path / "results"),
        ]
    )
    assert "wrote" in output
    with (tmp_path / "results" / "personalization.csv").open() as handle:
        table = list(csv.DictReader(handle))
    # Our run, then the reference code's two rows.
    assert [r["source"] for r in table] == ["tffprune"] + [
        "reference code (issue 18)"
    ] * 2
    ours = table[0]
    for column in ("personal_accuracy", "finetuned_personal_accuracy"):
        assert 0.0 <= float(ours[column]) <= 1.0
    # 20 clients, 4 per round, 2 rounds: at least 12 never took part.
    assert int(ours["clients_without_personal_model"]) >= 12
    curves = (tmp_path / "results" / "personalization_curves.csv").read_text()
    assert curves.count("shards,0,subfedavg_reference,") == 2  # 2 rounds


def test_every_experiment_config_loads():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from common import CONFIGS, configuration
    finally:
        sys.path.pop(0)
    names = [p.stem for p in CONFIGS.glob("*.toml") if p.stem != "defaults"]
    assert len(names) >= 5
    for name in names:
        config = configuration(name)
        assert config.num_clients == 100  # the shared default survives


def test_bytes_both_ways_quick(tmp_path):
    output = _run(
        [
            "experiments/bytes_to_target.py",
            "--quick",
            "--setting",
            "fc_iid",
            "--output-dir",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path / "results"),
        ]
    )
    assert "| dense FedAvg, float32 |" in output
    with (tmp_path / "results" / "bytes_both_ways_fc_iid.csv").open() as handle:
        rows = {row["label"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 2  # --quick: dense and our smallest
    dense = rows["dense FedAvg, float32"]
    ours = rows[
        "Sub-FedAvg 90%, int4 down, int2 up + EF, new clients get the subnetwork"
    ]
    # Whether or not the quick runs reach the target, the bytes were counted:
    # ours sends a small fraction of dense float32 in the rounds it ran.
    runs = tmp_path / "runs" / "fc_iid"
    assert (
        runs
        / "sub_fedavg_90_int4_down_int2_up_ef_new_clients_get_the_subnetwork"
        / "metrics.csv"
    ).exists()
    assert dense["rounds_run"] == ours["rounds_run"] == "2"
    assert (tmp_path / "results" / "bytes_both_ways_fc_iid.png").stat().st_size > 0


def test_bytes_to_target_only_brings_the_reference_at_the_same_epochs():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from bytes_to_target import row_labels, setting_rows
    finally:
        sys.path.pop(0)
    fc = row_labels("fc_iid", "20 epochs")
    assert fc == [
        "dense FedAvg, float32",
        "Sub-FedAvg 50%, float32 (before)",
        "FedPM, float32 probabilities down (coded), masks up, 20 epochs",
        "dense FedAvg, float32, 20 epochs",
    ]
    shards = row_labels("lenet5_shards", "1-bit")
    # the 5- and 10-epoch 1-bit rows, Sub-FedAvg (the shards' reference) at
    # 10 epochs; its 5-epoch row is the setting's own
    assert shards[2:] == [
        "FedPM, 1-bit probabilities down (coded), masks up, 5 epochs, own masks",
        "FedPM, 1-bit probabilities down (coded), masks up, 10 epochs, own masks",
        "Sub-FedAvg 50%, float32 (before), 10 epochs",
    ]
    changes = setting_rows("lenet5_shards")[shards[-1]][0]
    assert changes["local_epochs"] == 10 and changes["aggregation"] == "subfedavg"
    assert row_labels("fc_iid") == list(setting_rows("fc_iid"))


def test_bytes_to_target_sweep_quick(tmp_path):
    output = _run(
        [
            "experiments/bytes_to_target.py",
            "--quick",
            "--sweep",
            "--with",
            "int8_uploads_40_rounds",
            "--output-dir",
            str(tmp_path / "sweep"),
            "--results",
            str(tmp_path / "results"),
        ]
    )
    assert "wrote" in output
    results = tmp_path / "results" / "bytes_to_target_int8_uploads_40_rounds.csv"
    rows = results.read_text().splitlines()
    assert len(rows) == 1 + 3  # dense, weight 0.5, unit 0.5
    config = (tmp_path / "sweep" / "runs" / "none_0" / "config.toml").read_text()
    assert 'upload_values = "int8"' in config


def test_structured_vs_unstructured_quick(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    header = "model,method,sparsity,rounds,final_accuracy\n"
    (results / "structured_vs_unstructured.csv").write_text(
        header
        + "resnet12,channel,0.9,60,0.6822\n"  # another setting: kept
        + "resnet12,channel,0.5,60,9.9\n"  # rerun below: replaced
    )
    output = _run(
        [
            "experiments/structured_vs_unstructured.py",
            "--quick",
            "--resnet-width",
            "0.0625",  # the script's path, at a sixteenth of the compute
            "--output-dir",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path / "results"),
        ]
    )
    assert "wrote" in output
    table = (results / "structured_vs_unstructured.csv").read_text().splitlines()
    # channel and global weight at 50%, then the kept row at 90%
    assert len(table) == 1 + 2 + 1
    assert table[3].startswith("resnet12,channel,0.9,60,0.6822")
    assert not any(",9.9," in line for line in table)


def test_jeurkar_table1_quick(tmp_path):
    results = tmp_path / "results"
    output = _run(
        [
            "experiments/jeurkar_table1.py",
            "--quick",
            "--output-dir",
            str(tmp_path / "runs"),
            "--results",
            str(results),
        ]
    )
    assert "wrote" in output
    with (results / "jeurkar_table1.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["pruning"], r["rate"]) for r in rows] == [
        ("none", "0.0"),
        ("structured", "0.5"),
        ("unstructured", "0.5"),
    ]
    dense, structured, unstructured = rows
    # The paper's SimpleCNN, dense, as its code sends it: 0.35 "MB" (Table 1),
    # an uncompressed .npz of CSR arrays per tensor, in MiB. CSR costs 4 bytes
    # of value and 4 of column index per entry: twice our float32 codec.
    mib = 2**20
    assert int(dense["upload_bytes_npz"]) / mib == pytest.approx(0.35, abs=0.005)
    assert int(dense["upload_bytes"]) < 0.51 * int(dense["upload_bytes_csr"])
    # At 50% both kinds upload half the entries: the paper's 0.18.
    for row in (structured, unstructured):
        assert float(row["measured_sparsity"]) == pytest.approx(0.5, abs=0.01)
        assert int(row["upload_bytes_npz"]) / mib == pytest.approx(0.18, abs=0.005)
    config = tmp_path / "runs" / "as-run_unstructured_paper_0.5" / "config.toml"
    text = config.read_text()
    assert "prune_biases = true" in text and "prune_logits = true" in text
    assert "num_clients = 2" in text


def test_jeurkar_resnet12_rows_resume_and_skip_finished_ones(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    # A table whose dense row finished earlier at --quick's width, and whose
    # 80% row ran at another width (the values are this test's own, so a rerun
    # of either row would show).
    header = (
        "dataset,setup,pruning,scope,rate,width,rounds,best_accuracy,best_round,"
        "paper_megabytes\n"
    )
    (results / "jeurkar_resnet12.csv").write_text(
        header
        + "fashion_mnist,as-run,none,paper,0.0,0.125,15,0.1234,7,155.74\n"
        + "fashion_mnist,as-run,unstructured,paper,0.8,1.0,15,0.5678,9,49.35\n"
    )
    output = _run(
        [
            "experiments/jeurkar_table1.py",
            "--quick",
            "--model",
            "jeurkar_resnet12",
            "--setups",
            "as-run",
            "--output-dir",
            str(tmp_path / "runs"),
            "--results",
            str(results),
            "--max-runs",
            "1",
        ]
    )

    # The abstract's rows first (dense, 80% unstructured, 30% structured); the
    # finished dense row is not run again, so 80% unstructured at this width
    # is next (the full-width one is another row).
    assert re.findall(r"^== (\S+)", output, re.M) == [
        "jeurkar_resnet12_as-run_unstructured_paper_0.8_width_0.125"
    ]
    with (results / "jeurkar_resnet12.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["pruning"], r["rate"], r["width"]) for r in rows] == [
        ("none", "0.0", "0.125"),
        ("unstructured", "0.8", "1.0"),
        ("unstructured", "0.8", "0.125"),
    ]
    assert (rows[0]["best_accuracy"], rows[0]["best_round"]) == ("0.1234", "7")
    assert (rows[1]["best_accuracy"], rows[1]["best_round"]) == ("0.5678", "9")
    assert float(rows[2]["measured_sparsity"]) == pytest.approx(0.8, abs=0.01)
    assert rows[2]["paper_megabytes"] == "49.35"


def test_jeurkar_markdown_shows_a_narrower_row_as_such_and_prefers_full_width():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from jeurkar_table1 import markdown
    finally:
        sys.path.pop(0)

    def row(pruning, rate, width, accuracy, best_round):
        return dict(
            setup="as-run",
            pruning=pruning,
            scope="paper",
            rate=str(rate),
            width=str(width),
            best_accuracy=str(accuracy),
            best_round=str(best_round),
            upload_bytes_npz="0",
            upload_bytes="0",
            download_bytes_npz="0",
            download_bytes="0",
        )

    rows = [
        row("structured", 0.3, 0.5, 0.61, 44),
        row("structured", 0.3, 1.0, 0.60, 40),
        row("structured", 0.4, 0.5, 0.55, 38),
        row("unstructured", 0.4, 1.0, 0.83, 14),
    ]
    lines = markdown(rows, "as-run", "jeurkar_resnet12")
    by_rate = {line.split(" | ")[0]: line.split(" | ") for line in lines[2:]}
    # columns: rate, unstructured paper, ours, structured paper, ours, ...
    assert by_rate["| 30%"][4] == "0.60 (40)"
    assert by_rate["| 40%"][4] == "0.55 (38) at width 0.5"
    assert by_rate["| 40%"][2] == "0.83 (14)"


def test_seed_noise_quick(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "seed_noise.csv").write_text(
        "setting,metric,seed,value\n"
        "exp1_weight50,central_accuracy,0,0.7841\n"  # another seed: kept
        "exp1_weight50,central_accuracy,1,9.9\n"  # rerun below: replaced
    )
    output = _run(
        [
            "experiments/seed_noise.py",
            "--quick",
            "--only",
            "exp1_weight50",
            "exp5_weight50",
            "--seeds",
            "1",
            "--output-dir",
            str(tmp_path / "runs"),
            "--results",
            str(results),
        ]
    )
    assert "wrote" in output
    lines = (results / "seed_noise.csv").read_text().splitlines()
    assert lines[1] == "exp1_weight50,central_accuracy,0,0.7841"
    assert lines[2].startswith("exp1_weight50,central_accuracy,1,")
    assert 0.0 <= float(lines[2].split(",")[3]) <= 1.0
    assert [line.split(",")[:3] for line in lines[3:]] == [
        ["exp5_weight50", "reached_round", "1"],
        ["exp5_weight50", "mb_to_target", "1"],
    ]
    # the printed table puts both seeds of a metric side by side
    assert "| exp1_weight50 | central_accuracy | - | 0.7841 |" in output


def test_every_readme_figure_is_drawn_by_plot_from_committed_results(tmp_path):
    readme = (ROOT / "experiments" / "README.md").read_text()
    referenced = set(re.findall(r"figures/([\w.\-]+\.png)", readme))
    assert len(referenced) >= 6
    output = _run(["experiments/plot.py", "--figures", str(tmp_path)])
    drawn = {path.name for path in tmp_path.glob("*.png")}
    assert referenced <= drawn, output
    for name in referenced:
        assert (tmp_path / name).stat().st_size < 200_000  # the limit


def test_server_optimizers_quick_resumes_row_by_row(tmp_path):
    arguments = [
        "experiments/server_optimizers.py",
        "--quick",
        "--work-dir",
        str(tmp_path),
    ]
    output = _run(arguments)

    with (tmp_path / "server_optimizers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["optimizer"], float(r["server_learning_rate"])) for r in rows] == [
        ("sgd", 1.0),
        ("adam", 0.001),
    ]
    assert all(int(r["rounds_run"]) == 2 for r in rows)
    assert (tmp_path / "server_optimizers.png").is_file()
    assert "| FedAvg step | 1 |" in output
    # A rerun finds both rows done and trains nothing.
    again = _run(arguments)
    assert again.count("done earlier, skipped") == 2
