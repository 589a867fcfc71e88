"""The export recipe: the flash a microcontroller needs, step by step.

For `tfmot_cnn` (80% pruned) and `fc` (90% pruned), each step a tffprune
command (printed before it runs, so you can copy it):

  1. tffprune centralized --workflow prune-trained --model M --sparsity S
         --prune-logits                  (dense baseline.keras, pruned model.keras)
  2. tffprune export RUN/baseline.keras --quantize float32      (the reference)
  3. tffprune export RUN/baseline.keras --quantize int8         (int8, dense)
  4. tffprune export RUN --quantize int8                        (int8, pruned)
  5. ... --clusters 15                  (+ 15 shared values and 0 per kernel)
  6. ... --clusters 15 --compress lut   (+ 4-bit look-up-table indices)
  7. ... --clusters 3 --compress lut    (+ 2-bit indices: 3 values and 0)

and prints the ladder: flash bytes (the raw .tflite, equal to the C array a
microcontroller holds), times below the float32 .tflite, the TFLite Micro
arena (RAM), and accuracy in Keras, TFLite and the real TFLite Micro
interpreter, in points below the float32 Keras model.

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

# (model, sparsity, training options)
MODELS = [
    ("tfmot_cnn", 0.8, ["--epochs", "4", "--fine-tune-epochs", "6"]),
    ("fc", 0.9, ["--epochs", "4", "--fine-tune-epochs", "2"]),
]
# (step, source: dense baseline or pruned model, export options)
LADDER = [
    ("float32", "baseline", ["--quantize", "float32"]),
    ("int8", "baseline", ["--quantize", "int8"]),
    ("pruned int8", "pruned", ["--quantize", "int8"]),
    ("+ 15 clusters", "pruned", ["--quantize", "int8", "--clusters", "15"]),
    (
        "+ 15 clusters + LUT",
        "pruned",
        ["--quantize", "int8", "--clusters", "15", "--compress", "lut"],
    ),
    (
        "+ 3 clusters + LUT",
        "pruned",
        ["--quantize", "int8", "--clusters", "3", "--compress", "lut"],
    ),
]
QUICK_TRAINING = ["--max-examples", "3000", "--epochs", "1", "--fine-tune-epochs", "1"]
QUICK_STEPS = ("float32", "pruned int8", "+ 15 clusters + LUT")


def run(command: list[str]) -> None:
    print("$ tffprune " + shlex.join(command), flush=True)
    subprocess.run([sys.executable, "-m", "tffprune.cli", *command], check=True)


def lut_summary(result: dict) -> str:
    """'4-bit x2, kept x2' from export.json's per-tensor LUT report."""
    if "lut_tensors" not in result:
        return "-"
    counts: dict[str, int] = {}
    for tensor in result["lut_tensors"]:
        bits = tensor["index_bits"]
        key = f"{bits}-bit" if bits is not None else "kept"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{key} x{count}" for key, count in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("runs/export_recipe"))
    parser.add_argument(
        "--quick", action="store_true", help="tfmot_cnn, small data, 1 epoch"
    )
    arguments = parser.parse_args()
    rows = []
    for model, sparsity, training in MODELS[:1] if arguments.quick else MODELS:
        run_dir = arguments.work_dir / f"{model}_{round(100 * sparsity)}"
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
                *(QUICK_TRAINING if arguments.quick else training),
                "--output-dir",
                str(run_dir),
                "--overwrite",
            ]
        )
        reference = None
        for step, source, options in LADDER:
            if arguments.quick and step not in QUICK_STEPS:
                continue
            out = run_dir / ("export_" + step.replace(" ", "_").replace("+", "and"))
            target = run_dir / "baseline.keras" if source == "baseline" else run_dir
            run(
                [
                    "export",
                    str(target),
                    *options,
                    *(["--eval-examples", "500"] if arguments.quick else []),
                    "--output-dir",
                    str(out),
                    "--overwrite",
                ]
            )
            result = json.loads((out / "export.json").read_text())
            reference = reference or result
            rows.append((model, sparsity, step, source, reference, result))

    header = [
        "model",
        "step",
        "flash bytes",
        "below float32",
        "arena bytes",
        "Keras acc.",
        "TFLite acc.",
        "TFLM acc.",
        "points below float32 Keras",
        "LUT tensors",
    ]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model, sparsity, step, source, reference, r in rows:
        float_accuracy = reference["keras_accuracy"]
        deployed = r.get("tflm_accuracy", r["tflite_accuracy"])
        cells = [
            f"{model} {sparsity:.0%}" if source == "pruned" else f"{model} dense",
            step,
            f"{r['flash_bytes']:,}",
            f"{reference['flash_bytes'] / r['flash_bytes']:.1f}x",
            f"{r['arena_bytes']:,}" if r.get("arena_bytes") else "-",
            f"{r['keras_accuracy']:.4f}",
            f"{r['tflite_accuracy']:.4f}",
            f"{r['tflm_accuracy']:.4f}" if "tflm_accuracy" in r else "-",
            f"{100 * (float_accuracy - deployed):.2f}",
            lut_summary(r),
        ]
        print("| " + " | ".join(cells) + " |")
        if "tflm_error" in r:
            print(f"  ({model} {step}: {r['tflm_error']})")


if __name__ == "__main__":
    main()
