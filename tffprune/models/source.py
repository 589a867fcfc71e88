"""Where a run's model comes from: a built-in name, your function, or a file.

``--model`` (and `TrainConfig.model`) accepts

* a built-in name (`tffprune.models.MODEL_NAMES`);
* ``path/to/file.py:function`` or ``package.module:function``: called as
  ``function(input_shape, num_classes)``, it returns a new Keras model
  (functional or Sequential; softmax or logits output);
* a saved ``.keras`` (or ``.h5``) file: its architecture, and its weights as
  the initial model.

`resolve_model` turns the text into a ``model_fn`` (no arguments, a new model
each call, as TFF needs), checks the model against the data (input shape,
number of outputs) with a one-line error, and says where it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tffprune.config import MODEL_FILE_SUFFIXES
from tffprune.models.builders import MODEL_NAMES, build_model
from tffprune.models.files import load_model_file
from tffprune.pruning.policy import check_not_tfmot_wrapped


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A model source made usable.

    Attributes:
        model_fn: Builds a new model (no arguments).
        initial_weights: Weights to start from (a saved file's), else None.
        source: What the run records to rebuild it (paths made absolute).
    """

    model_fn: Callable[[], tf.keras.Model]
    initial_weights: list[np.ndarray] | None
    source: str


def model_fingerprint(source: str) -> str | None:
    """SHA-256 of the file a model source reads, or None for a built-in name.

    A ``.py`` file, a module's source file, or a saved ``.keras`` file: a
    resume checks it, so an edited model is not continued from a checkpoint
    of another.
    """
    if source in MODEL_NAMES:
        return None
    location = source.rpartition(":")[0] if ":" in source else source
    path = Path(location)
    if not path.is_file():
        try:
            spec = importlib.util.find_spec(location) if location else None
        except (ImportError, ValueError):  # e.g. __main__, or not importable
            spec = None
        origin = spec.origin if spec is not None else None
        if origin is None or not Path(origin).is_file():
            return None
        path = Path(origin)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_function(reference: str) -> tuple[Callable, str]:
    location, _, name = reference.rpartition(":")
    if location.endswith(".py"):
        path = Path(location).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"--model: model file {location} does not exist")
        module_name = f"tffprune_user_model_{abs(hash(str(path)))}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as error:  # noqa: BLE001 - the user's code failed
                raise ValueError(
                    f"--model: importing {location} failed: "
                    f"{type(error).__name__}: {error}".splitlines()[0]
                ) from None
            sys.modules[module_name] = module
        source = f"{path}:{name}"
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as error:
            raise ValueError(
                f"--model: cannot import module {location!r}: {error}"
            ) from None
        source = reference
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"--model: {location} has no function {name!r}")
    return function, source


def _check_model(model: object, where: str, input_shape, num_classes: int) -> None:
    # Errors name the option as the caller spelled it: --model, or model_fn.
    option = "model_fn" if where == "model_fn()" else "--model"
    if not isinstance(model, tf.keras.Model):
        raise ValueError(
            f"{option}: {where} returned {type(model).__name__}, not a Keras model"
        )
    check_not_tfmot_wrapped(model)
    if not model.built:
        model.build((None, *input_shape))
    expected = (None, *input_shape)
    given = (
        tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    )
    if (
        given is None
        or len(given) != len(expected)
        or any(
            a is not None and a != b
            for a, b in zip(given[1:], expected[1:], strict=True)
        )
    ):
        raise ValueError(
            f"{option}: {where} takes inputs of shape {given}, the data has {expected}"
        )
    outputs = model.output_shape
    if isinstance(outputs, list) or outputs[-1] != num_classes or len(outputs) != 2:
        raise ValueError(
            f"{option}: {where} outputs shape {outputs}; a classifier of this data "
            f"needs (None, {num_classes}){_output_hint(outputs, num_classes)}"
        )


def _output_hint(outputs, num_classes: int) -> str:
    """What to do about a head that does not fit the classes, if guessable."""
    if isinstance(outputs, list) or len(outputs) != 2:
        return ""
    if outputs[-1] == 1 and num_classes == 2:
        return (
            ": a one-unit (sigmoid) head is not supported; end with Dense(2) "
            "(logits or softmax) for two classes"
        )
    if outputs[-1] == num_classes - 1:
        return (
            f": if your labels run 1..{num_classes - 1}, class indices start "
            "at 0: pass labels - 1"
        )
    return ""


def resolve_model(
    reference: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    options: dict | None = None,
) -> ResolvedModel:
    """Makes a model source usable (see the module docstring).

    Args:
        reference: The ``--model`` text.
        input_shape: Shape of one example of the data.
        num_classes: Number of classes of the data.
        options: Built-in builder options (``width_multiplier``).

    Returns:
        The `ResolvedModel`.

    Raises:
        ValueError: One line naming what is wrong (missing file or function,
            not a Keras model, shapes that do not fit the data).
    """
    input_shape = tuple(input_shape)
    if reference in MODEL_NAMES:

        def builtin() -> tf.keras.Model:
            return build_model(reference, input_shape, num_classes, **(options or {}))

        builtin()  # fails early if the data does not fit the model
        return ResolvedModel(builtin, None, reference)
    if reference.endswith(MODEL_FILE_SUFFIXES):
        path = Path(reference).expanduser()
        if not path.is_file():
            raise ValueError(f"--model: model file {reference} does not exist")
        saved = load_model_file(
            path,
            "--model",
            "build the model in a function and pass --model file.py:function",
        )
        _check_model(saved, str(path), input_shape, num_classes)
        weights = [
            w.numpy() for w in saved.trainable_weights + saved.non_trainable_weights
        ]

        def from_file() -> tf.keras.Model:
            return tf.keras.models.clone_model(saved)

        return ResolvedModel(from_file, weights, str(path.resolve()))
    if ":" not in reference:
        raise ValueError(
            f"--model: unknown model {reference!r}; expected one of "
            f"{', '.join(MODEL_NAMES)}, file.py:function, package.module:function "
            "or a .keras file"
        )
    function, source = _load_function(reference)

    def from_function() -> tf.keras.Model:
        return function(input_shape, num_classes)

    _check_builds_in_a_graph(from_function, "--model")
    try:
        model = from_function()
    except Exception as error:  # noqa: BLE001 - the user's code failed
        raise ValueError(
            f"--model: {reference}({input_shape}, {num_classes}) failed: "
            f"{type(error).__name__}: {error}".splitlines()[0]
        ) from None
    _check_model(model, reference, input_shape, num_classes)
    return ResolvedModel(from_function, None, source)


def _check_builds_in_a_graph(model_fn: Callable[[], object], option: str) -> None:
    """Refuses a model that calls ``adapt()``, in one line saying what to do.

    TFF builds the model inside a graph, where a preprocessing layer's
    ``adapt()`` raises "`adapt` is only supported in tensorflow v2" deep in a
    TFF traceback. Any other failure is left to the eager build that follows
    (which also puts Keras' classes back to their eager versions).
    """
    try:
        with tf.Graph().as_default():
            model_fn()
    except RuntimeError as error:
        if "`adapt`" in str(error):
            raise ValueError(
                f"{option}: the model calls a preprocessing layer's adapt(), which "
                "cannot run where TFF builds the model (inside a graph); adapt it "
                "once outside and build it with the statistics, e.g. Normalization("
                "mean=layer.mean.numpy(), variance=layer.variance.numpy())"
            ) from None
    except Exception:  # noqa: BLE001, S110 - the eager build reports it
        pass


def check_user_model_fn(
    model_fn: Callable[[], tf.keras.Model], input_shape, num_classes: int
) -> None:
    """Checks a Python ``model_fn()`` against the data (one-line errors)."""
    if not callable(model_fn):
        raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
    _check_builds_in_a_graph(model_fn, "model_fn")
    try:
        model = model_fn()
    except Exception as error:  # noqa: BLE001 - the user's code failed
        raise ValueError(
            f"model_fn() failed: {type(error).__name__}: {error}".splitlines()[0]
        ) from None
    _check_model(model, "model_fn()", tuple(input_shape), num_classes)
