"""Per-round metrics as CSV, rewritten atomically after every round."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from tffprune.reporting.files import write_text_atomic


def write_metrics_csv(
    path: str | Path, rows: Sequence[dict[str, float]], columns: Sequence[str]
) -> None:
    """Writes all rows (missing or NaN values as empty cells)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                column: (
                    ""
                    if row.get(column) is None
                    or (isinstance(row.get(column), float) and math.isnan(row[column]))
                    else row[column]
                )
                for column in columns
            }
        )
    write_text_atomic(path, buffer.getvalue())


def read_metrics_csv(path: str | Path) -> list[dict[str, float | None]]:
    """Reads a metrics file written by `write_metrics_csv` (empty cells: None)."""
    with Path(path).open(newline="") as handle:
        return [
            {key: (float(value) if value != "" else None) for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]
