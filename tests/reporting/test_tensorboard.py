import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tffprune.reporting.metrics import read_metrics_csv
from tffprune.reporting.tensorboard import scalars


def test_scalars_group_the_finite_values_of_a_row():
    row = {
        "round": 3,
        "central_accuracy": 0.5,
        "personalized_accuracy": float("nan"),  # not evaluated: left out
        "upload_bytes": 1200,
        "round_seconds": 0.25,
        "clients_participating": 2,
        "unknown_column": 7.0,
    }

    assert scalars(row) == [
        ("accuracy/central_accuracy", 0.5),
        ("bytes/upload_bytes", 1200.0),
        ("clients/clients_participating", 2.0),
        ("time/round_seconds", 0.25),
    ]


def _events(directory: Path) -> dict[str, dict[int, float]]:
    values: dict[str, dict[int, float]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, {})[event.step] = number
    return values


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import tffprune

    output = tmp_path_factory.mktemp("tensorboard") / "run"
    tffprune.train(
        "tfmot_cnn",
        "digits",
        output,
        num_clients=4,
        clients_per_round=2,
        rounds=2,
        progress=False,
    )
    return output


def test_a_run_writes_its_metrics_as_event_files(run):
    events = _events(run / "tensorboard")
    rows = read_metrics_csv(run / "metrics.csv")

    for row in rows:
        step = int(row["round"])
        assert events["accuracy/central_accuracy"][step] == pytest.approx(
            row["central_accuracy"]
        )
        assert events["bytes/upload_bytes"][step] == row["upload_bytes"]
        assert events["bytes/download_bytes"][step] == row["download_bytes"]
        assert events["sparsity/sparsity"][step] == pytest.approx(row["sparsity"])
        assert np.isfinite(events["time/round_seconds"][step])
    assert sorted(events["accuracy/central_accuracy"]) == [1, 2]


def test_tensorboard_starts_from_the_locked_environment_and_reads_them(run):
    executable = shutil.which("tensorboard") or str(
        Path(sys.executable).with_name("tensorboard")
    )

    inspected = subprocess.run(
        [executable, "--inspect", "--logdir", str(run.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert inspected.returncode == 0, inspected.stderr[-2000:]
    assert "accuracy/central_accuracy" in inspected.stdout
