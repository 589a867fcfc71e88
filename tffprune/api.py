"""The Python training API: your Keras model, your data, one call.

    import tffprune

    data = tffprune.data.from_arrays(x_train, y_train, x_test, y_test,
                                     num_clients=20, partition="shards")
    summary = tffprune.train(build_model, data, output_dir="runs/mine",
                             sparsity=0.5, rounds=10)

`train` is ``tffprune train`` for Python: the options are the command's option
names with underscores, and it writes the same output directory (metrics,
summary, ``config.toml``, the global model, plots, checkpoints; ``resume``
continues a run).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tffprune.config import ConfigError, TrainConfig, config_from_mapping, load_toml
from tffprune.data import saved_split
from tffprune.data.partition import FederatedData


def _model_reference(model_fn: Callable) -> str:
    module = getattr(model_fn, "__module__", None) or "python"
    name = getattr(model_fn, "__qualname__", None) or type(model_fn).__name__
    return f"{module}:{name}"


def train(
    model_fn: Callable[[], Any] | str,
    data: FederatedData | str,
    output_dir: str | Path = "runs/latest",
    *,
    config: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    workers: tuple[str, ...] = (),
    **options: Any,
) -> dict:
    """Federated training of your model on your data.

    Args:
        model_fn: ``model_fn()`` returns a new Keras classification model
            (functional or Sequential; softmax or logits output; BatchNorm
            and Dropout work). Or a ``--model`` text: a built-in name,
            ``file.py:function``, ``package.module:function`` or a ``.keras``
            file.
        data: From `tffprune.data.from_arrays`, `from_client_arrays` or
            `from_client_data`; or a data set name or ``.npz`` path (then
            ``num_clients``, ``partition``, ... split it).
        output_dir: Results directory (never overwritten unless
            ``overwrite``).
        config: A TOML file of options, applied before ``options``.
        resume: Continue the run in ``output_dir`` from its checkpoint.
        overwrite: Replace results in an existing ``output_dir``.
        progress: Show a progress bar, notes and the final line on stderr.
        workers: Remote TFF worker addresses (``HOST:PORT``).
        **options: ``tffprune train`` options with underscores (``method``,
            ``sparsity``, ``aggregation``, ``rounds``, ...).

    Returns:
        The summary ``summary.json`` holds.

    Raises:
        ValueError: On an invalid option, data or model (one line).
        tffprune.run.TrainingFailedError: If no client update was aggregated
            in any round, or the model became non-finite (the run directory
            says why: ``summary.json``'s ``failure``, ``rejections.csv``).
    """
    from tffprune.run import final_line, run_training

    base = load_toml(config) if config is not None else TrainConfig()
    if isinstance(model_fn, str):
        options["model"] = model_fn
        model_fn = None
    elif callable(model_fn):
        options.setdefault("model", _model_reference(model_fn))
    else:
        raise ConfigError(
            "model_fn must be callable or a --model text, got "
            f"{type(model_fn).__name__}"
        )
    if isinstance(data, str):
        options["dataset"] = data
        data = None
    elif isinstance(data, FederatedData):
        given = options.get("num_clients", data.num_clients)
        if given != data.num_clients:
            raise ConfigError(
                f"num_clients is {given}, the data has {data.num_clients} clients"
            )
        options["num_clients"] = data.num_clients
        options.setdefault("clients_per_round", min(10, data.num_clients))
        options["dataset"] = data.dataset.name
        if saved_split.saved_size(data) <= saved_split.COPY_LIMIT_BYTES:
            # Rerun and export read them back from the run directory.
            copy = Path(output_dir).resolve() / saved_split.SAVED_DATA_NAME
            options["dataset"] = str(copy)
            options["partition"] = saved_split.GIVEN
        elif progress:
            print(
                f"the data ({saved_split.saved_size(data) / 2**30:.1f} GiB) are over "
                "the 1 GiB a run copies: to rerun or export it from the command "
                "line, save them as an .npz and pass --dataset",
                file=sys.stderr,
            )
        scaled = data.dataset.inputs_scaled
        if options.get("scale_inputs", scaled) != scaled:
            raise ConfigError(
                "scale_inputs applies to a data set name or .npz path; for "
                "arrays pass it where they are made: "
                "tffprune.data.from_arrays(..., scale_inputs=True)"
            )
        options["scale_inputs"] = scaled
    else:
        raise ConfigError(
            "data must come from tffprune.data.from_arrays, from_client_arrays or "
            f"from_client_data, or be a data set name; got {type(data).__name__}"
        )
    resolved = config_from_mapping(options, base, source="options")

    def announce(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    summary = run_training(
        resolved,
        output_dir,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        workers=tuple(workers),
        data=data,
        model_fn=model_fn,
        announce=announce if progress else None,
    )
    if progress:
        announce(final_line(summary, output_dir))
    return summary
