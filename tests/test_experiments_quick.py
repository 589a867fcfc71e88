"""Every experiment script runs in its --quick mode, so none can rot."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(arguments, timeout=600):
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


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
    assert "| tfmot_cnn_80 | 80% | int8 |" in output
    assert "| tfmot_cnn_80_clustered | 80% | int8 |" in output
