"""The export recipe: from a trained, pruned model to files for a microcontroller.

Each step is a tffprune command (printed before it runs, so you can copy it):

  1. tffprune centralized --workflow prune-trained --model tfmot_cnn
         --sparsity 0.8 --prune-logits        (dense baseline, then 80% pruning)
  2. tffprune export RUN --quantize dynamic   (tfmot tutorial's quantized model)
  3. tffprune export RUN --quantize int8      (full integer: TFLite Micro)
  4. the same with --clusters 16: tfmot's sparsity-preserving clustering after
     pruning (prune, cluster, quantize: tfmot's collaborative optimization)
  5. the same for `fc` at 90% sparsity, int8 and --sparse

and a table of the numbers in the export.json files is printed at the end.

Usage:
    uv run python tflite_export/recipe.py [--work-dir runs/export_recipe] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

# (run directory, model, sparsity, training options, clustering options)
STEPS = [
    (
        "tfmot_cnn_80",
        "tfmot_cnn",
        0.8,
        ["--epochs", "4", "--fine-tune-epochs", "6"],
        [],
    ),
    (
        "tfmot_cnn_80_clustered",
        "tfmot_cnn",
        0.8,
        ["--epochs", "4", "--fine-tune-epochs", "6"],
        ["--clusters", "16"],
    ),
    ("fc_90", "fc", 0.9, ["--epochs", "4", "--fine-tune-epochs", "2"], []),
]
QUICK = ["--max-examples", "3000", "--epochs", "1", "--fine-tune-epochs", "1"]
EXPORTS = {
    "tfmot_cnn_80": [("dynamic", False), ("int8", False)],
    "tfmot_cnn_80_clustered": [("int8", False)],
    "fc_90": [("dynamic", False), ("int8", False), ("int8", True)],
}


def run(command: list[str]) -> None:
    print("$ tffprune " + shlex.join(command), flush=True)
    subprocess.run([sys.executable, "-m", "tffprune.cli", *command], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("runs/export_recipe"))
    parser.add_argument("--quick", action="store_true", help="small data, 1 epoch")
    arguments = parser.parse_args()
    rows = []
    for step, model, sparsity, training, clustering in STEPS:
        run_dir = arguments.work_dir / step
        extra = (QUICK if arguments.quick else training) + clustering
        run(
            [
                "centralized",
                "--workflow",
                "prune-trained",
                "--model",
                model,
                "--sparsity",
                str(sparsity),
                "--prune-logits",
                *extra,
                "--output-dir",
                str(run_dir),
                "--overwrite",
            ]
        )
        baseline_accuracy = json.loads((run_dir / "summary.json").read_text())[
            "baseline_test_accuracy"
        ]
        for quantize, sparse in EXPORTS[step]:
            name = f"{quantize}{'_sparse' if sparse else ''}"
            out = run_dir / f"export_{name}"
            run(
                [
                    "export",
                    str(run_dir),
                    "--quantize",
                    quantize,
                    *(["--sparse"] if sparse else []),
                    *(["--eval-examples", "500"] if arguments.quick else []),
                    "--output-dir",
                    str(out),
                    "--overwrite",
                ]
            )
            result = json.loads((out / "export.json").read_text())
            rows.append((step, sparsity, name, baseline_accuracy, result))

    header = [
        "run",
        "sparsity",
        "export",
        "zipped dense baseline",
        ".tflite",
        ".tflite zipped",
        "ratio (zipped)",
        "dense acc.",
        "Keras acc.",
        "TFLite acc.",
        "TFLM acc.",
        "loss (points, TFLite vs dense)",
        "TFLM arena",
    ]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for step, sparsity, name, baseline_accuracy, r in rows:
        cells = [
            step,
            f"{sparsity:.0%}",
            name,
            f"{r['baseline_keras_zipped_bytes']:,}",
            f"{r['tflite_bytes']:,}",
            f"{r['tflite_zipped_bytes']:,}",
            f"{r['ratio_tflite_zipped_vs_baseline_zipped']:.1f}x",
            f"{baseline_accuracy:.4f}",
            f"{r['keras_accuracy']:.4f}",
            f"{r['tflite_accuracy']:.4f}",
            f"{r['tflm_accuracy']:.4f}" if "tflm_accuracy" in r else "-",
            f"{100 * (baseline_accuracy - r['tflite_accuracy']):.2f}",
            f"{r['tflm_arena_bytes']:,}" if "tflm_arena_bytes" in r else "-",
        ]
        print("| " + " | ".join(cells) + " |")
        if "tflm_error" in r:
            print(f"  ({step} {name}: {r['tflm_error']})")


if __name__ == "__main__":
    main()
