"""Bytes to a target accuracy: which method and sparsity upload the least?

Jeurkar et al. leave open how small a federated model can be; `tffprune sweep`
answers it for one setting by search. Every (method, sparsity) point, plus the
dense baseline, is trained until its accuracy first reaches the target (or the
round budget runs out); its cost is the bytes up to and including that
round, both directions by default (``rank="total"``: upload plus download),
or upload only (``rank="upload"``, the papers' view). The winner is the point
with the fewest bytes.

The math (`bytes_to_target`, `best_result`) is pure Python over metric rows;
`run_sweep` runs the trainings and writes::

    OUTPUT/sweep.csv            one row per point (rewritten after each run)
    OUTPUT/bytes_to_target.png  bytes-to-target vs sparsity, one line per method
    OUTPUT/best.toml            the winner's configuration (`tffprune train
                                --config best.toml` reruns it)
    OUTPUT/runs/<method>_<sparsity>/   each point's full run directory

A sweep interrupted by a crash or Ctrl-C continues with ``resume=True``:
finished points are read back, an unfinished one resumes from its checkpoint.

``fedpm`` among the methods adds one point: FedPM (``--aggregation fedpm``,
its own settings: its clients learn their masks, so it has no sparsity to
sweep). Its row's sparsity is that of the mask it learned, at the round it
reached the target (or its last), and its bytes both ways are its coded
messages, as for every point.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tffprune.config import TrainConfig, load_toml, to_toml
from tffprune.pruning.masks import check_sparsity
from tffprune.pruning.policy import METHODS
from tffprune.stopping import resume_hint

METRICS = ("central_accuracy", "personalized_accuracy")
FEDPM = "fedpm"
"""The sweep's name for a FedPM point (a method of its own, not a pruning one)."""
RANKS = {"total": "total_bytes", "upload": "upload_bytes"}
RANK_NAMES = {"total": "both directions", "upload": "upload only"}
COLUMNS = (
    "method",
    "sparsity",
    "reached_round",
    "bytes_to_target",
    "best_accuracy",
    "rounds_run",
    "total_upload_bytes",
    "run_dir",
)


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """One point of the sweep.

    Attributes:
        method: Pruning method (``none`` for the dense baseline; `FEDPM`).
        sparsity: Target sparsity (FedPM: its learned mask's).
        reached_round: First round whose accuracy reached the target, or None.
        bytes_to_target: Bytes (the sweep's rank: both directions, or upload
            only) of rounds 1..reached_round, or None.
        best_accuracy: Highest accuracy seen (evaluated rounds).
        rounds_run: Rounds trained.
        total_upload_bytes: Upload bytes of all rounds trained.
        run_dir: The point's run directory.
    """

    method: str
    sparsity: float
    reached_round: int | None
    bytes_to_target: int | None
    best_accuracy: float
    rounds_run: int
    total_upload_bytes: int
    run_dir: str


def bytes_to_target(
    rows: Sequence[dict],
    target: float,
    metric: str = "central_accuracy",
    column: str = "upload_bytes",
) -> tuple[int, int] | None:
    """The first round reaching ``target`` and the bytes up to it.

    Args:
        rows: Per-round metric rows in order (``column`` in each; the metric
            only in evaluated rounds, missing or NaN elsewhere).
        target: Accuracy to reach.
        metric: Which accuracy (one of `METRICS`).
        column: Which bytes: ``upload_bytes`` or ``total_bytes``.

    Returns:
        ``(round, cumulative bytes)``, or None if never reached.
    """
    total = 0
    for row in rows:
        total += int(row[column])
        value = row.get(metric)
        if value is not None and not math.isnan(float(value)) and value >= target:
            return int(row["round"]), total
    return None


def best_result(results: Iterable[SweepResult]) -> SweepResult | None:
    """Fewest bytes to target; ties: fewer rounds, then the sparser model."""
    reached = [r for r in results if r.bytes_to_target is not None]
    if not reached:
        return None
    return min(reached, key=lambda r: (r.bytes_to_target, r.reached_round, -r.sparsity))


def sweep_points(
    methods: Sequence[str], sparsities: Sequence[float]
) -> list[tuple[str, float]]:
    """The dense baseline, then every method at every sparsity (`FEDPM` once).

    Raises:
        ValueError: On an unknown method, an invalid sparsity, or empty lists.
    """
    if not methods or not sparsities:
        raise ValueError("a sweep needs at least one method and one sparsity")
    for method in methods:
        if method != FEDPM and (method not in METHODS or method == "none"):
            valid = ", ".join([m for m in METHODS if m != "none"] + [FEDPM])
            raise ValueError(f"unknown method {method!r}; expected one of {valid}")
    values = sorted({check_sparsity(s) for s in sparsities})
    if values[0] == 0.0:
        values = values[1:]
    points = [("none", 0.0)]
    for method in dict.fromkeys(methods):
        points += [(FEDPM, 0.0)] if method == FEDPM else [(method, s) for s in values]
    return points


def point_config(base: TrainConfig, method: str, sparsity: float) -> TrainConfig:
    """A point's configuration: ``base`` at the method and sparsity (FedPM's own)."""
    if method == FEDPM:
        return base.replace(aggregation=FEDPM, method="none", sparsity=0.0)
    return base.replace(method=method, sparsity=sparsity)


def _changed(run_dir: Path, config: TrainConfig) -> list[str]:
    """The options in which a point's recorded run differs from ``config``."""
    recorded = run_dir / "config.toml"
    if not recorded.exists():
        return []
    saved = load_toml(recorded).to_dict()
    wanted = config.to_dict()
    return sorted(key for key in wanted if saved.get(key) != wanted[key])


def _point_result(
    method: str,
    sparsity: float,
    rows: list[dict],
    target: float,
    metric: str,
    rank: str,
    run_dir: str,
) -> SweepResult:
    """A point's `SweepResult` from its run's metric rows."""
    reached = bytes_to_target(rows, target, metric, RANKS[rank])
    accuracies = [r[metric] for r in rows if r.get(metric) is not None]
    if method == FEDPM and rows:
        last = rows[-1] if reached is None else rows[reached[0] - 1]
        sparsity = float(last["global_sparsity"])
    return SweepResult(
        method=method,
        sparsity=sparsity,
        reached_round=None if reached is None else reached[0],
        bytes_to_target=None if reached is None else reached[1],
        best_accuracy=max((a for a in accuracies if not math.isnan(a)), default=0.0),
        rounds_run=len(rows),
        total_upload_bytes=sum(int(r["upload_bytes"]) for r in rows),
        run_dir=run_dir,
    )


def _point_dir(output_dir: Path, method: str, sparsity: float) -> Path:
    if method == FEDPM:
        return output_dir / "runs" / FEDPM
    return output_dir / "runs" / f"{method}_{sparsity:g}"


def run_sweep(
    base: TrainConfig,
    target: float,
    output_dir: str | Path,
    methods: Sequence[str] = ("weight", "unit"),
    sparsities: Sequence[float] = (0.5, 0.7, 0.8, 0.9, 0.95),
    metric: str = "central_accuracy",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    announce: Callable[[str], None] = print,
    rank: str = "total",
) -> tuple[list[SweepResult], SweepResult | None]:
    """Runs the sweep and writes its files (see the module docstring).

    Args:
        base: Settings shared by every point (its method and sparsity are
            replaced; ``rounds`` is the budget per point; evaluation runs
            every round so the first round reaching the target is exact).
        target: Accuracy to reach, in (0, 1].
        output_dir: The sweep's directory.
        methods: Pruning methods to try (`FEDPM`: one FedPM point).
        sparsities: Sparsities to try for each method.
        metric: ``central_accuracy`` or ``personalized_accuracy``.
        resume: Continue a sweep in ``output_dir``.
        overwrite: Replace a sweep in ``output_dir``.
        progress: Progress bars for each point's rounds.
        announce: Where one line per point is reported.
        rank: ``total`` (upload and download) or ``upload`` (`RANKS`).

    Returns:
        All points' results and the winner (None if no point reached it).

    Raises:
        ValueError: On invalid arguments or an existing directory.
    """
    from tffprune.reporting.files import prepare_output_dir, write_text_atomic
    from tffprune.reporting.metrics import read_metrics_csv, write_metrics_csv
    from tffprune.reporting.plots import plot_sweep
    from tffprune.run import TrainingFailedError, prepare_inputs, run_training

    if not 0.0 < target <= 1.0:
        raise ValueError(f"target accuracy must be in (0, 1], got {target}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if rank not in RANKS:
        raise ValueError(f"unknown rank {rank!r}; expected one of {', '.join(RANKS)}")
    if base.aggregation == FEDPM:
        raise ValueError(
            "a sweep varies the pruning method and sparsity, which fedpm does not "
            "use (its clients learn their masks): add fedpm to the methods "
            "(--methods weight,unit,fedpm) to set it beside them"
        )
    points = sweep_points(methods, sparsities)
    base, _, _ = prepare_inputs(base)  # model and data paths as runs record them
    output_dir = prepare_output_dir(
        Path(output_dir), resume=resume, overwrite=overwrite
    )
    results: list[SweepResult] = []
    for index, (method, sparsity) in enumerate(points, start=1):
        label = f"[{index}/{len(points)}] {method}"
        label += "" if method == FEDPM else f" {sparsity:g}"
        config = point_config(base, method, sparsity).replace(eval_every=1)
        run_dir = _point_dir(output_dir, method, sparsity)
        # A point is finished once its summary.json is written: its run
        # writes that file last.
        with resume_hint("stopped; continue with --resume", label=label):
            changed = resume and _changed(run_dir, config)
            if changed:
                announce(
                    f"{label}: its configuration changed ({', '.join(changed)}); "
                    "rerunning it"
                )
            finished = resume and not changed and (run_dir / "summary.json").exists()
            if not finished:
                continuing = (
                    resume and not changed and (run_dir / "checkpoint.npz").exists()
                )
                try:
                    run_training(
                        config,
                        run_dir,
                        resume=continuing,
                        overwrite=not continuing and run_dir.exists(),
                        progress=progress,
                        stop_at=(metric, target),
                    )
                except TrainingFailedError as error:
                    announce(f"{label}: {error}")
            result = _point_result(
                method,
                sparsity,
                read_metrics_csv(run_dir / "metrics.csv"),
                target,
                metric,
                rank,
                str(run_dir.relative_to(output_dir)),
            )
            results.append(result)
            write_metrics_csv(
                output_dir / "sweep.csv",
                [dataclasses.asdict(r) for r in results],
                COLUMNS,
            )
        outcome = (
            f"reached {target:g} in round {result.reached_round} with "
            f"{result.bytes_to_target / 1e6:.2f} MB " + RANK_NAMES[rank]
            if result.reached_round is not None
            else f"did not reach {target:g} in {result.rounds_run} rounds "
            f"(best {result.best_accuracy:.4f})"
        )
        status = "(done earlier) " if finished else ""
        announce(f"{label}: {status}{outcome}")
    winner = best_result(results)
    with resume_hint(
        "stopped while writing the sweep's results; continue with --resume"
    ):
        plot_sweep(results, output_dir / "bytes_to_target.png", target, metric)
        if winner is not None:
            best = point_config(base, winner.method, winner.sparsity).replace(
                rounds=winner.reached_round
            )
            write_text_atomic(
                output_dir / "best.toml",
                f"# tffprune sweep: fewest bytes ({RANK_NAMES[rank]}) to {metric} >= "
                f"{target:g}\n"
                f"# ({winner.bytes_to_target:,} bytes in {winner.reached_round} "
                "rounds)\n" + to_toml(best),
            )
    return results, winner
