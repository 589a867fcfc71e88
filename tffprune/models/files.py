"""Keras model files loaded without running code from them.

A saved model is data, and loading it must not run code it carries. Keras 2
(TF 2.14) runs such code in two ways, and `load_model` stops neither for
every format:

* A ``Lambda`` layer holding a Python ``lambda`` is stored as marshalled
  bytecode and rebuilt (and called, when the model is rebuilt) at load time.
  Keras refuses it in the ``.keras`` format (``safe_mode``) but not in the
  legacy ``.h5`` format, where ``safe_mode`` is ignored: a crafted ``.h5``
  ran ``os.system`` when it was loaded (checked). Here both formats load in
  Keras' safe mode.
* A ``.keras`` file's ``config.json`` names the Python module of every
  object, and Keras imports any module named (the CVE-2025-1550 class of
  attack). Here a file may name only Keras' own modules (``keras``,
  ``keras.*``); one naming another module is refused before Keras reads it,
  with a line saying to pass the model as a function instead.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf
from keras.src.saving import serialization_lib

_KERAS_CONFIG = "config.json"


def load_model_file(path: str | Path, option: str, advice: str) -> tf.keras.Model:
    """Loads a ``.keras`` or ``.h5`` model file, refusing any code in it.

    Args:
        path: The model file.
        option: How the user gave it (``--model``, ``export``), for messages.
        advice: What to do instead of a file with code in it, for messages.

    Returns:
        The model, uncompiled.

    Raises:
        ValueError: One line naming the file: it names a module outside Keras,
            holds a Python ``lambda``, or cannot be loaded.
    """
    path = Path(path)
    if path.suffix == ".keras":
        _check_keras_modules(path, option, advice)
    try:
        with serialization_lib.SafeModeScope(True):
            return tf.keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any reason it cannot load
        text = str(error)
        if "Lambda layer with a Python `lambda`" in text:
            raise ValueError(
                f"{option}: {path} holds a Lambda layer with Python code "
                f"(bytecode), which loading would run: refused; {advice}"
            ) from None
        first = text.splitlines()[0] if text else ""
        raise ValueError(
            f"{option}: cannot load {path}: {type(error).__name__}: {first}"
        ) from None


def _check_keras_modules(path: Path, option: str, advice: str) -> None:
    """Refuses a ``.keras`` file whose config names a module outside Keras."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(_KERAS_CONFIG))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValueError(
            f"{option}: {path} is not a readable .keras file: {error}"
        ) from None
    for module, name in _named_modules(config):
        if module != "keras" and not module.startswith("keras."):
            raise ValueError(
                f"{option}: {path} names Python module {module!r} (for "
                f"{name!r}), which loading would import and run: refused (a "
                ".keras file may name only Keras' own classes); {advice}"
            )


def _named_modules(config: object) -> Iterator[tuple[str, str]]:
    """Every (module, class or function name) a Keras config names.

    An object is a dict with ``module`` and ``class_name``; a ``Lambda``
    layer's own ``module`` (no ``class_name`` beside it) only names where its
    function came from and is not imported.
    """
    if isinstance(config, dict):
        if "class_name" in config and config.get("module") is not None:
            yield str(config["module"]), str(config["class_name"])
        for value in config.values():
            yield from _named_modules(value)
    elif isinstance(config, list):
        for value in config:
            yield from _named_modules(value)
