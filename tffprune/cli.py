"""The ``tffprune`` command line: parses, validates and delegates.

TensorFlow is imported only inside the commands, so ``tffprune --help`` is fast.
Every expected failure (bad argument, missing data, invalid file) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path

import click

from tffprune import __version__
from tffprune.models.names import MODEL_NAMES

# Keep TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) off the
# terminal unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """An error the user can fix: printed as one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


def _raised_by_tffprune(error: BaseException) -> bool:
    """Whether tffprune itself raised ``error`` (input checks), not a library.

    tffprune validates what users give it and raises with a message for
    them; a ValueError from deep inside TensorFlow or NumPy is a bug.
    """
    if isinstance(error, FileNotFoundError):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    package = str(Path(__file__).parent)
    return bool(frames) and frames[-1].filename.startswith(package)


class _Group(click.Group):
    """Turns the library's input errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> object:
        from tffprune.data.formats import DataError
        from tffprune.stopping import interrupt_on_signals

        try:
            with interrupt_on_signals():
                return super().invoke(ctx)
        except RuntimeError as error:
            from tffprune.fl.workers import RuntimeStartError, WorkerLostError

            if isinstance(error, RuntimeStartError | WorkerLostError):
                raise click.ClickException(str(error)) from None
            # Imported only when a run failed: `tffprune worker` never loads
            # TensorFlow.
            run = sys.modules.get("tffprune.run")
            if run is not None and isinstance(error, run.TrainingFailedError):
                raise click.ClickException(str(error)) from None
            raise
        except (DataError, ValueError, FileNotFoundError) as error:
            if not _raised_by_tffprune(error):
                traceback.print_exception(error)
                raise click.ClickException(
                    f"internal error ({type(error).__name__}); this is a bug in "
                    "tffprune or a library it calls: please report it with the "
                    "traceback above"
                ) from None
            raise BadInput(str(error) or type(error).__name__) from None
        except OSError as error:  # a full disk, a read-only directory, ...
            where = f"{error.filename}: " if error.filename else ""
            raise click.ClickException(
                f"file system error: {where}{error.strerror or error}"
            ) from None
        except KeyboardInterrupt as interrupt:
            from tffprune.stopping import exit_status, signal_name

            status = exit_status(interrupt)
            reason = f": {interrupt}" if str(interrupt) else ""
            how = "" if status == 130 else f" ({signal_name(status - 128)})"
            click.echo(f"interrupted{how}{reason}", err=True)
            sys.exit(status)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tffprune")
def cli() -> None:
    """Communication-efficient federated learning with pruned models.

    Clients train a shared Keras model, prune it (weights, units, channels or
    both) and upload only what survives; the server aggregates with
    Sub-FedAvg, so each client keeps a personalized subnetwork.
    """


_DATASET = click.option(
    "--dataset",
    type=click.Choice(["fashion_mnist", "mnist", "cifar10", "digits"]),
    default="fashion_mnist",
    show_default=True,
    help="Data set to use.",
)
_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory searched first for the data set files "
    "(default: $TFFPRUNE_DATA_DIR, then ~/.keras/datasets, then /usr/share/datasets).",
)


@cli.command()
@_DATASET
@_DATA_DIR
@click.option(
    "--partition",
    type=click.Choice(["iid", "shards", "dirichlet"]),
    default="iid",
    show_default=True,
    help="How examples are split over clients.",
)
@click.option(
    "--num-clients", type=click.IntRange(min=1), default=100, show_default=True
)
@click.option(
    "--shards-per-client",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="For --partition shards.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Dirichlet concentration, for --partition dirichlet.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the per-client summary to this CSV file.",
)
def data(
    dataset: str,
    data_dir: Path | None,
    partition: str,
    num_clients: int,
    shards_per_client: int,
    alpha: float,
    seed: int,
    output: Path | None,
) -> None:
    """Load a data set, split it over clients and print the split."""
    from tffprune.data import build_federated_data, load_dataset

    loaded = load_dataset(dataset, data_dir)
    click.echo(
        f"{loaded.name} from {loaded.source}: train {loaded.x_train.shape}, "
        f"test {loaded.x_test.shape}, {loaded.num_classes} classes"
    )
    federated = build_federated_data(
        loaded,
        num_clients,
        partition,
        seed=seed,
        shards_per_client=shards_per_client,
        alpha=alpha,
    )
    click.echo(federated.format_summary())
    if output is not None:
        federated.write_summary(output)
        click.echo(f"wrote {output}")


_OUTPUT_DIR_OPTIONS = [
    click.option(
        "--output-dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Directory for the results.",
    ),
    click.option(
        "--overwrite", is_flag=True, help="Write into an existing results directory."
    ),
]


def _output_dir_options(function):
    for option in reversed(_OUTPUT_DIR_OPTIONS):
        function = option(function)
    return function


@cli.command()
@click.option(
    "--workflow",
    type=click.Choice(["prune-trained", "from-scratch"]),
    default="prune-trained",
    show_default=True,
    help="prune-trained: train dense, then prune while fine-tuning; "
    "from-scratch: train from random weights with a polynomial schedule.",
)
@click.option(
    "--model",
    type=click.Choice(MODEL_NAMES),
    default="tfmot_cnn",
    show_default=True,
)
@_DATASET
@_DATA_DIR
@click.option(
    "--sparsity",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.8,
    show_default=True,
    help="Target sparsity of every pruned kernel, in [0, 1).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Training epochs (prune-trained: of the dense baseline).",
)
@click.option(
    "--fine-tune-epochs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="prune-trained: epochs of pruning while fine-tuning.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=128, show_default=True
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-3,
    show_default=True,
    help="Adam learning rate.",
)
@click.option(
    "--prune-logits/--keep-logits",
    default=False,
    show_default=True,
    help="Whether the final logits layer is pruned too (the tfmot tutorial prunes "
    "it; Singh & Raj keep it).",
)
@click.option(
    "--clusters",
    type=click.IntRange(min=2),
    default=None,
    help="After pruning, cluster each pruned kernel's nonzero weights into this "
    "many shared values; pruned weights stay 0 (tfmot sparsity-preserving "
    "clustering; 16 is a good start). Off by default.",
)
@click.option(
    "--cluster-epochs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Fine-tuning epochs while clustering (Adam, learning rate / 10).",
)
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="Train on a random subset of this many examples (quick runs).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@_output_dir_options
def centralized(
    workflow: str,
    model: str,
    dataset: str,
    data_dir: Path | None,
    sparsity: float,
    epochs: int,
    fine_tune_epochs: int,
    batch_size: int,
    learning_rate: float,
    prune_logits: bool,
    clusters: int | None,
    cluster_epochs: int,
    max_examples: int | None,
    seed: int,
    output_dir: Path,
    overwrite: bool,
) -> None:
    """Prune on one machine with tfmot (Singh & Raj 2023, section 4).

    Writes model.keras (pruning stripped, zeros in place; clustered too with
    --clusters), baseline.keras (prune-trained only) and summary.json with
    accuracy and sparsity.
    """
    from tffprune.pruning.centralized import run_centralized

    summary = run_centralized(
        output_dir,
        workflow=workflow,
        model=model,
        dataset=dataset,
        data_dir=data_dir,
        sparsity=sparsity,
        epochs=epochs,
        fine_tune_epochs=fine_tune_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        prune_logits=prune_logits,
        clusters=clusters,
        cluster_epochs=cluster_epochs,
        max_examples=max_examples,
        seed=seed,
        overwrite=overwrite,
        announce=click.echo,
    )
    sparsity_report = summary["sparsity"]
    click.echo(
        f"{workflow}: test accuracy {summary['test_accuracy']:.4f}, sparsity of "
        f"pruned kernels {sparsity_report['prunable_sparsity']:.4f}, of all "
        f"parameters {sparsity_report['overall_sparsity']:.4f}; wrote {output_dir}"
    )


class _GroupedOptions(click.Command):
    """Lists a training command's options under one heading per concern."""

    def format_options(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        from tffprune.config import GROUPS

        sections: dict[str, list[tuple[str, str]]] = {}
        for parameter in self.get_params(ctx):
            record = parameter.get_help_record(ctx)
            if record is not None:
                group = getattr(parameter, "group", None) or "command"
                sections.setdefault(group, []).append(record)
        for group, records in sections.items():
            title = f"{GROUPS[group]} options" if group in GROUPS else "Options"
            with formatter.section(title):
                formatter.write_dl(records)


def _train_options(function, exclude: tuple[str, ...] = ()):
    """Adds one click option per `TrainConfig` field (its one declaration).

    Every option defaults to None (not given), so a ``--config`` file's value
    is only overridden by an option actually given; the help shows the
    field's default.
    """
    import dataclasses

    from tffprune.config import OPTIONAL_NUMBERS, TrainConfig

    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in exclude]
    for field in reversed(fields):
        meta = field.metadata
        default = "none" if field.default is None else str(field.default).lower()
        settings: dict = {
            "default": None,
            "help": f"{meta['help']}  [default: {default}]",
        }
        if meta["choices"] is not None:
            settings["type"] = click.Choice(meta["choices"])
        elif isinstance(field.default, bool):
            pass
        elif field.name in OPTIONAL_NUMBERS:
            settings["type"] = OPTIONAL_NUMBERS[field.name]
        elif isinstance(field.default, int):
            settings["type"] = int
        elif isinstance(field.default, float):
            settings["type"] = float
        flag = meta["flag"] or "--" + field.name.replace("_", "-")
        function = click.option(flag, field.name, **settings)(function)
        function.__click_params__[-1].group = meta["group"]
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML file with these options as keys; options given here override it.",
    )(function)


@cli.command(cls=_GroupedOptions)
@_train_options
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/latest"),
    show_default=True,
    help="Directory for the results.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --output-dir from its checkpoint.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace results in an existing --output-dir."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--workers",
    default=None,
    metavar="HOST:PORT[,HOST:PORT...]",
    help="Run the rounds on these TFF workers (started with `tffprune worker`) "
    "instead of a local one; several split each round's clients.",
)
@click.option(
    "--worker-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each --workers address to answer.",
)
def train(
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    config: Path | None,
    workers: str | None,
    worker_timeout: float,
    **options: object,
) -> None:
    """Federated training with pruned clients (FedAvg or Sub-FedAvg) on TFF.

    Writes metrics.csv (one row per round), summary.json, config.toml,
    global_model.keras, accuracy.png, bytes.png, clients.csv and checkpoint.npz
    to --output-dir. Example: tffprune train --sparsity 0.5
    """
    from tffprune.config import (
        COMMAND_LINE,
        TrainConfig,
        config_from_mapping,
        load_toml,
    )
    from tffprune.run import final_line, run_training

    if resume and overwrite:
        raise BadInput("--resume and --overwrite contradict each other; pick one")
    base = load_toml(config) if config is not None else TrainConfig()
    given = {key: value for key, value in options.items() if value is not None}
    resolved = config_from_mapping(given, base, source=COMMAND_LINE)
    click.echo(
        f"{resolved.algorithm_description}, {resolved.model} on {resolved.dataset} "
        f"{resolved.partition}, {resolved.num_clients} clients, "
        f"{resolved.clients_per_round} per round, {resolved.rounds} rounds "
        f"-> {output_dir}",
        err=True,
    )
    addresses = _parse_workers(workers)
    summary = run_training(
        resolved,
        output_dir,
        resume=resume,
        overwrite=overwrite,
        progress=not quiet,
        workers=addresses,
        worker_timeout=worker_timeout,
        announce=lambda line: click.echo(line, err=True),
    )
    click.echo(final_line(summary, output_dir))


def _sweep_train_options(function):
    return _train_options(function, exclude=("method", "sparsity"))


def _float_list(option: str, text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise BadInput(
            f"{option}: expected numbers separated by commas, got {text!r}"
        ) from None


@cli.command(cls=_GroupedOptions)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1, min_open=True),
    required=True,
    help="Accuracy every configuration tries to reach.",
)
@click.option(
    "--metric",
    type=click.Choice(["central", "personalized"]),
    default="central",
    show_default=True,
    help="central: the global model on the test set; personalized: mean of the "
    "clients' subnetworks on their own test splits.",
)
@click.option(
    "--rank",
    type=click.Choice(["total", "upload"]),
    default="total",
    show_default=True,
    help="Rank by the bytes of both directions, or upload only (the papers' view).",
)
@click.option(
    "--methods",
    default="weight,unit",
    show_default=True,
    help="Pruning methods to try, separated by commas; fedpm adds one FedPM point.",
)
@click.option(
    "--sparsities",
    default="0.5,0.7,0.8,0.9,0.95",
    show_default=True,
    help="Sparsities to try for each method, separated by commas.",
)
@_sweep_train_options
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/sweep"),
    show_default=True,
    help="Directory for the sweep's table, plot, best.toml and runs.",
)
@click.option("--resume", is_flag=True, help="Continue the sweep in --output-dir.")
@click.option("--overwrite", is_flag=True, help="Replace the sweep in --output-dir.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def sweep(
    target_accuracy: float,
    metric: str,
    rank: str,
    methods: str,
    sparsities: str,
    output_dir: Path,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    config: Path | None,
    **options: object,
) -> None:
    """Find the method and sparsity that reach an accuracy with the fewest bytes.

    Trains the dense baseline and every method at every sparsity (with the
    other settings given here or in --config; --rounds is the budget per
    configuration), each until it first reaches --target-accuracy, and
    writes sweep.csv, bytes_to_target.png and best.toml (rerun the winner
    with `tffprune train --config best.toml`). Example:
    tffprune sweep --target-accuracy 0.8 --rounds 20
    """
    from tffprune.config import (
        COMMAND_LINE,
        TrainConfig,
        config_from_mapping,
        load_toml,
    )
    from tffprune.sweep import run_sweep

    if resume and overwrite:
        raise BadInput("--resume and --overwrite contradict each other; pick one")
    base = load_toml(config) if config is not None else TrainConfig()
    given = {key: value for key, value in options.items() if value is not None}
    resolved = config_from_mapping(given, base, source=COMMAND_LINE)
    _, winner = run_sweep(
        resolved,
        target_accuracy,
        output_dir,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        sparsities=_float_list("--sparsities", sparsities),
        metric=f"{metric}_accuracy",
        resume=resume,
        overwrite=overwrite,
        progress=not quiet,
        announce=lambda line: click.echo(line, err=True),
        rank=rank,
    )
    if winner is None:
        click.echo(
            f"no configuration reached {metric} accuracy {target_accuracy:g} within "
            f"{resolved.rounds} rounds; see {output_dir / 'sweep.csv'}"
        )
        return
    point = (
        f"fedpm (its learned mask {winner.sparsity:.0%} sparse)"
        if winner.method == "fedpm"
        else f"{winner.method} at sparsity {winner.sparsity:g}"
    )
    click.echo(
        f"fewest bytes ({'upload only' if rank == 'upload' else 'both directions'}) "
        f"to {metric} accuracy {target_accuracy:g}: {point}, "
        f"{winner.bytes_to_target / 1e6:.2f} MB in "
        f"{winner.reached_round} rounds; rerun with tffprune train --config "
        f"{output_dir / 'best.toml'}"
    )


@cli.command(name="export")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--quantize",
    type=click.Choice(["float32", "float16", "dynamic", "int8"]),
    default="int8",
    show_default=True,
    help="int8 is full-integer (int8 inputs/outputs) for TensorFlow Lite Micro.",
)
@click.option(
    "--sparse", is_flag=True, help="Store sparse tensors (EXPERIMENTAL_SPARSITY)."
)
@click.option(
    "--slim",
    is_flag=True,
    help="Remove the units and channels a unit, channel or hybrid run zeroed "
    "(smaller layers, same outputs: checked on the calibration and test "
    "examples; export.json says what was cut and what was left whole, and why).",
)
@click.option(
    "--compress",
    type=click.Choice(["lut"]),
    default=None,
    help="int8 only: store every tensor of at most 128 distinct values as k-bit "
    "indices into a value table, decoded by TensorFlow Lite Micro at run time "
    "(per-tensor report in export.json).",
)
@click.option(
    "--clusters",
    type=click.IntRange(min=2),
    default=None,
    help="Before converting, cluster every kernel into this many shared values "
    "(tfmot sparsity-preserving: pruned weights stay 0), fine-tuned as "
    "--cluster-epochs says; with --compress lut, 15 (and 0) give 4-bit indices.",
)
@click.option(
    "--cluster-epochs",
    type=click.IntRange(min=0),
    default=None,
    help="Fine-tuning epochs while clustering (default 1 where the server holds "
    "labelled data: a centralized run's set, --dataset, --client's split or a "
    "--representative-data file with y_train; a federated run's server holds "
    "none of its clients' data, so by default it clusters without fine-tuning).",
)
@click.option(
    "--dataset",
    type=click.Choice(["fashion_mnist", "mnist", "cifar10", "digits"]),
    default=None,
    help="Data set for representative data and accuracy "
    "(default: the one the run was trained on).",
)
@_DATA_DIR
@click.option(
    "--representative-data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="An .npz for a model not trained on a named data set: x_train (or x) "
    "calibrates int8, x_test and y_test (if present) measure accuracy.",
)
@click.option(
    "--eval-examples",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate on the first N test examples (default: all).",
)
@click.option(
    "--client",
    default=None,
    metavar="ID",
    help="From a train run directory: export this client's model (its own "
    "model with --personal-models, else its Sub-FedAvg subnetwork), "
    "calibrated on its training split and measured on its own test split.",
)
@_output_dir_options
def export_command(
    source: Path,
    quantize: str,
    sparse: bool,
    slim: bool,
    compress: str | None,
    clusters: int | None,
    cluster_epochs: int | None,
    dataset: str | None,
    data_dir: Path | None,
    representative_data: Path | None,
    eval_examples: int | None,
    client: str | None,
    output_dir: Path,
    overwrite: bool,
) -> None:
    """Convert SOURCE (a .keras file or a run directory) for the edge.

    Writes model.tflite, model_data.cc/.h (C array for firmware) and
    export.json: flash bytes (the C array) and RAM (TFLite Micro arena) first,
    then sizes, ratios, accuracies in Keras, TFLite and TFLite Micro.
    Example: tffprune export runs/latest --clusters 16 --compress lut;
    after --method channel: tffprune export runs/latest --slim
    """
    from tffprune.export.pipeline import export_model, summary_line

    result = export_model(
        source,
        output_dir,
        quantize=quantize,
        sparse=sparse,
        dataset=dataset,
        data_dir=data_dir,
        eval_examples=eval_examples,
        overwrite=overwrite,
        representative_data=representative_data,
        compress=compress,
        clusters=clusters,
        cluster_epochs=cluster_epochs,
        client=client,
        slim_channels=slim,
    )
    click.echo(summary_line(result, clusters, output_dir))


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


def _parse_workers(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    addresses = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if (
            not _HOST.fullmatch(host)
            or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536
        ):
            raise BadInput(
                f"--workers expects HOST:PORT[,HOST:PORT...] (a host name or IP "
                f"address, a port 1-65535), got {item!r}"
            )
        addresses.append(f"{host}:{int(port)}")
    return tuple(addresses)


@cli.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), required=True, help="Port to listen on."
)
@click.option(
    "--log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File for the worker's own output (default: this terminal).",
)
def worker(port: int, log: Path | None) -> None:
    """Run a TFF worker that `tffprune train --workers` can use.

    Starts the C++ worker_binary shipped in the TFF wheel and stops it on
    Ctrl-C or SIGTERM. The worker listens on EVERY interface of this host and
    its gRPC has no authentication or encryption: keep the port reachable only
    by the driver (private network, firewall rule, or SSH tunnel).
    """
    from tffprune.fl.workers import serve_worker

    if log is not None:
        try:
            with log.open("ab"):
                pass
        except OSError as error:
            raise BadInput(
                f"--log {log}: cannot write to it ({error.strerror}); choose a "
                "file in a directory you can write"
            ) from None
    serve_worker(port, log_path=log)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tffprune")


if __name__ == "__main__":
    main()
