"""``tffprune export``: from a trained model to verified edge files.

Writes into the output directory (each file atomically; existing files are
refused unless ``overwrite``):

* ``model.tflite``: the converted (and, with ``compress="lut"``,
  LUT-compressed) model;
* ``model_data.cc`` / ``model_data.h``: the model as a C array for firmware;
* ``export.json``: first what a microcontroller holds, **flash bytes** (the
  raw ``.tflite``, equal to the C array) and the TFLite Micro **arena** (RAM);
  then parameters, nonzeros, sparsity, the per-tensor LUT report, zipped sizes
  (the tfmot tutorial's and the papers' measure, a secondary column), ratios,
  and the test accuracy of the Keras model, of the ``.tflite`` model in the
  TFLite interpreter and, for int8, in the TFLite Micro interpreter.

Optional steps for the smallest flash: ``slim_channels`` rebuilds a unit- or
channel-pruned model without its dead units and channels
(`tffprune.export.slim`; the slim model's outputs are checked against the
masked model's on the calibration and test inputs), ``clusters`` clusters
every kernel of the model (tfmot's sparsity-preserving clustering, pruned
weights stay 0) with a short fine-tuning on the training data before
conversion, and ``compress="lut"`` stores each tensor of few distinct values
as k-bit indices (`tffprune.export.lut`).

The dense float32 baseline of the zipped ratios is ``baseline.keras`` when the
run directory has one (``tffprune centralized --workflow prune-trained`` writes
it), else the same architecture with freshly initialized dense weights, which
``baseline`` in ``export.json`` says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from tffprune.data import load_dataset
from tffprune.data.arrays import as_inputs, as_labels
from tffprune.data.datasets import Dataset
from tffprune.data.formats import DataError, read_npz_arrays
from tffprune.export import c_array, client_model, lut, sizes, slim, tflite, verify
from tffprune.models.files import load_model_file
from tffprune.pruning.policy import model_sparsity
from tffprune.reporting.files import (
    prepare_output_dir,
    save_keras_model_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

MODEL_FILES = ("global_model.keras", "model.keras")
OUTPUT_FILES = ("model.tflite", "model_data.cc", "model_data.h", "export.json")
_OWN_LAYERS = "export a model built of Keras' own layers (a Lambda replaced by one)"
CLIENT_MODEL_FILE = "client_model.keras"
"""With ``client``: that client's model as Keras, beside its ``.tflite``."""


def resolve_model(path: str | Path) -> tuple[Path, dict]:
    """Finds the model file and what its run says about it.

    Args:
        path: A ``.keras``/``.h5`` file, or a run directory of ``tffprune train``
            or ``tffprune centralized``.

    Returns:
        The model file and the run's summary (empty if there is none).

    Raises:
        ValueError: If nothing usable is there.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    summary: dict = {}
    if path.is_dir():
        summary_path = path / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name, summary
        raise ValueError(
            f"{path} holds no model: expected one of {', '.join(MODEL_FILES)}"
        )
    if path.suffix not in (".keras", ".h5"):
        raise ValueError(f"{path} is not a Keras model file (.keras or .h5)")
    sibling = path.parent / "summary.json"
    if sibling.is_file():
        summary = json.loads(sibling.read_text())
    return path, summary


def summary_line(result: dict, clusters: int | None, output_dir: str | Path) -> str:
    """The one line ``tffprune export`` prints: flash and RAM first.

    Args:
        result: What `export_model` returned.
        clusters: The ``clusters`` it was given.
        output_dir: Where it wrote.
    """
    arena = result["arena_bytes"]
    kind = " ".join(
        (
            [f"client {result['client']} ({result['client_model']})"]
            if "client" in result
            else []
        )
        + [result["quantize"]]
        + (["sparse"] if result["sparse"] else [])
        + (
            [
                f"slim ({result['slim_parameters_after']:,} of "
                f"{result['slim_parameters_before']:,} parameters)"
            ]
            if "slim_parameters_after" in result
            else []
        )
        + ([f"{clusters} clusters"] if clusters else [])
        + (["LUT"] if "compress" in result else [])
    )
    parts = [
        f"{kind}: flash {result['flash_bytes']:,} bytes"
        + (f", RAM arena {arena:,} bytes" if arena else "")
        + (
            f" ({result['tflm_arena_bytes_uncompressed']:,} without LUT decoding)"
            if arena and "tflm_arena_bytes_uncompressed" in result
            else ""
        ),
        f".tflite zipped {result['tflite_zipped_bytes']:,} bytes, "
        f"{result['ratio_tflite_zipped_vs_baseline_zipped']:.1f}x below "
        + (
            "the same network zipped dense with random weights (no trained "
            "baseline.keras beside the model)"
            if result["baseline"] == RANDOM_BASELINE
            else "the zipped dense baseline"
        ),
    ]
    if result["keras_accuracy"] is None:
        parts.append("accuracy not measured (no x_test, y_test)")
    else:
        parts.append(
            f"accuracy Keras {result['keras_accuracy']:.4f}, "
            f"TFLite {result['tflite_accuracy']:.4f}"
        )
    if "tflm_accuracy" in result:
        parts.append(f"TFLite Micro {result['tflm_accuracy']:.4f}")
    if "tflm_error" in result:
        parts.append(result["tflm_error"])
    return "; ".join(parts) + f"; wrote {output_dir}"


def _scale_inputs(summary: dict) -> bool:
    """Whether the run divided integer inputs by their dtype's maximum.

    A run's ``config.toml`` records ``scale_inputs``; a run from before that
    option always scaled them; a model without a run uses its data as given.
    """
    config = summary.get("config")
    return bool(config.get("scale_inputs", True)) if config else False


def _dataset_name(summary: dict, dataset: str | None) -> str:
    if dataset:
        return dataset
    if "config" in summary and "dataset" in summary["config"]:
        return summary["config"]["dataset"]
    if "dataset" in summary:
        return summary["dataset"]
    raise ValueError(
        "cannot tell which data set the model was trained on; pass --dataset"
    )


RANDOM_BASELINE = "same architecture, dense random weights"
"""``export.json``'s ``baseline`` when no trained ``baseline.keras`` is beside
the model (``tffprune train`` runs): the ratios then compare against untrained
dense weights, which zip about as well as trained ones."""


def export_model(
    source: str | Path,
    output_dir: str | Path,
    quantize: str = "int8",
    sparse: bool = False,
    dataset: str | None = None,
    data_dir: str | None = None,
    eval_examples: int | None = None,
    representative_examples: int = 300,
    overwrite: bool = False,
    seed: int = 0,
    representative_data: str | Path | None = None,
    compress: str | None = None,
    clusters: int | None = None,
    cluster_epochs: int | None = None,
    client: str | None = None,
    slim_channels: bool = False,
) -> dict:
    """Converts, writes and verifies; returns what ``export.json`` holds.

    ``slim_channels``: convert the model without its dead units and channels
    (`tffprune.export.slim.slim_model`), after checking that its outputs equal
    the masked model's on the calibration and test examples; ``export.json``
    says what was cut (``slim_channels``, ``slim_left_whole``) and the largest
    output difference (``slim_output_difference``).

    ``client``: export that client's model from a ``tffprune train`` run
    directory instead of the global one (`tffprune.export.client_model`: its
    own model, or its subnetwork), calibrated on its training split and
    measured on its own test split (or on ``representative_data``).

    ``representative_data``: an ``.npz`` for a model not trained on a named
    data set: ``x_train`` (or ``x``) calibrates int8; ``x_test`` and
    ``y_test``, when present, measure accuracy. ``compress="lut"`` (int8
    only) LUT-compresses the model; ``clusters`` clusters every kernel first,
    fine-tuning ``cluster_epochs`` (default 1) on labelled data the server
    may hold, never a federated run's client data (`_cluster_data`;
    ``export.json``'s ``cluster_data`` says which data it used).

    Raises:
        ValueError: On a missing or non-model path, an unknown mode, data that
            does not fit the model, or existing output files.
    """
    if quantize not in tflite.QUANTIZE_MODES:
        raise ValueError(
            f"unknown quantize mode {quantize!r}; expected one of "
            f"{', '.join(tflite.QUANTIZE_MODES)}"
        )
    if compress not in (None, "lut"):
        raise ValueError(f"unknown compression {compress!r}; expected lut")
    if compress == "lut" and quantize != "int8":
        raise ValueError("--compress lut needs --quantize int8 (TFLite Micro)")
    if clusters is not None and clusters < 2:
        raise ValueError(f"--clusters must be >= 2, got {clusters}")
    model_path, summary = resolve_model(source)
    output_dir = Path(output_dir)
    existing = [
        n for n in (*OUTPUT_FILES, CLIENT_MODEL_FILE) if (output_dir / n).exists()
    ]
    if existing and not overwrite:
        raise ValueError(
            f"{output_dir} already has {', '.join(existing)}; pass --overwrite"
        )
    model = load_model_file(model_path, "export", _OWN_LAYERS)
    scale = _scale_inputs(summary)
    picked = None
    if client is not None:
        picked, (config, identity) = client_model.read_client_model(source, client)
        if picked.weights is not None:
            client_model.set_weights(model, picked.weights)
    if representative_data is not None:
        data = _representative_file(representative_data, scale)
    elif picked is not None:
        data = client_model.client_dataset(config, identity, picked.index, client)
    else:
        data = load_dataset(
            _dataset_name(summary, dataset), data_dir, scale_inputs=scale
        )
    model_input = tuple(model.input_shape[1:])
    if model_input != data.input_shape:
        raise ValueError(
            f"{data.name} examples have shape {data.input_shape}, the model takes "
            f"{model_input}"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(
        len(data.x_train), min(representative_examples, len(data.x_train)), False
    )
    representative = data.x_train[np.sort(chosen)]
    x_test, y_test = data.x_test, data.y_test
    if eval_examples is not None and eval_examples < len(y_test):
        x_test, y_test = x_test[:eval_examples], y_test[:eval_examples]

    original = model
    slimming: dict = {}
    if slim_channels:
        model, report = slim.slim_model(model)
        checked = np.concatenate([representative, x_test[:1000]])
        slimming = report.as_dict()
        slimming["slim_output_difference"] = slim.check_outputs(
            original, model, checked
        )
    clustering = {}
    if clusters is not None:
        tuning = _cluster_data(
            data, summary, dataset, representative_data, picked, cluster_epochs
        )
        model, clustering = _cluster(model, data, clusters, *tuning, seed)
    model_bytes = tflite.convert(model, quantize, sparse, representative)
    uncompressed_bytes = model_bytes
    plans = []
    if compress == "lut":
        model_bytes, plans = lut.compress_model(model_bytes)
    output_dir = prepare_output_dir(output_dir, overwrite=True)
    if picked is not None:  # the client's model as Keras, to open and check
        save_keras_model_atomic(model, output_dir / CLIENT_MODEL_FILE)
    write_bytes_atomic(output_dir / "model.tflite", model_bytes)
    write_text_atomic(output_dir / "model_data.h", c_array.c_header())
    write_text_atomic(output_dir / "model_data.cc", c_array.c_source(model_bytes))

    baseline_path = model_path.parent / "baseline.keras"
    if baseline_path.is_file():
        baseline = load_model_file(baseline_path, "export", _OWN_LAYERS)
        baseline_source = str(baseline_path)
    else:
        # clone_model builds the same layers with freshly initialized weights
        # (the unslimmed architecture: the dense network the run started from).
        baseline = tf.keras.models.clone_model(original)
        baseline_source = RANDOM_BASELINE
    # TFLite's outputs, once: its accuracy, and TFLite Micro's reference.
    tflite_out = (
        verify.tflite_outputs(uncompressed_bytes, x_test) if len(y_test) else None
    )
    result: dict = {"flash_bytes": len(model_bytes), "arena_bytes": None}
    result.update(
        _sizes_and_accuracy(
            model,
            model_path,
            model_bytes,
            baseline,
            baseline_source,
            x_test,
            y_test,
            tflite_out,
            int(original.count_params()),
        )
    )
    result.update(dataset=data.name, quantize=quantize, sparse=sparse)
    result.update(
        {
            f"{k}_quantization": v
            for k, v in verify.io_quantization(uncompressed_bytes).items()
        }
    )
    result.update(slimming)
    result.update(clustering)
    if picked is not None:
        result.update(
            client=picked.client,
            client_model=picked.kind,
            client_rounds_participated=picked.rounds_participated,
            client_test_examples=len(y_test),
        )
    if compress == "lut":
        result.update(
            compress="lut",
            flash_bytes_uncompressed=len(uncompressed_bytes),
            lut_tensors=[plan.as_dict() for plan in plans],
        )
    if quantize == "int8":
        result.update(
            _micro(model_bytes, uncompressed_bytes, x_test, y_test, tflite_out)
        )
        result["arena_bytes"] = result.get("tflm_arena_bytes")
    write_json_atomic(output_dir / "export.json", result)
    return result


def _cluster_data(
    data: Dataset,
    summary: dict,
    dataset: str | None,
    representative_data,
    picked,
    epochs: int | None,
) -> tuple[int, str]:
    """The clustering's fine-tuning epochs and what its data are, in words.

    A federated run's server holds none of its clients' raw data, so it
    clusters without fine-tuning unless the user hands the server labelled
    data: a ``--representative-data`` file with ``y_train``, or a data set
    named with ``--dataset``. A centralized run (or a bare model with
    ``--dataset``) fine-tunes on its training set; ``export --client`` on the
    client's own training split (its device holds it).

    Raises:
        ValueError: If ``epochs`` asks for fine-tuning without such data.
    """
    if representative_data is not None:
        source = (
            f"{Path(representative_data).name} x_train, y_train "
            f"({len(data.y_train)} examples)"
            if data.num_classes
            else None
        )
    elif picked is not None:
        source = (
            f"client {picked.client}'s training split ({len(data.y_train)} examples)"
        )
    elif "config" in summary and not dataset:
        source = None  # a federated run: the server has no client data
    else:
        source = f"{data.name} training set ({len(data.y_train)} examples)"
    if source is None:
        if epochs:
            raise ValueError(
                "--cluster-epochs fine-tunes on labelled data the server holds, "
                "and a federated run's server holds no client data: pass "
                "--representative-data with x_train and y_train (or --dataset "
                "to use a named set), or leave --cluster-epochs out"
            )
        return 0, "none: clustered without fine-tuning (no client data on the server)"
    return (1 if epochs is None else epochs), source


def _cluster(model, data: Dataset, clusters: int, epochs: int, source: str, seed: int):
    """Clusters every kernel (logits too), keeping zeros; fine-tunes briefly."""
    from tffprune.pruning import PruningPolicy
    from tffprune.pruning.centralized import cluster_preserving_sparsity

    tf.keras.utils.set_random_seed(seed)
    accuracy_before = None
    if len(data.y_test):
        logits = model.predict(data.x_test, batch_size=1024, verbose=0)
        accuracy_before = verify.accuracy(logits, data.y_test)
    result = cluster_preserving_sparsity(
        model,
        data.x_train,
        data.y_train,
        data.x_test,
        data.y_test,
        clusters,
        epochs=epochs,
        policy=PruningPolicy(prune_logits=True),
    )
    return result.model, {
        "clusters": clusters,
        "cluster_epochs": epochs,
        "cluster_data": source,
        "keras_accuracy_before_clustering": accuracy_before,
    }


def _micro(model_bytes: bytes, uncompressed: bytes, x_test, y_test, tflite_out) -> dict:
    """TFLite Micro's arena and, with test data, its accuracy."""
    result: dict = {}
    try:
        if not len(y_test):
            details = tf.lite.Interpreter(model_content=uncompressed)
            details = details.get_input_details()[0]
            shape = tuple(int(d) for d in details["shape"])
            return {
                "tflm_arena_bytes": verify.tensor_arena_size(
                    model_bytes, shape, details["dtype"]
                )
            }
        micro = verify.tflm_outputs(model_bytes, x_test, uncompressed=uncompressed)
    except verify.MicroError as error:
        return {"tflm_error": str(error)}
    result["tflm_arena_bytes"] = micro.arena_bytes
    if uncompressed is not model_bytes:
        # Decompression needs scratch RAM: report the arena without it too.
        result["tflm_arena_bytes_uncompressed"] = verify.tflm_outputs(
            uncompressed, x_test[:1]
        ).arena_bytes
    difference = np.abs(
        micro.outputs.astype(np.int32)
        - tflite_out.reshape(micro.outputs.shape).astype(np.int32)
    )
    result["tflm_accuracy"] = verify.accuracy(micro.outputs, y_test)
    result["tflm_tflite_outputs_within_one_step"] = float(np.mean(difference <= 1))
    return result


def _representative_file(path: str | Path, scale: bool) -> Dataset:
    """An export's calibration (and optional test) data from an ``.npz``.

    Integer inputs are scaled as the run scaled its own (``scale``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--representative-data: {path} does not exist")
    try:
        arrays = read_npz_arrays(path)
    except DataError as error:
        raise ValueError(f"--representative-data: {error}") from None
    key = "x_train" if "x_train" in arrays else "x" if "x" in arrays else None
    if key is None:
        raise ValueError(
            f"--representative-data: {path} has no x_train or x array "
            f"(keys: {', '.join(arrays) or 'none'})"
        )
    notes: list[str] = []
    inputs = as_inputs(arrays[key], f"{path.name} {key}", notes, scale)
    if "x_test" in arrays and "y_test" in arrays:
        x_test = as_inputs(arrays["x_test"], f"{path.name} x_test", notes, scale)
        y_test = as_labels(arrays["y_test"], f"{path.name} y_test", len(x_test))
    else:
        x_test = np.zeros((0, *inputs.shape[1:]), np.float32)
        y_test = np.zeros(0, np.int32)
    # Labels of the calibration inputs make them fine-tuning data too
    # (--clusters); without them num_classes is 0.
    labelled = key == "x_train" and "y_train" in arrays
    y_train = (
        as_labels(arrays["y_train"], f"{path.name} y_train", len(inputs))
        if labelled
        else np.zeros(len(inputs), np.int32)
    )
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(
        name=str(path),
        x_train=inputs,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=classes if labelled else 0,
        source=str(path),
        notes=tuple(notes),
    )


def _sizes_and_accuracy(
    model,
    model_path,
    model_bytes,
    baseline,
    baseline_source,
    x_test,
    y_test,
    tflite_out,
    dense_parameters,
) -> dict:
    """Sizes, ratios and accuracies of the Keras and TFLite models.

    ``dense_parameters`` counts the network before slimming: the dense float32
    reference is the model the run started from.

    ``model_bytes`` is the ``.tflite`` written (LUT-compressed with
    ``--compress lut``): its sizes are the files' sizes. ``tflite_out`` are
    the TFLite interpreter's outputs of the uncompressed model (TFLite cannot
    decode a LUT; TFLite Micro runs the written one).
    """
    baseline_raw, baseline_zipped = sizes.keras_zipped_size(baseline)
    keras_raw, keras_zipped = sizes.keras_zipped_size(model)
    tflite_zipped = sizes.zipped_bytes_size(model_bytes)
    report = model_sparsity(model)
    measured = len(y_test) > 0
    if measured:
        logits = model.predict(x_test, batch_size=1024, verbose=0)
    return {
        "source": str(model_path),
        "parameters": int(model.count_params()),
        "nonzero_parameters": report.num_nonzero,
        "sparsity": report.overall_sparsity,
        "prunable_sparsity": report.prunable_sparsity,
        "dense_float32_bytes": 4 * dense_parameters,
        "baseline": baseline_source,
        "baseline_keras_bytes": baseline_raw,
        "baseline_keras_zipped_bytes": baseline_zipped,
        "keras_bytes": keras_raw,
        "keras_zipped_bytes": keras_zipped,
        "tflite_bytes": len(model_bytes),
        "tflite_zipped_bytes": tflite_zipped,
        "ratio_keras_zipped_vs_baseline_zipped": baseline_zipped / keras_zipped,
        "ratio_tflite_vs_baseline_zipped": baseline_zipped / len(model_bytes),
        "ratio_tflite_zipped_vs_baseline_zipped": baseline_zipped / tflite_zipped,
        "ratio_tflite_zipped_vs_dense_float32": 4 * dense_parameters / tflite_zipped,
        "c_array_bytes": len(model_bytes),
        "eval_examples": int(len(y_test)),
        "keras_accuracy": verify.accuracy(logits, y_test) if measured else None,
        "tflite_accuracy": verify.accuracy(tflite_out, y_test) if measured else None,
    }
