"""The ``tffprune`` command line: parses, validates and delegates; no logic.

TensorFlow is imported only inside the commands, so ``tffprune --help`` is fast.
Every expected failure (bad argument, missing data, invalid file) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tffprune import __version__

# Keep TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) off the
# terminal unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """An error the user can fix: printed as one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


class _Group(click.Group):
    """Turns the library's input errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> object:
        from tffprune.data.formats import DataError

        try:
            return super().invoke(ctx)
        except (DataError, ValueError, FileNotFoundError) as error:
            raise BadInput(str(error)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tffprune")


if __name__ == "__main__":
    main()
